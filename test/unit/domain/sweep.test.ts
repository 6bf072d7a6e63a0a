import { beforeEach, describe, expect, it } from 'vitest';
import { addNodes } from '../../../shared/domain/annex-nodes.ts';
import { createAnnex, type CreateAnnexInput } from '../../../shared/domain/annex-create.ts';
import { deleteAnnex, expireAnnex } from '../../../shared/domain/annex-end.ts';
import { extendAnnex } from '../../../shared/domain/annex-extend.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import { upstreamUnavailable } from '../../../shared/domain/errors.ts';
import type { Annex, Caller, InstanceRecord } from '../../../shared/domain/model.ts';
import { sweep, type SweepDeps } from '../../../shared/domain/sweep.ts';
import { domainDeps, putDefaultPool, TEST_SWEEP as SWEEP } from '../../support/domain-deps.ts';
import {
  StampingLeaseStore,
  type FakeClock,
  type FakeCompute,
  type FakeSchedules,
  type FakeSecrets,
  type silentLogger,
} from '../../support/fakes.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };

const UNKNOWN_ANNEX = 'ax-00000000000000000000';

/**
 * The live listing is a GSI, eventually consistent: `lagging` annexes are live in the table but not
 * in the listing yet; `stale` annexes are listed as they were when `freeze` was called.
 */
class LaggingLiveIndexStore extends StampingLeaseStore {
  readonly lagging = new Set<string>();
  readonly stale = new Map<string, Annex>();
  freeze(annex: Annex): void {
    this.stale.set(annex.id, structuredClone(annex));
  }
  override async listLiveAnnexes(): Promise<Annex[]> {
    return (await super.listLiveAnnexes())
      .filter((a) => !this.lagging.has(a.id))
      .map((a) => structuredClone(this.stale.get(a.id) ?? a));
  }
}

const input = (over: Partial<CreateAnnexInput> = {}): CreateAnnexInput => ({
  name: 'ToddsGPU',
  pool: 'default',
  count: 2,
  instanceTypes: ['p2.xlarge'],
  market: 'on-demand',
  ...over,
});

const crash = () => new Error('crash: the function died here');

let clock: FakeClock;
let store: LaggingLiveIndexStore;
let compute: FakeCompute;
let secrets: FakeSecrets;
let schedules: FakeSchedules;
let log: ReturnType<typeof silentLogger>;
let deps: LaunchDeps & SweepDeps;

beforeEach(async () => {
  ({ clock, store, compute, secrets, schedules, log, deps } = domainDeps({
    store: (c) => new LaggingLiveIndexStore(c),
    with: { sweep: SWEEP },
  }));
  await putDefaultPool(deps);
});

const create = async (over: Partial<CreateAnnexInput> = {}): Promise<Annex> =>
  (await createAnnex(deps, alice, input(over))).annex;

/** Creates an annex whose request dies with `fault` half-way; returns the annex as it was left. */
const createDying = async (fail: () => void, over: Partial<CreateAnnexInput> = {}): Promise<Annex> => {
  fail();
  await expect(createAnnex(deps, alice, input(over))).rejects.toThrow();
  return annexNamed(over.name ?? 'ToddsGPU');
};

const annexNamed = (name: string): Annex => {
  const found = [...store.annexes.values()].filter((a) => a.name === name).at(-1);
  if (found === undefined) throw new Error(`no annex named ${name}`);
  return found;
};

const current = (id: string): Annex => {
  const annex = store.annexes.get(id);
  if (annex === undefined) throw new Error(`no annex ${id}`);
  return annex;
};

const eventsOf = (id: string) => store.events.filter((e) => e.annexId === id);

const recordsOf = (id: string): InstanceRecord[] =>
  [...store.instances.values()].filter((r) => r.annexId === id);

const runningIds = (): string[] =>
  compute
    .running()
    .map((i) => i.instanceId)
    .sort();

const isRunning = (instanceId: string): boolean => compute.instances.get(instanceId)?.state === 'running';

const ago = (seconds: number): Date => new Date(clock.now().getTime() - seconds * 1000);

const secondsUntil = (iso: string): number => (Date.parse(iso) - clock.now().getTime()) / 1000;

