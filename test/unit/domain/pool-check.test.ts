import { beforeEach, describe, expect, it } from 'vitest';
import type { AnnexError } from '../../../shared/domain/errors.ts';
import type { Caller, Pool } from '../../../shared/domain/model.ts';
import {
  checkPool,
  type DialResult,
  type Dialer,
  type PoolCheckDeps,
} from '../../../shared/domain/pool-check.ts';
import { FakeClock, InMemoryLeaseStore } from '../../support/fakes.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };
const bob: Caller = { principalArn: 'arn:aws:iam::123456789012:user/bob', admin: false };

/** A dialer double that records what it was asked and answers from a script. */
class FakeDialer implements Dialer {
  calls: { host: string; port: number; timeoutMs: number }[] = [];
  next: DialResult = { reachable: true, latencyMs: 12.4 };
  async dial(host: string, port: number, timeoutMs: number): Promise<DialResult> {
    this.calls.push({ host, port, timeoutMs });
    return this.next;
  }
}

const pool = (over: Partial<Pool>): Pool => ({
  name: 'lab',
  scope: 'private',
  owner: alice.principalArn,
  collectorHost: 'cm.lab.example',
  collectorPort: 9618,
  credentialType: 'password',
  credentialParameter: '/annex/test/pools/private/x/lab/credential',
  createdAt: '2025-06-01T00:00:00.000Z',
  updatedAt: '2025-06-01T00:00:00.000Z',
  ...over,
});

let deps: PoolCheckDeps;
let dialer: FakeDialer;

beforeEach(async () => {
  dialer = new FakeDialer();
  const store = new InMemoryLeaseStore();
  await store.putPool(pool({}));
  await store.putPool(
    pool({
      name: 'default',
      scope: 'shared',
      owner: 'arn:aws:iam::123456789012:user/admin',
      collectorHost: 'cm.example.org',
      collectorPort: 9619,
    }),
  );
  deps = { store, dialer, clock: new FakeClock() };
});

describe('checkPool', () => {
  it('dials the collector of the caller’s own pool and reports the latency', async () => {
    const check = await checkPool(deps, alice, 'lab');
    expect(dialer.calls).toEqual([{ host: 'cm.lab.example', port: 9618, timeoutMs: 5000 }]);
    expect(check).toMatchObject({
      pool: 'lab',
      scope: 'private',
      reachable: true,
      latencyMs: 12,
      timeoutMs: 5000,
    });
    expect(check.error).toBeUndefined();
    expect(check.checkedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('dials a shared pool for any user', async () => {
    const check = await checkPool(deps, bob, 'default');
    expect(check).toMatchObject({
      pool: 'default',
      scope: 'shared',
      collectorHost: 'cm.example.org',
      collectorPort: 9619,
    });
  });

  it('reports an unreachable collector as a result with a closed-set reason, not as an error', async () => {
    dialer.next = { reachable: false, latencyMs: 5000, failure: 'timeout' };
    const check = await checkPool(deps, alice, 'lab', 5000);
    expect(check.reachable).toBe(false);
    expect(check.error).toEqual({
      code: 'timeout',
      message: 'no answer within 5000 ms: a firewall or security group may drop the traffic',
    });
  });

  it('treats another user’s private pool as missing, and dials nothing', async () => {
    const error = (await checkPool(deps, bob, 'lab').catch((e: unknown) => e)) as AnnexError;
    expect(error.code).toBe('NotFound');
    expect(dialer.calls).toEqual([]);
  });
});
