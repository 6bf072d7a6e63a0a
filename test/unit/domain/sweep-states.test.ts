import { describe, expect, it } from 'vitest';
import { createAnnex } from '../../../shared/domain/annex-create.ts';
import type { Caller } from '../../../shared/domain/model.ts';
import { sweep } from '../../../shared/domain/sweep.ts';
import { domainDeps, putDefaultPool, TEST_SWEEP } from '../../support/domain-deps.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };

describe('sweep: instance states', () => {
  it('records instances that launched pending as running once EC2 runs them, and otherwise reads nothing', async () => {
    // Prepare
    const { store, deps } = domainDeps({ with: { sweep: TEST_SWEEP } });
    await putDefaultPool(deps);
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
