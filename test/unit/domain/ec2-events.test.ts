import { beforeEach, describe, expect, it } from 'vitest';
import { HISTORY_RETENTION_SECONDS } from '../../../shared/aws/table/entities.ts';
import { createAnnex, type CreateAnnexInput } from '../../../shared/domain/annex-create.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import { handleEc2Event, parseEc2Event } from '../../../shared/domain/ec2-events.ts';
import { callerOf } from '../../../shared/domain/identity.ts';
import { recordInterruption } from '../../../shared/domain/instances.ts';
import type { Caller } from '../../../shared/domain/model.ts';
import { ec2Event, type Ec2Fixture } from '../../support/ec2-events.ts';
import { StampingLeaseStore, type FakeClock, type FakeCompute } from '../../support/fakes.ts';
import { domainDeps, putDefaultPool } from '../../support/domain-deps.ts';

const ROLE = 'annex-test-instance';
const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };

let clock: FakeClock;
let store: StampingLeaseStore;
let compute: FakeCompute;
let deps: LaunchDeps & { instances: { instanceRoleName: string; heartbeatIntervalSeconds: number } };

beforeEach(async () => {
  ({ clock, store, compute, deps } = domainDeps({
    store: (c) => new StampingLeaseStore(c),
    with: { instances: { instanceRoleName: ROLE, heartbeatIntervalSeconds: 60 } },
  }));
  await putDefaultPool(deps);
});

const launched = async (over: Partial<CreateAnnexInput> = {}) => {
  const { annex } = await createAnnex(deps, alice, {
    name: 'spotty',
    pool: 'default',
    count: 2,
    instanceTypes: ['m5.large', 'c5.large'],
    market: 'spot',
    durationSeconds: 3600,
    ...over,
  });
  const ids = (await store.listInstances(annex.id)).map((i) => i.instanceId).sort();
  return { annex, ids, first: ids[0] ?? '' };
};

/** Delivers a fixture event for `instanceId` at the clock's time (or `time`). */
const deliver = (fixture: Ec2Fixture, instanceId: string, over: { time?: Date; id?: string } = {}) => {
  const parsed = parseEc2Event(ec2Event(fixture, instanceId, { time: over.time ?? clock.now(), ...over }));
  if (parsed === undefined) throw new Error(`fixture ${fixture} did not parse`);
  return handleEc2Event(deps, parsed);
};

const eventsOf = (annexId: string, type: string) =>
  store.events.filter((e) => e.annexId === annexId && e.type === type);

describe('parseEc2Event', () => {
  it('reads the three documented EC2 events and nothing else', () => {
    // Act
    const warning = parseEc2Event(ec2Event('spot-interruption-warning', 'i-0123456789abcdef0'));
    const rebalance = parseEc2Event(ec2Event('rebalance-recommendation', 'i-0123456789abcdef0'));
    const state = parseEc2Event(ec2Event('state-change-terminated', 'i-0123456789abcdef0'));

    // Assess
    expect(warning).toEqual({
      eventId: '12345678-1234-1234-1234-123456789012',
      instanceId: 'i-0123456789abcdef0',
      notice: {
        kind: 'interruption',
        at: '2026-11-25T12:10:00.000Z',
        // EC2 acts two minutes after its warning.
        interruption: { action: 'terminate', time: '2026-11-25T12:12:00.000Z' },
      },
    });
    expect(rebalance?.notice).toEqual({ kind: 'rebalance', at: '2026-11-25T12:05:00.000Z' });
    expect(state?.notice).toEqual({ kind: 'state', at: '2026-11-25T12:12:30.000Z', state: 'terminated' });
    expect(parseEc2Event({ source: 'aws.events', 'detail-type': 'Scheduled Event' })).toBeUndefined();
    expect(parseEc2Event({ ...ec2Event('state-change-running', 'i-1'), source: 'my.app' })).toBeUndefined();
  });
});