/** Writes what the instance agent would report into the store's record of that instance. */
const heartbeat = (record: InstanceRecord, fields: Partial<InstanceRecord>): void => {
  store.instances.set(`${record.annexId}|${record.instanceId}`, {
    ...record,
    lastHeartbeatAt: clock.now().toISOString(),
    totalSlots: 1,
    ...fields,
  });
};

const fireAtOf = (expiresAt: string): string =>
  new Date(Math.ceil(Date.parse(expiresAt) / 1000) * 1000).toISOString();

describe('sweep: expired leases', () => {
  it('ends a lease at its expiry as TERMINATED for reason expired, with an expired event', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(600);

    const report = await sweep(deps);

    expect(current(annex.id)).toMatchObject({ state: 'TERMINATED', endReason: 'expired' });
    expect(eventsOf(annex.id).find((e) => e.type === 'expired')).toMatchObject({ reason: 'expired' });
    expect(report.actions).toContainEqual({
      action: 'end-annex',
      reason: 'expired',
      annexId: annex.id,
      instanceIds: recordsOf(annex.id).map((r) => r.instanceId),
    });
  });

  it('terminates the instances of an expired lease and records them as terminated', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(600);

    await sweep(deps);

    expect(compute.running()).toEqual([]);
    expect(recordsOf(annex.id).map((r) => r.state)).toEqual(['terminated', 'terminated']);
  });

  it('deletes the credential copy and the schedule of an expired lease and frees its name', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(600);

    await sweep(deps);

    expect(secrets.annexParameters()).toEqual([]);
    expect(schedules.forAnnex(annex.id)).toEqual([]);
    expect(store.nameClaims.size).toBe(0);
    await create({ durationSeconds: 600 });
  });

  it('leaves a lease alone one second before it expires', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(599);

    const report = await sweep(deps);

    expect(current(annex.id).state).toBe('RUNNING');
    expect(compute.running()).toHaveLength(2);
    expect(report.actions).toEqual([]);
  });
});

describe('sweep: terminations that stopped half-way', () => {
  const deleteDying = async (): Promise<void> => {
    compute.faults.failNext('terminate', crash());
    await expect(deleteAnnex(deps, alice, { name: 'ToddsGPU' })).rejects.toThrow('crash');
  };

  it('finishes a TERMINATING annex older than orphanMinAge, keeping its reason', async () => {
    const annex = await create();
    await deleteDying();
    expect(current(annex.id)).toMatchObject({ state: 'TERMINATING', endReason: 'user' });
    clock.advance(SWEEP.orphanMinAgeSeconds);

    const report = await sweep(deps);

    expect(current(annex.id)).toMatchObject({ state: 'TERMINATED', endReason: 'user' });
    expect(compute.running()).toEqual([]);
    expect(secrets.annexParameters()).toEqual([]);
    expect(report.actions).toEqual([{ action: 'finish-termination', reason: 'user', annexId: annex.id }]);
  });

  it('leaves an annex that became TERMINATING less than orphanMinAge ago alone, however old it is', async () => {
    const annex = await create();
    clock.advance(300);
    await deleteDying();
    clock.advance(SWEEP.orphanMinAgeSeconds - 1);

    const report = await sweep(deps);

    expect(current(annex.id).state).toBe('TERMINATING');
    expect(report.actions).toEqual([]);
  });
});

