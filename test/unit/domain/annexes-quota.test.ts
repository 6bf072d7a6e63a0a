// The launch policy and the per-user quota as create, add-nodes, extend and the end of an annex
// apply them (the pure checks are in launch-policy.test.ts and quota.test.ts).
import { beforeEach, describe, expect, it } from 'vitest';
import { addNodes } from '../../../shared/domain/annex-nodes.ts';
import { createAnnex, type CreateAnnexInput } from '../../../shared/domain/annex-create.ts';
import { deleteAnnex } from '../../../shared/domain/annex-end.ts';
import { extendAnnex } from '../../../shared/domain/annex-extend.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import { AnnexError } from '../../../shared/domain/errors.ts';
import type { Caller } from '../../../shared/domain/model.ts';
import { putPool } from '../../../shared/domain/pools.ts';
import { domainDeps, TEST_ADMIN } from '../../support/domain-deps.ts';
import type { FakeClock, FakeCompute, InMemoryLeaseStore } from '../../support/fakes.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };

const input = (over: Partial<CreateAnnexInput> = {}): CreateAnnexInput => ({
  name: 'burst',
  pool: 'gpu',
  count: 1,
  instanceTypes: ['m5.large'],
  durationSeconds: 3600,
  ...over,
});

let clock: FakeClock;
let store: InMemoryLeaseStore;
let compute: FakeCompute;
let deps: LaunchDeps;

beforeEach(async () => {
  ({ clock, store, compute, deps } = domainDeps({
    with: { prices: { onDemandHourly: () => 0.1, spotHourly: () => Promise.resolve(undefined) } },
  }));
  await putPool(deps, TEST_ADMIN, 'gpu', {
    collectorHost: 'cm.example.org',
    collectorPort: 9618,
    credential: { type: 'password', value: 'pool-password-123' },
    policy: {
      maxLeaseSeconds: 7200,
      maxLifetimeSeconds: 9000,
      quota: { maxInstances: 3, maxVCpus: 6, maxMonthlySpendUsd: 1 },
    },
  });
});

const refusal = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AnnexError);
  return { code: (e as AnnexError).code, field: (e as AnnexError).field };
};

describe('the quota across an annex', () => {
  it('counts a created annex and frees its instances when it ends', async () => {
    // Prepare
    await createAnnex(deps, alice, input({ count: 3 }));
    expect(await refusal(createAnnex(deps, alice, input({ name: 'more' })))).toEqual({
      code: 'LimitExceeded',
      field: 'count',
    });
    // Act
    await deleteAnnex(deps, alice, { name: 'burst' });
    // Assess
    const { annex } = await createAnnex(deps, alice, input({ name: 'more' }));
    expect(annex.state).toBe('RUNNING');
    const usage = await store.getUsage(alice.principalArn, 'gpu');
    expect(Object.keys(usage.annexes)).toEqual([annex.id]);
  });

  it('does not admit an idempotent retry of an admitted create a second time', async () => {
    await createAnnex(deps, alice, input({ count: 3 }), 'key-1');
    const { replayed } = await createAnnex(deps, alice, input({ count: 3 }), 'key-1');
    expect(replayed).toBe(true);
    expect((await store.getUsage(alice.principalArn, 'gpu')).spendByMonth['2026-11']).toBe(0.3);
  });

  it('refuses nodes over the quota or of a type the pool does not allow, with nothing written or launched', async () => {
    await createAnnex(deps, alice, input({ count: 2 }));
    const before = { events: store.events.length, launches: compute.launches() };
    expect(await refusal(addNodes(deps, alice, { name: 'burst' }, { count: 2 }))).toEqual({
      code: 'LimitExceeded',
      field: 'count',
    });
    expect(
      await refusal(addNodes(deps, alice, { name: 'burst' }, { count: 1, instanceTypes: ['m5.4xlarge'] })),
    ).toEqual({
      code: 'LimitExceeded',
      field: 'count',
    });
    expect({ events: store.events.length, launches: compute.launches() }).toEqual(before);
    const annex = await addNodes(deps, alice, { name: 'burst' }, { count: 1 });
    expect(annex.requestedCount).toBe(3);
  });

  it('refuses an extension beyond the lifetime, and commits the hours an allowed one adds', async () => {
    await createAnnex(deps, alice, input());
    clock.advance(1800);
    // Over the longest lease (2 h).
    expect(await refusal(extendAnnex(deps, alice, { name: 'burst' }, { durationSeconds: 7201 }))).toEqual({
      code: 'LimitExceeded',
      field: 'durationSeconds',
    });
    clock.advance(1200);
    // Within the lease, but 2 h 50 min from creation: over the longest lifetime (2.5 h).
    expect(await refusal(extendAnnex(deps, alice, { name: 'burst' }, { durationSeconds: 7200 }))).toEqual({
      code: 'LimitExceeded',
      field: 'durationSeconds',
    });
    const before = store.events.length;
    const extended = await extendAnnex(deps, alice, { name: 'burst' }, { durationSeconds: 3600 });
    expect(store.events.length).toBe(before + 1);
    expect(extended.expiresAt).toBe('2026-11-25T13:50:00.000Z');
    // $0.1 for the first hour; the extension adds 50 min (13:00 → 13:50) of one instance.
    expect((await store.getUsage(alice.principalArn, 'gpu')).spendByMonth['2026-11']).toBe(0.1833);
  });

  it('counts a create whose end was never recorded only until its lease expires', async () => {
    await createAnnex(deps, alice, input({ count: 3 }));
    // The annex's end never ran (a crash): its entry lapses at its expiry.
    clock.advance(3601);
    store.annexes.clear();
    store.nameClaims.clear();
    const { annex } = await createAnnex(deps, alice, input({ name: 'after', count: 3 }));
    expect(annex.requestedCount).toBe(3);
  });
});