describe('handleEc2Event', () => {
  it('ignores an instance that is not an annex’s (one lookup, nothing written)', async () => {
    // Prepare
    await launched();
    const before = store.events.length;

    // Act
    const outcome = await deliver('state-change-terminated', 'i-0fffffffffffffff0');

    // Assess
    expect(outcome).toEqual({ outcome: 'not-ours' });
    expect(store.events).toHaveLength(before);
  });

  it('records an interruption warning on the instance and as one annex event, even when replayed', async () => {
    // Prepare
    const { annex, first } = await launched();

    // Act
    const once = await deliver('spot-interruption-warning', first);
    const again = await deliver('spot-interruption-warning', first);

    // Assess
    expect(once.outcome).toBe('applied');
    expect(again.outcome).toBe('stale');
    expect(await store.getInstance(annex.id, first)).toMatchObject({
      interruptedAt: clock.now().toISOString(),
      interruption: { action: 'terminate', time: new Date(clock.now().getTime() + 120_000).toISOString() },
    });
    expect(eventsOf(annex.id, 'spot-interruption')).toHaveLength(1);
    expect(eventsOf(annex.id, 'spot-interruption')[0]).toMatchObject({
      reason: 'interrupted',
      detail: { instanceId: first, via: 'ec2-event' },
    });
  });

  it('shares the notice with the instance’s own report: whichever comes first is the one event', async () => {
    // Prepare
    const { annex, first } = await launched();
    const caller = callerOf(`arn:aws:sts::123456789012:assumed-role/${ROLE}/${first}`, {
      adminArns: [],
      sessionOwnedRoles: [],
    });

    // Act
    await recordInterruption(deps, caller, { action: 'terminate', time: '2026-11-25T12:02:00Z' });
    const fromEc2 = await deliver('spot-interruption-warning', first);
    await recordInterruption(deps, caller, { action: 'terminate', time: '2026-11-25T12:02:00Z' });

    // Assess
    expect(fromEc2.outcome).toBe('stale');
    expect(eventsOf(annex.id, 'spot-interruption')).toEqual([
      expect.objectContaining({ detail: expect.objectContaining({ via: 'instance' }) }),
    ]);
  });

  it('records a rebalance recommendation once', async () => {
    // Prepare
    const { annex, first } = await launched();

    // Act
    await deliver('rebalance-recommendation', first);
    await deliver('rebalance-recommendation', first);

    // Assess
    expect((await store.getInstance(annex.id, first))?.rebalanceRecommendedAt).toBe(
      clock.now().toISOString(),
    );
    expect(eventsOf(annex.id, 'rebalance-recommended')).toHaveLength(1);
  });

  it('takes an instance that left out of the running count within one event', async () => {
    // Prepare
    const { annex, first } = await launched({ replaceInterrupted: false });

    // Act
    await deliver('state-change-terminated', first);

    // Assess
    const records = await store.listInstances(annex.id);
    expect(records.filter((r) => r.state === 'running' || r.state === 'pending')).toHaveLength(1);
    expect(records.find((r) => r.instanceId === first)).toMatchObject({
      state: 'terminated',
      terminatedAt: clock.now().toISOString(),
    });
    expect(eventsOf(annex.id, 'instance-state')).toEqual([
      expect.objectContaining({
        detail: expect.objectContaining({ instanceId: first, state: 'terminated' }),
      }),
    ]);
  });

  it('leaves an instance EC2 reports terminated to the table’s history retention, and its lookup too', async () => {
    // Prepare
    const { annex, first, ids } = await launched({ replaceInterrupted: false });
    const second = ids[1] ?? '';

    // Act
    await deliver('state-change-terminated', first);

    // Assess
    const endedTtl = clock.now().getTime() / 1000 + HISTORY_RETENTION_SECONDS;
    expect(store.ttls.get(`instance|${annex.id}|${first}`)).toBe(endedTtl);
    expect(store.ttls.has(`instance|${annex.id}|${second}`)).toBe(false);
    expect(store.ttls.get(`lookup|${first}`)).toBeGreaterThan(endedTtl);
    expect(store.ttls.get(`lookup|${second}`)).toBeGreaterThan(endedTtl);
  });

  it('never resurrects a terminated instance with a late running event, nor records it twice', async () => {
    // Prepare
    const { annex, first } = await launched();
    const start = clock.now();
    clock.advance(600);

    // Act: terminated arrives first; the (older) running and shutting-down events come late.
    await deliver('state-change-terminated', first);
    const late = await deliver('state-change-running', first, { time: start });
    const lateShutdown = await deliver('state-change-shutting-down', first, {
      time: new Date(start.getTime() + 1000),
    });
    const replay = await deliver('state-change-terminated', first);

    // Assess
    expect([late.outcome, lateShutdown.outcome, replay.outcome]).toEqual(['stale', 'stale', 'stale']);
    expect((await store.getInstance(annex.id, first))?.state).toBe('terminated');
    expect(eventsOf(annex.id, 'instance-state')).toHaveLength(1);
  });

  it('orders state changes of the same second by state (pending, then running)', async () => {
    // Prepare
    const { annex, first } = await launched();

    // Act: running delivered before pending, both stamped with the same second.
    await deliver('state-change-running', first);
    const pending = await deliver('state-change-pending', first);

    // Assess
    expect(pending.outcome).toBe('stale');
    expect((await store.getInstance(annex.id, first))?.state).toBe('running');
  });
});