describe('sweep: launches stuck in REQUESTED or LAUNCHING', () => {
  it('adopts a stuck first batch that EC2 launched, found by tag, and makes the annex RUNNING', async () => {
    const annex = await createDying(() =>
      compute.faults.failNext('launch:after', upstreamUnavailable('EC2 did not answer')),
    );
    expect(annex.state).toBe('LAUNCHING');
    const launched = runningIds();
    clock.advance(SWEEP.stuckAfterSeconds);

    const report = await sweep(deps);

    expect(current(annex.id).state).toBe('RUNNING');
    expect(current(annex.id).launching).toBeUndefined();
    expect(
      recordsOf(annex.id)
        .map((r) => r.instanceId)
        .sort(),
    ).toEqual(launched);
    expect(compute.launches()).toBe(1);
    expect(report.actions).toContainEqual({
      action: 'repair-launch',
      reason: 'launch-stuck',
      annexId: annex.id,
    });
  });

  it('fails a stuck first batch that EC2 never launched: FAILED, credential deleted, name freed', async () => {
    const annex = await createDying(() =>
      compute.faults.failNext('launch', upstreamUnavailable('EC2 did not answer')),
    );
    expect(compute.running()).toEqual([]);
    clock.advance(SWEEP.stuckAfterSeconds);

    await sweep(deps);

    expect(current(annex.id)).toMatchObject({ state: 'FAILED', endReason: 'launch-failed' });
    expect(secrets.annexParameters()).toEqual([]);
    expect(store.nameClaims.size).toBe(0);
    expect(compute.launches()).toBe(1);
  });

  it('fails a stuck REQUESTED annex cleanly', async () => {
    const annex = await createDying(() => store.faults.failNext('updateAnnex', crash()));
    expect(annex.state).toBe('REQUESTED');
    clock.advance(SWEEP.stuckAfterSeconds);

    await sweep(deps);

    expect(current(annex.id)).toMatchObject({ state: 'FAILED', endReason: 'launch-failed' });
    expect(secrets.annexParameters()).toEqual([]);
    expect(compute.launches()).toBe(0);
  });

  it.each([
    ['LAUNCHING', () => compute.faults.failNext('launch', upstreamUnavailable('EC2 did not answer'))],
    ['REQUESTED', () => store.faults.failNext('updateAnnex', crash())],
    ['REQUESTED without a schedule yet', () => schedules.faults.failNext('schedule', crash())],
  ])('leaves no expiry schedule behind for a stuck launch it fails (%s)', async (_, fail) => {
    const annex = await createDying(fail);
    clock.advance(SWEEP.stuckAfterSeconds);

    await sweep(deps);

    expect(current(annex.id).state).toBe('FAILED');
    expect(schedules.forAnnex(annex.id)).toEqual([]);
  });

  it('gives up a stuck later batch that EC2 never launched: RUNNING again, requestedCount reduced', async () => {
    const annex = await create({ count: 2 });
    compute.faults.failNext('launch', upstreamUnavailable('EC2 did not answer'));
    await expect(addNodes(deps, alice, { name: 'ToddsGPU' }, { count: 3 })).rejects.toThrow();
    expect(current(annex.id)).toMatchObject({ state: 'LAUNCHING', requestedCount: 5 });
    clock.advance(SWEEP.stuckAfterSeconds);

    const report = await sweep(deps);

    expect(current(annex.id)).toMatchObject({ state: 'RUNNING', requestedCount: 2 });
    expect(current(annex.id).launching).toBeUndefined();
    expect(compute.running()).toHaveLength(2);
    expect(eventsOf(annex.id).at(-1)).toMatchObject({ type: 'launch-stuck', reason: 'launch-failed' });
    expect(report.actions).toContainEqual({
      action: 'repair-launch',
      reason: 'launch-stuck',
      annexId: annex.id,
    });
  });

  it('adopts a stuck later batch that EC2 launched', async () => {
    const annex = await create({ count: 2 });
    compute.faults.failNext('launch:after', upstreamUnavailable('EC2 did not answer'));
    await expect(addNodes(deps, alice, { name: 'ToddsGPU' }, { count: 3 })).rejects.toThrow();
    clock.advance(SWEEP.stuckAfterSeconds);

    await sweep(deps);

    expect(current(annex.id)).toMatchObject({ state: 'RUNNING', requestedCount: 5 });
    expect(recordsOf(annex.id)).toHaveLength(5);
    expect(compute.launches()).toBe(2);
  });

  it('leaves a launch alone until it has been LAUNCHING for stuckAfter', async () => {
    const annex = await createDying(() =>
      compute.faults.failNext('launch', upstreamUnavailable('EC2 did not answer')),
    );
    clock.advance(SWEEP.stuckAfterSeconds - 1);

    const report = await sweep(deps);

    expect(current(annex.id).state).toBe('LAUNCHING');
    expect(report.actions.filter((a) => a.action === 'repair-launch')).toEqual([]);
  });
});

