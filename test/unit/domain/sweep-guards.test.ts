import { beforeEach, describe, expect, it } from 'vitest';
import { createAnnex } from '../../../shared/domain/annex-create.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import { upstreamUnavailable } from '../../../shared/domain/errors.ts';
import type { Annex, Caller } from '../../../shared/domain/model.ts';
import { CLEANUP_MIN_REMAINING_MS, sweep, type SweepDeps } from '../../../shared/domain/sweep.ts';
import { domainDeps, putDefaultPool, TEST_SWEEP } from '../../support/domain-deps.ts';
import type { FakeClock, FakeCompute, FakeSecrets, InMemoryLeaseStore } from '../../support/fakes.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };
const GRACE = 300;

let clock: FakeClock;
let store: InMemoryLeaseStore;
let compute: FakeCompute;
let secrets: FakeSecrets;
let deps: LaunchDeps & SweepDeps;

beforeEach(async () => {
  ({ clock, store, compute, secrets, deps } = domainDeps({
    with: { sweep: { ...TEST_SWEEP, outageExpiryGraceSeconds: GRACE } },
  }));
  await putDefaultPool(deps);
});

const create = async (name: string, durationSeconds: number): Promise<Annex> =>
  (
    await createAnnex(deps, alice, {
      name,
      pool: 'default',
      count: 2,
      instanceTypes: ['p2.xlarge'],
      market: 'on-demand',
      durationSeconds,
    })
  ).annex;

const runningOf = (annexId: string) => compute.running().filter((i) => i.tags['annex:id'] === annexId);

describe('sweep: a table it cannot read', () => {
  it('terminates, from the EC2 listing alone, the instances whose expiry tag is more than the grace past', async () => {
    // Prepare: one lease ran out GRACE seconds ago, one still runs; the table then stops answering.
    const expired = await create('expired', 600);
    const current = await create('current', 7200);
    clock.advance(600 + GRACE);
    store.faults.failNext('listLiveInstances', upstreamUnavailable('DynamoDB is unavailable'));

    // Act
    const report = await sweep(deps);

    // Assess
    expect(report.tableUnavailable).toBe(true);
    expect(report.failedSteps).toEqual(['list-leases']);
    expect(runningOf(expired.id)).toEqual([]);
    expect(runningOf(current.id)).toHaveLength(2);
    expect(report.actions).toEqual([
      expect.objectContaining({ action: 'terminate-past-expiry', reason: 'expired', annexId: expired.id }),
    ]);
  });

  it('leaves an instance alone while its expiry tag is within the grace', async () => {
    const lease = await create('expired', 600);
    clock.advance(600 + GRACE - 1);
    store.faults.failNext('listLiveInstances', upstreamUnavailable('DynamoDB is unavailable'));

    const report = await sweep(deps);

    expect(report.tableUnavailable).toBe(true);
    expect(runningOf(lease.id)).toHaveLength(2);
    expect(report.actions).toEqual([]);
  });

  it('never touches an instance without an expiry tag, or of another stage', async () => {
    const untimed = compute.startByHand({ 'annex:id': 'ax-00000000000000000001', 'annex:stage': 'test' });
    const foreign = compute.startByHand({
      'annex:id': 'ax-00000000000000000002',
      'annex:stage': 'other',
      'annex:expires-at': '2000-01-01T00:00:00.000Z',
    });
    clock.advance(86_400);
    store.faults.failNext('listLiveInstances', upstreamUnavailable('DynamoDB is unavailable'));

    await sweep(deps);

    expect(compute.running().map((i) => i.instanceId)).toEqual([untimed, foreign]);
  });
});

describe('sweep: guarded steps', () => {
  it('still ends expired leases when the EC2 listing fails, and counts the failure', async () => {
    const lease = await create('expired', 600);
    clock.advance(600);
    compute.faults.failNext('listStageInstances', upstreamUnavailable('EC2 is unavailable'));

    const report = await sweep(deps);

    expect(report.failedSteps).toEqual(['list-instances']);
    expect(report.errors).toBe(1);
    expect(store.annexes.get(lease.id)?.state).toBe('TERMINATED');
    expect(runningOf(lease.id)).toEqual([]);
  });

  it('runs the other clean-up steps when one fails', async () => {
    const lease = await create('expired', 600);
    clock.advance(600);
    await sweep(deps);
    await secrets.putAnnexCredential(lease.id, 'left behind', {});
    clock.advance(TEST_SWEEP.orphanMinAgeSeconds);
    compute.faults.failNext('listLaunchTemplates', upstreamUnavailable('EC2 is unavailable'));

    const report = await sweep(deps);

    expect(report.failedSteps).toEqual(['launch-templates']);
    expect(report.actions).toContainEqual({ action: 'delete-parameter', reason: 'leak', annexId: lease.id });
  });
});

describe('sweep: its time budget', () => {
  it('ends expired leases but leaves clean-up to the next sweep when the invocation is nearly out of time', async () => {
    const lease = await create('expired', 600);
    clock.advance(600);

    const report = await sweep({ ...deps, remainingMs: () => CLEANUP_MIN_REMAINING_MS - 1 });

    expect(store.annexes.get(lease.id)?.state).toBe('TERMINATED');
    expect(report.skippedSteps).toEqual(['parameters', 'launch-templates', 'schedules']);
  });

  it('runs clean-up with time to spare', async () => {
    await create('expired', 600);
    clock.advance(600);

    const report = await sweep({ ...deps, remainingMs: () => CLEANUP_MIN_REMAINING_MS });

    expect(report.skippedSteps).toEqual([]);
  });
});

describe('sweep: ending with its own listing', () => {
  it('ends an expired lease without listing EC2 again for it', async () => {
    const lease = await create('expired', 600);
    clock.advance(600);
    compute.calls.length = 0;

    await sweep(deps);

    expect(compute.calls.filter((c) => c.method === 'listAnnexInstances')).toEqual([]);
    expect(runningOf(lease.id)).toEqual([]);
  });
});