describe('replacement of interrupted spot instances', () => {
  it('replaces an interrupted instance once under the same lease, without adding to requestedCount', async () => {
    // Prepare
    const { annex, first } = await launched({ replaceInterrupted: true, maxReplacements: 2 });
    const launchesBefore = compute.launches();

    // Act: the warning twice (EventBridge delivers at least once).
    const outcome = await deliver('spot-interruption-warning', first);
    const replay = await deliver('spot-interruption-warning', first);

    // Assess
    expect(outcome.replacement).toBe('started');
    expect(replay.replacement).toBe('already');
    expect(compute.launches() - launchesBefore).toBe(1);
    const after = await store.getAnnex(annex.id);
    expect(after).toMatchObject({
      state: 'RUNNING',
      requestedCount: 2,
      replacements: 1,
      expiresAt: annex.expiresAt,
      batches: 2,
    });
    const replacement = compute.running().find((i) => i.batch === 2);
    expect(replacement?.tags).toMatchObject({
      'annex:id': annex.id,
      'annex:expires-at': annex.expiresAt,
      'annex:batch': '2',
    });
    expect(replacement?.instanceType).toBe('m5.large');
    expect(eventsOf(annex.id, 'replacement-requested')).toHaveLength(1);
  });

  it('stops at maxReplacements', async () => {
    // Prepare
    const { annex, ids } = await launched({ count: 3, replaceInterrupted: true, maxReplacements: 1 });

    // Act
    const first = await deliver('spot-interruption-warning', ids[0] ?? '');
    const second = await deliver('spot-interruption-warning', ids[1] ?? '');

    // Assess
    expect([first.replacement, second.replacement]).toEqual(['started', 'limit-reached']);
    expect((await store.getAnnex(annex.id))?.replacements).toBe(1);
  });

  it('does not replace when 15 minutes or less of the lease are left', async () => {
    // Prepare
    const { annex, first } = await launched({ replaceInterrupted: true });
    clock.advance(3600 - 15 * 60);

    // Act
    const outcome = await deliver('spot-interruption-warning', first);

    // Assess
    expect(outcome.replacement).toBe('lease-too-short');
    expect((await store.getAnnex(annex.id))?.batches).toBe(1);
  });

  it('does not replace unless asked, nor on-demand instances', async () => {
    // Prepare
    const spot = await launched();
    const onDemand = await launched({ name: 'steady', market: 'on-demand', replaceInterrupted: true });

    // Act
    const notAsked = await deliver('spot-interruption-warning', spot.first);
    const notSpot = await deliver('spot-interruption-warning', onDemand.first);

    // Assess
    expect([notAsked.replacement, notSpot.replacement]).toEqual(['not-asked', 'not-spot']);
  });

  it('refuses maxReplacements without replaceInterrupted, naming the field', async () => {
    // Act
    const refused = await launched({ maxReplacements: 2 }).catch((e: unknown) => e);

    // Assess
    expect(refused).toMatchObject({ code: 'ValidationError', field: 'maxReplacements' });
    expect(store.annexes.size).toBe(0);
  });

  it('defaults to three replacements per annex', async () => {
    // Prepare
    const { annex } = await launched({ replaceInterrupted: true });

    // Assess
    expect(annex).toMatchObject({ replaceInterrupted: true, maxReplacements: 3, replacements: 0 });
  });

  it('resumes a replacement whose launch failed when the warning is delivered again', async () => {
    // Prepare
    const { annex, first } = await launched({ replaceInterrupted: true });
    compute.faults.failNext('launch', Object.assign(new Error('timeout'), { name: 'TimeoutError' }));

    // Act
    const failed = await deliver('spot-interruption-warning', first).catch((e: unknown) => e);
    const retried = await deliver('spot-interruption-warning', first);

    // Assess
    expect(failed).toBeInstanceOf(Error);
    expect(retried.replacement).toBe('already');
    expect(await store.getAnnex(annex.id)).toMatchObject({ state: 'RUNNING', replacements: 1, batches: 2 });
    expect(compute.running().filter((i) => i.batch === 2)).toHaveLength(1);
  });
});