describe('sweep: boot timeout and idleness', () => {
  it('terminates an instance that has not reported within bootGrace, for reason boot-timeout', async () => {
    const annex = await create();
    clock.advance(SWEEP.bootGraceSeconds);

    const report = await sweep(deps);

    const ids = recordsOf(annex.id).map((r) => r.instanceId);
    expect(compute.running()).toEqual([]);
    expect(recordsOf(annex.id).every((r) => r.state === 'terminated')).toBe(true);
    expect(eventsOf(annex.id).at(-1)).toMatchObject({
      type: 'instances-terminated',
      reason: 'boot-timeout',
      detail: { instanceIds: ids },
    });
    expect(report.actions).toContainEqual({
      action: 'terminate-instance',
      reason: 'boot-timeout',
      annexId: annex.id,
      instanceIds: ids,
    });
    expect(current(annex.id).state).toBe('RUNNING');
  });

  it('leaves an instance that has not reported yet alone within bootGrace', async () => {
    await create();
    clock.advance(SWEEP.bootGraceSeconds - 1);

    await sweep(deps);

    expect(compute.running()).toHaveLength(2);
  });

  it('terminates an instance idle for longer than the annex idle time, for reason idle', async () => {
    const annex = await create({ idleSeconds: 300 });
    clock.advance(400);
    const [idle, busy] = recordsOf(annex.id);
    if (idle === undefined || busy === undefined) throw new Error('expected two instances');
    heartbeat(idle, { claimedSlots: 0, idleSince: ago(300).toISOString() });
    heartbeat(busy, { claimedSlots: 1 });

    const report = await sweep(deps);

    expect(runningIds()).toEqual([busy.instanceId]);
    expect(store.instances.get(`${annex.id}|${idle.instanceId}`)?.state).toBe('terminated');
    expect(eventsOf(annex.id).at(-1)).toMatchObject({
      type: 'instances-terminated',
      reason: 'idle',
      detail: { instanceIds: [idle.instanceId] },
    });
    expect(report.actions).toContainEqual({
      action: 'terminate-instance',
      reason: 'idle',
      annexId: annex.id,
      instanceIds: [idle.instanceId],
    });
  });

  it('leaves an idle instance alone until the annex idle time has passed', async () => {
    const annex = await create({ idleSeconds: 300 });
    clock.advance(400);
    for (const r of recordsOf(annex.id)) heartbeat(r, { claimedSlots: 0, idleSince: ago(299).toISOString() });

    await sweep(deps);

    expect(compute.running()).toHaveLength(2);
  });

  it('leaves a claimed instance alone, long after bootGrace and the idle time', async () => {
    const annex = await create({ idleSeconds: 300 });
    clock.advance(SWEEP.bootGraceSeconds + 600);
    for (const r of recordsOf(annex.id)) heartbeat(r, { claimedSlots: 1 });

    const report = await sweep(deps);

    expect(compute.running()).toHaveLength(2);
    expect(report.actions).toEqual([]);
  });

  it('records an instance that terminated itself as terminated (record-instance-gone)', async () => {
    const annex = await create();
    const [gone, kept] = recordsOf(annex.id);
    if (gone === undefined || kept === undefined) throw new Error('expected two instances');
    compute.selfTerminate(gone.instanceId);
    clock.advance(SWEEP.orphanMinAgeSeconds);

    const report = await sweep(deps);

    expect(store.instances.get(`${annex.id}|${gone.instanceId}`)?.state).toBe('terminated');
    expect(store.instances.get(`${annex.id}|${kept.instanceId}`)?.state).toBe('running');
    expect(eventsOf(annex.id).at(-1)).toMatchObject({
      type: 'instances-gone',
      detail: { instanceIds: [gone.instanceId] },
    });
    expect(report.actions).toEqual([
      { action: 'record-instance-gone', reason: 'drift', annexId: annex.id, instanceIds: [gone.instanceId] },
    ]);
  });
});

