import { describe, expect, it } from 'vitest';
import { createAnnex, type LaunchDeps } from '../../../shared/domain/annexes.ts';
import type { Caller } from '../../../shared/domain/model.ts';
import { putPool } from '../../../shared/domain/pools.ts';
import { sweep } from '../../../shared/domain/sweep.ts';
import {
  FakeClock,
  FakeCompute,
  FakeSchedules,
  FakeSecrets,
  InMemoryLeaseStore,
  silentLogger,
} from '../../support/fakes.ts';

const admin: Caller = { principalArn: 'arn:aws:iam::123456789012:user/admin', admin: true };
const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };

describe('sweep: instance states', () => {
  it('records instances that launched pending as running once EC2 runs them, and otherwise reads nothing', async () => {
    // Prepare
    const clock = new FakeClock();
    const store = new InMemoryLeaseStore();
    const deps: LaunchDeps & { sweep: Parameters<typeof sweep>[0]['sweep'] } = {
      store,
      clock,
      compute: new FakeCompute(clock),
      secrets: new FakeSecrets('test'),
      schedules: new FakeSchedules(),
      log: silentLogger(),
      settings: {
        stage: 'test',
        adminArns: [admin.principalArn],
        maxDurationSeconds: 604800,
        maxInstancesPerAnnex: 10,
      },
      launch: { defaultImageId: 'ami-0123456789abcdef0', defaultSubnetIds: [], defaultSecurityGroupIds: [] },
      sweep: { bootGraceSeconds: 900, orphanMinAgeSeconds: 60, stuckAfterSeconds: 600, concurrency: 4 },
    };
    await putPool(deps, admin, 'default', {
      collectorHost: 'cm.example.org',
      collectorPort: 9618,
      credential: { type: 'password', value: 'pool-password-123' },
    });
    const { annex } = await createAnnex(deps, alice, {
      name: 'a',
      pool: 'default',
      count: 2,
      instanceTypes: ['m5.large'],
      market: 'on-demand',
    });
    for (const [key, record] of store.instances) store.instances.set(key, { ...record, state: 'pending' });

    // Act
    await sweep(deps);
    const reads: string[] = [];
    const getAnnex = store.getAnnex.bind(store);
    store.getAnnex = async (id) => {
      reads.push(id);
      return getAnnex(id);
    };
    await sweep(deps);

    // Assess
    expect((await store.listInstances(annex.id)).map((i) => i.state)).toEqual(['running', 'running']);
    expect(reads).toEqual([]);
  });
});