describe('sweep: orphans', () => {
  const tagsFor = (annexId: string, stage = 'test') => ({ 'annex:id': annexId, 'annex:stage': stage });

  it('terminates an instance tagged for this stage with an unknown annex id, older than orphanMinAge', async () => {
    const orphan = compute.startByHand(tagsFor(UNKNOWN_ANNEX), ago(SWEEP.orphanMinAgeSeconds));

    const report = await sweep(deps);

    expect(isRunning(orphan)).toBe(false);
    expect(report.actions).toEqual([
      { action: 'terminate-orphan', reason: 'orphan', annexId: UNKNOWN_ANNEX, instanceIds: [orphan] },
    ]);
  });

  it('leaves such an instance alone while it is younger than orphanMinAge', async () => {
    const young = compute.startByHand(tagsFor(UNKNOWN_ANNEX), ago(SWEEP.orphanMinAgeSeconds - 1));

    const report = await sweep(deps);

    expect(isRunning(young)).toBe(true);
    expect(report.actions).toEqual([]);
  });

  it('terminates an instance still running after its annex ended, and records it on the annex', async () => {
    const annex = await create();
    await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    const late = compute.startByHand({ ...tagsFor(annex.id), 'annex:batch': '1' }, ago(60));

    const report = await sweep(deps);

    expect(isRunning(late)).toBe(false);
    expect(store.instances.get(`${annex.id}|${late}`)?.state).toBe('terminated');
    expect(eventsOf(annex.id).at(-1)).toMatchObject({ type: 'orphans-terminated', reason: 'orphan' });
    expect(report.actions).toEqual([
      { action: 'terminate-orphan', reason: 'orphan', annexId: annex.id, instanceIds: [late] },
    ]);
  });

  it('never touches an instance tagged for another stage', async () => {
    const other = compute.startByHand(tagsFor(UNKNOWN_ANNEX, 'prod'), ago(86400));

    const report = await sweep(deps);

    expect(isRunning(other)).toBe(true);
    expect(compute.calls.filter((c) => c.method === 'terminate')).toEqual([]);
    expect(report.actions).toEqual([]);
  });

  it('never touches an instance without an annex id tag', async () => {
    const untagged = compute.startByHand({ Name: 'someone-elses' }, ago(86400));
    const stageOnly = compute.startByHand({ 'annex:stage': 'test' }, ago(86400));

    const report = await sweep(deps);

    expect(isRunning(untagged)).toBe(true);
    expect(isRunning(stageOnly)).toBe(true);
    expect(report.actions).toEqual([]);
  });

  it('ending an expired lease leaves alone another stage’s instance that carries the same annex id', async () => {
    // The same caller and Idempotency-Key in two stages of one account give the same annex id.
    const annex = await create({ durationSeconds: 600 });
    const twin = compute.startByHand({ ...tagsFor(annex.id, 'prod'), 'annex:batch': '1' }, ago(0));
    clock.advance(600);

    await sweep(deps);

    expect(current(annex.id).state).toBe('TERMINATED');
    expect(isRunning(twin)).toBe(true);
  });

  it('leaves alone the instances of an annex that is live but missing from the lagging live listing', async () => {
    const annex = await create();
    store.lagging.add(annex.id);
    clock.advance(120);

    const report = await sweep(deps);

    expect(compute.running()).toHaveLength(2);
    expect(secrets.annexParameters()).toHaveLength(1);
    expect(schedules.forAnnex(annex.id)).toHaveLength(1);
    expect(report.actions).toEqual([]);
  });
});

describe('sweep: a live listing that lags behind an extension', () => {
  const extendBehindTheIndex = async (): Promise<Annex> => {
    const annex = await create();
    store.freeze(annex);
    return extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 7200 });
  };

  it('keeps the expiry schedule of the new expiry', async () => {
    const extended = await extendBehindTheIndex();

    await sweep(deps);

    expect(schedules.forAnnex(extended.id)).toEqual([fireAtOf(extended.expiresAt)]);
  });

  it('never ends a lease the listing still shows expired', async () => {
    const annex = await create({ durationSeconds: 600 });
    store.freeze(annex);
    clock.advance(300);
    await extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 3600 });
    clock.advance(300);

    await sweep(deps);

    expect(current(annex.id).state).toBe('RUNNING');
    expect(compute.running()).toHaveLength(2);
  });

  it('enforces the idle time of the latest extension', async () => {
    const annex = await create({ idleSeconds: 300 });
    store.freeze(annex);
    await extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 7200, idleSeconds: 3600 });
    clock.advance(400);
    for (const r of recordsOf(annex.id)) heartbeat(r, { claimedSlots: 0, idleSince: ago(400).toISOString() });

    await sweep(deps);

    expect(compute.running()).toHaveLength(2);
  });

  it('does not roll the expires-at tags back to the old expiry', async () => {
    const extended = await extendBehindTheIndex();

    await sweep(deps);

    expect(compute.running().map((i) => i.tags['annex:expires-at'])).toEqual([
      extended.expiresAt,
      extended.expiresAt,
    ]);
  });
});

describe('sweep: leaks and drift', () => {
  it('deletes the leaked credential copy of an ended annex', async () => {
    const annex = await create();
    secrets.faults.failNext('deleteAnnexCredential', crash());
    await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    expect(secrets.annexParameters()).toHaveLength(1);

    const report = await sweep(deps);

    expect(secrets.annexParameters()).toEqual([]);
    expect(report.actions).toEqual([{ action: 'delete-parameter', reason: 'leak', annexId: annex.id }]);
  });

  it('deletes the leaked expiry schedule of an ended annex', async () => {
    const annex = await create();
    schedules.faults.failNext('cancel', crash());
    await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    expect(schedules.forAnnex(annex.id)).toHaveLength(1);

    const report = await sweep(deps);

    expect(schedules.forAnnex(annex.id)).toEqual([]);
    expect(report.actions).toEqual([{ action: 'delete-schedule', reason: 'leak', annexId: annex.id }]);
  });

  it('keeps the credential copy and the expiry schedule of a live annex', async () => {
    const annex = await create();
    clock.advance(120);

    await sweep(deps);

    expect(secrets.annexParameters()).toHaveLength(1);
    expect(schedules.forAnnex(annex.id)).toEqual([fireAtOf(annex.expiresAt)]);
  });

  it('re-creates the expiry schedule of a live lease that has none', async () => {
    const annex = await create();
    await schedules.cancel(annex.id, annex.expiresAt);

    const report = await sweep(deps);

    expect(schedules.forAnnex(annex.id)).toEqual([fireAtOf(annex.expiresAt)]);
    expect(report.actions).toEqual([{ action: 'schedule-expiry', reason: 'drift', annexId: annex.id }]);
  });

  it('deletes the schedule of an old expiry that an extension could not cancel', async () => {
    const annex = await create();
    const extended = await extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 7200 });
    await schedules.schedule(annex.id, annex.expiresAt);

    const report = await sweep(deps);

    expect(schedules.forAnnex(annex.id)).toEqual([fireAtOf(extended.expiresAt)]);
    expect(report.actions).toEqual([{ action: 'delete-schedule', reason: 'leak', annexId: annex.id }]);
  });

  it('retags instances whose expires-at tag is stale', async () => {
    const annex = await create();
    const { expiresAt } = await extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 7200 });
    // The extension died before it retagged.
    for (const i of compute.running()) i.tags['annex:expires-at'] = annex.expiresAt;

    const report = await sweep(deps);

    expect(compute.running().map((i) => i.tags['annex:expires-at'])).toEqual([expiresAt, expiresAt]);
    expect(report.actions).toContainEqual({
      action: 'retag',
      reason: 'drift',
      annexId: annex.id,
      instanceIds: recordsOf(annex.id).map((r) => r.instanceId),
    });
  });
});

describe('sweep: isolation and logging', () => {
  it('keeps going when one annex fails, and counts the failure in errors', async () => {
    const first = await create({ name: 'first', durationSeconds: 600 });
    const second = await create({ name: 'second', durationSeconds: 600 });
    clock.advance(600);
    store.faults.failNext('listInstances', crash());

    const report = await sweep(deps);

    const states = [current(first.id).state, current(second.id).state].sort();
    expect(states).toEqual(['TERMINATED', 'TERMINATING']);
    expect(report.errors).toBe(1);
    const failed = current(first.id).state === 'TERMINATING' ? first : second;
    expect(log.lines.filter((l) => l.level === 'error')).toEqual([
      {
        level: 'error',
        message: 'sweep step failed; the next sweep retries',
        fields: expect.objectContaining({ step: 'lease', annexId: failed.id, detail: expect.any(String) }),
      },
    ]);
  });

  it('finishes on the next sweep what a failed step left', async () => {
    await create({ durationSeconds: 600 });
    clock.advance(600);
    store.faults.failNext('listInstances', crash());
    await sweep(deps);

    const report = await sweep(deps);

    expect(report.errors).toBe(0);
    expect([...store.annexes.values()].map((a) => a.state)).toEqual(['TERMINATED']);
    expect(compute.running()).toEqual([]);
  });

  it('logs every action once, with its reason', async () => {
    const expired = await create({ name: 'expired', durationSeconds: 600 });
    secrets.faults.failNext('deleteAnnexCredential', crash());
    const deleted = await create({ name: 'deleted' });
    await deleteAnnex(deps, alice, { name: 'deleted' });
    clock.advance(600);
    const orphan = compute.startByHand({ 'annex:id': UNKNOWN_ANNEX, 'annex:stage': 'test' }, ago(600));

    const report = await sweep(deps);

    expect(report.actions.map((a) => [a.action, a.annexId]).sort()).toEqual(
      [
        ['delete-parameter', deleted.id],
        ['end-annex', expired.id],
        ['terminate-orphan', UNKNOWN_ANNEX],
      ].sort(),
    );
    expect(report.actions.find((a) => a.action === 'terminate-orphan')?.instanceIds).toEqual([orphan]);
    const logged = log.lines.filter((l) => l.message === 'sweep action');
    expect(logged.map((l) => l.fields)).toEqual(report.actions);
    expect(
      logged.every(
        (l) => l.level === 'info' && typeof (l.fields as { reason?: unknown }).reason === 'string',
      ),
    ).toBe(true);
  });

  it('reports what it saw and when', async () => {
    await create();
    compute.startByHand({ 'annex:id': UNKNOWN_ANNEX, 'annex:stage': 'test' });

    const report = await sweep(deps);

    expect(report).toMatchObject({
      startedAt: clock.now().toISOString(),
      finishedAt: clock.now().toISOString(),
      liveAnnexes: 1,
      taggedInstances: 3,
      errors: 0,
    });
  });
});

describe('expireAnnex', () => {
  const fireDue = async (): Promise<(Annex | undefined)[]> => {
    const results: (Annex | undefined)[] = [];
    for (const s of schedules.due(clock.now())) results.push(await expireAnnex(deps, s.annexId));
    return results;
  };

  it('ends the annex for reason expired when its schedule fires on time', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(600);

    const [ended] = await fireDue();

    expect(ended).toMatchObject({ id: annex.id, state: 'TERMINATED', endReason: 'expired' });
    expect(compute.running()).toEqual([]);
    expect(secrets.annexParameters()).toEqual([]);
    expect(eventsOf(annex.id).map((e) => e.type)).toEqual([
      'created',
      'credentials-stored',
      'launched',
      'expired',
      'terminated',
    ]);
  });

  it('does not fire before the expiry', async () => {
    await create({ durationSeconds: 600 });
    clock.advance(599);

    expect(await fireDue()).toEqual([]);
  });

  it('does nothing when it fires a second time', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(600);
    const first = await expireAnnex(deps, annex.id);
    const events = store.events.length;
    const calls = compute.calls.length;

    const second = await expireAnnex(deps, annex.id);

    expect(second).toEqual(first);
    expect(store.events.length).toBe(events);
    expect(compute.calls.length).toBe(calls);
  });

  it('ends nothing after an extension, and makes sure the new expiry is scheduled', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(300);
    const { expiresAt } = await extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 3600 });
    // The extension was written, but its schedule was not moved: the old one is left, the new one missing.
    await schedules.schedule(annex.id, annex.expiresAt);
    await schedules.cancel(annex.id, expiresAt);
    clock.advance(secondsUntil(annex.expiresAt));

    const [fired] = await fireDue();

    expect(fired).toMatchObject({ state: 'RUNNING', expiresAt });
    expect(compute.running()).toHaveLength(2);
    expect(schedules.forAnnex(annex.id)).toEqual([fireAtOf(expiresAt)]);
    expect(eventsOf(annex.id).map((e) => e.type)).not.toContain('expired');
  });

  /** A wait as the expire function waits, on the fake clock; `during` runs in the middle of each. */
  const waitOnClock = (during: () => Promise<void> = async () => {}) => {
    const waited: number[] = [];
    return {
      waited,
      wait: {
        maxWaitMs: 120_000,
        sleep: async (ms: number) => {
          waited.push(ms);
          clock.advance(ms / 2000);
          await during();
          clock.advance(ms / 2000);
        },
      },
    };
  };

  it('invoked early, as the Scheduler fires within the minute before, waits and ends the annex at its exact second', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(600 - 73.4);
    const { waited, wait } = waitOnClock();

    const ended = await expireAnnex(deps, annex.id, wait);

    expect(waited).toEqual([73_400]);
    expect(ended).toMatchObject({ state: 'TERMINATED', endReason: 'expired' });
    expect(store.events.find((e) => e.annexId === annex.id && e.type === 'expired')?.at).toBe(
      annex.expiresAt,
    );
    expect(compute.running()).toEqual([]);
  });

  it('invoked early for a lease extended during the wait, ends nothing and keeps the new expiry scheduled', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(600 - 90);
    let expiresAt = '';
    const { waited, wait } = waitOnClock(async () => {
      if (expiresAt === '')
        ({ expiresAt } = await extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 3600 }));
    });

    const result = await expireAnnex(deps, annex.id, wait);

    expect(waited).toEqual([90_000]);
    expect(result).toMatchObject({ state: 'RUNNING', expiresAt });
    expect(compute.running()).toHaveLength(2);
    expect(schedules.forAnnex(annex.id)).toEqual([fireAtOf(expiresAt)]);
    expect(eventsOf(annex.id).map((e) => e.type)).not.toContain('expired');
  });

  it('waits again when an extension during the wait moves the expiry to within the wait', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(600 - 30);
    let extended = '';
    const { waited, wait } = waitOnClock(async () => {
      if (extended === '')
        ({ expiresAt: extended } = await extendAnnex(
          deps,
          alice,
          { name: 'ToddsGPU' },
          { durationSeconds: 60 },
        ));
    });

    const ended = await expireAnnex(deps, annex.id, wait);

    expect(waited).toEqual([30_000, 45_000]);
    expect(ended).toMatchObject({ state: 'TERMINATED', endReason: 'expired', expiresAt: extended });
    expect(store.events.find((e) => e.annexId === annex.id && e.type === 'expired')?.at).toBe(extended);
  });

  it('invoked early for an annex deleted during the wait, does nothing more', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(600 - 50);
    const { wait } = waitOnClock(async () => {
      await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    });
    const calls = () => compute.calls.filter((c) => c.method === 'terminate').length;
    let before = 0;
    const result = await expireAnnex(deps, annex.id, {
      ...wait,
      sleep: async (ms) => {
        await wait.sleep(ms);
        before = calls();
      },
    });

    expect(result).toMatchObject({ state: 'TERMINATED', endReason: 'user' });
    expect(calls()).toBe(before);
    expect(eventsOf(annex.id).map((e) => e.type)).not.toContain('expired');
  });

  it('does not wait for an expiry beyond its longest wait, and keeps that expiry scheduled', async () => {
    const annex = await create({ durationSeconds: 600 });
    clock.advance(600 - 121);
    schedules.reset();
    const { waited, wait } = waitOnClock();

    const result = await expireAnnex(deps, annex.id, wait);

    expect(waited).toEqual([]);
    expect(result).toMatchObject({ state: 'RUNNING' });
    expect(schedules.forAnnex(annex.id)).toEqual([fireAtOf(annex.expiresAt)]);
  });

  it('does nothing for an annex that does not exist', async () => {
    const result = await expireAnnex(deps, UNKNOWN_ANNEX);

    expect(result).toBeUndefined();
    expect(compute.calls).toEqual([]);
    expect(store.events).toEqual([]);
  });
});

describe('extendAnnex and the expiry schedule', () => {
  it('keeps an expiry schedule when an extension lands in the same second as the previous one', async () => {
    // A retried "extend by an hour" a moment later: both expiries round up to the same fire second.
    const annex = await create();
    clock.advance(0.2);
    await extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 3600 });
    clock.advance(0.5);

    const extended = await extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 3600 });

    expect(schedules.forAnnex(annex.id)).toEqual([fireAtOf(extended.expiresAt)]);
  });
});
