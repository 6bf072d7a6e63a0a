/**
 * Property-based simulation of the control plane on the stateful in-memory doubles: users create,
 * extend, grow and delete annexes, time passes with the sweep running every minute, expiry
 * schedules fire, instances power themselves off, strangers start tagged instances by hand, a
 * request may run while a sweep does, and any port call may fail (the next call of a chosen method
 * throws, so any step can die half-way, as a crashed Lambda would).
 *
 * The invariant the whole design exists for, checked after every command: no instance runs later
 * than its lease's expiry plus one sweep period, and no tagged instance outlives its annex by more
 * than orphanMinAge plus one sweep period (each sweep an injected fault hit adds one period). After
 * every sweep no fault hit, the sweep's own post-conditions hold; at the end, after the last lease
 * has run out and a fault-free sweep, nothing is leaked.
 *
 * `ANNEX_SOAK_RUNS=5000` runs it longer; `ANNEX_SIM_SEED` (and fast-check's printed path) replays.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addNodes } from '../../../shared/domain/annex-nodes.ts';
import { createAnnex } from '../../../shared/domain/annex-create.ts';
import { deleteAnnex, expireAnnex } from '../../../shared/domain/annex-end.ts';
import { extendAnnex } from '../../../shared/domain/annex-extend.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import {
  conflict,
  isAnnexError,
  limitExceeded,
  upstreamUnavailable,
  type AnnexErrorCode,
} from '../../../shared/domain/errors.ts';
import { annexIdFor, isLive } from '../../../shared/domain/lease.ts';
import type { Annex, Caller, InstanceRecord } from '../../../shared/domain/model.ts';
import type { Clock, SweepSettings } from '../../../shared/domain/ports.ts';
import { sweep, type SweepDeps, type SweepReport } from '../../../shared/domain/sweep.ts';
import {
  FakeCompute,
  FakeSchedules,
  FakeSecrets,
  StampingLeaseStore,
  silentLogger,
} from '../../support/fakes.ts';
import { putDefaultPool, TEST_LAUNCH, TEST_SWEEP } from '../../support/domain-deps.ts';

const RUNS = Number(process.env.ANNEX_SOAK_RUNS ?? 200);
const SEED = process.env.ANNEX_SIM_SEED === undefined ? undefined : Number(process.env.ANNEX_SIM_SEED);

const STAGE = 'test';
/** The sweep runs every minute (EventBridge `rate(1 minute)`). */
const PERIOD_MS = 60_000;
const SWEEP: SweepSettings = TEST_SWEEP;
const ORPHAN_MIN_AGE_MS = SWEEP.orphanMinAgeSeconds * 1000;
const STUCK_AFTER_MS = SWEEP.stuckAfterSeconds * 1000;

const OWNERS: readonly Caller[] = [
  { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false },
  { principalArn: 'arn:aws:iam::123456789012:user/bob', admin: false },
];
const NAMES = ['gpu', 'cpu'] as const;
const KEYS = ['k1', 'k2'] as const;
const UNKNOWN_ANNEX = 'ax-00000000000000000000';

/** Outcomes a caller is told about; anything else escaping a use case is a bug (or the fault). */
const EXPECTED_ERRORS: ReadonlySet<AnnexErrorCode> = new Set([
  'Conflict',
  'NotFound',
  'ValidationError',
  'LimitExceeded',
]);

type Port = 'store' | 'compute' | 'secrets' | 'schedules';

const FAULT_TARGETS: readonly { port: Port; method: string }[] = [
  ...[
    'getPool',
    'createAnnex',
    'getAnnex',
    'findAnnexByName',
    'updateAnnex',
    'startBatch',
    'putInstances',
    'setInstanceStates',
    'listInstances',
  ].map((method) => ({ port: 'store' as const, method })),
  ...[
    'findBatchInstances',
    'listAnnexInstances',
    'launch',
    'launch:after',
    'listStageInstances',
    'retag',
    'terminate',
  ].map((method) => ({ port: 'compute' as const, method })),
  ...['getCredential', 'putAnnexCredential', 'deleteAnnexCredential', 'listAnnexCredentials'].map(
    (method) => ({ port: 'secrets' as const, method }),
  ),
  ...['schedule', 'cancel', 'list'].map((method) => ({ port: 'schedules' as const, method })),
];

type Command =
  | {
      kind: 'create';
      who: number;
      name: string;
      count: number;
      durationSeconds: number;
      idleSeconds: number | undefined;
      key: string | undefined;
    }
  | { kind: 'extend'; who: number; name: string; durationSeconds: number }
  | { kind: 'addNodes'; who: number; name: string; count: number; key: string | undefined }
  | { kind: 'delete'; who: number; name: string }
  /** Time passes; the sweep runs at every minute boundary crossed. */
  | { kind: 'advance'; ms: number }
  | { kind: 'fireSchedules' }
  /** An extra sweep now (a manual invocation, or a retry of a failed one). */
  | { kind: 'sweep' }
  | { kind: 'selfTerminate'; pick: number }
  /** The instance agent reports: slots claimed or not. */
  | { kind: 'heartbeat'; pick: number; claimed: boolean }
  | {
      kind: 'stranger';
      annex: number;
      stage: 'ours' | 'other' | 'untagged';
      batch: number | undefined;
      ageSeconds: number;
    }
  | { kind: 'fault'; target: number; error: 'crash' | 'unavailable' | 'refusal' }
  /** A request that runs while a sweep does (their awaits interleave). */
  | { kind: 'race'; request: Request };

type Request = Extract<Command, { kind: 'create' | 'extend' | 'addNodes' | 'delete' }>;

const who = fc.integer({ min: 0, max: OWNERS.length - 1 });
const name = fc.constantFrom(...NAMES);
const key = fc.option(fc.constantFrom(...KEYS), { nil: undefined });
const duration = fc.oneof(fc.constantFrom(60, 600, 3600), fc.integer({ min: 60, max: 3600 }));

const createArb = fc.record({
  kind: fc.constant('create' as const),
  who,
  name,
  count: fc.integer({ min: 1, max: 3 }),
  durationSeconds: duration,
  idleSeconds: fc.option(fc.constantFrom(120, 900), { nil: undefined }),
  key,
});
const extendArb = fc.record({ kind: fc.constant('extend' as const), who, name, durationSeconds: duration });
const addNodesArb = fc.record({
  kind: fc.constant('addNodes' as const),
  who,
  name,
  count: fc.integer({ min: 1, max: 3 }),
  key,
});
const deleteArb = fc.record({ kind: fc.constant('delete' as const), who, name });
const requestArb: fc.Arbitrary<Request> = fc.oneof(createArb, extendArb, addNodesArb, deleteArb);

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: createArb },
  { weight: 2, arbitrary: extendArb },
  { weight: 2, arbitrary: addNodesArb },
  { weight: 2, arbitrary: deleteArb },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      // Mostly whole seconds; sometimes a retry a fraction of a second later.
      ms: fc.oneof(
        { weight: 5, arbitrary: fc.integer({ min: 1, max: 900 }).map((s) => s * 1000) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 999 }) },
      ),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'fireSchedules' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'sweep' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('selfTerminate' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('heartbeat' as const), pick: fc.nat(), claimed: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('stranger' as const),
      annex: fc.nat(),
      stage: fc.constantFrom('ours' as const, 'other' as const, 'untagged' as const),
      batch: fc.option(fc.constantFrom(1, 2), { nil: undefined }),
      ageSeconds: fc.integer({ min: 0, max: 120 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('fault' as const),
      target: fc.integer({ min: 0, max: FAULT_TARGETS.length - 1 }),
      error: fc.constantFrom('crash' as const, 'unavailable' as const, 'refusal' as const),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('race' as const), request: requestArb }) },
);

/** Millisecond-exact simulated time (FakeClock advances by float seconds, which can drift by 1 ms). */
class SimClock implements Clock {
  constructor(private ms = Date.parse('2026-11-25T12:00:00.000Z')) {}
  now(): Date {
    return new Date(this.ms);
  }
  advanceMs(ms: number): void {
    this.ms += ms;
  }
}

class InjectedFault extends Error {
  override readonly name = 'InjectedFault';
}

class Violation extends Error {
  override readonly name = 'Violation';
}

const fireSecondIso = (expiresAt: string): string =>
  new Date(Math.ceil(Date.parse(expiresAt) / 1000) * 1000).toISOString();

class World {
  readonly clock = new SimClock();
  readonly store = new StampingLeaseStore(this.clock);
  readonly compute = new FakeCompute(this.clock, STAGE);
  readonly secrets = new FakeSecrets(STAGE);
  readonly schedules = new FakeSchedules();
  readonly log = silentLogger();
  readonly deps: LaunchDeps & SweepDeps;

  private readonly injected = new WeakSet<object>();
  /** Injected faults that have been thrown by a port so far. */
  private faultsFired = 0;
  private faultsFiredAtLastCleanSweep = 0;
  /** A sweep raced a request since the last clean sweep (it may have acted on a stale view). */
  private raced = false;
  /** When each sweep that a fault hit (or that lost a race) ran: each may delay enforcement a period. */
  private readonly faultedSweeps: number[] = [];
  /** When the model first saw an instance started by hand (its launch time may be earlier). */
  private readonly appearedAt = new Map<string, number>();
  /** Instances that are not this stage's (another stage's, or without an annex id). */
  private readonly foreign = new Set<string>();

  constructor() {
    this.deps = {
      store: this.watch(this.store),
      compute: this.watch(this.compute),
      secrets: this.watch(this.secrets),
      schedules: this.watch(this.schedules),
      clock: this.clock,
      log: this.log,
      settings: {
        stage: STAGE,
        maxDurationSeconds: 7 * 86400,
        maxInstancesPerAnnex: 10,
      },
      launch: { ...TEST_LAUNCH },
      sweep: SWEEP,
    };
  }

  static async start(): Promise<World> {
    const world = new World();
    await putDefaultPool(world.deps);
    return world;
  }

  now(): number {
    return this.clock.now().getTime();
  }

  /** Counts the injected faults a port throws, so a sweep they hit is known. */
  private watch<T extends object>(port: T): T {
    return new Proxy(port, {
      get: (target, prop) => {
        const value: unknown = Reflect.get(target, prop);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const noteFault = (e: unknown): never => {
            if (this.isInjected(e)) this.faultsFired++;
            throw e;
          };
          try {
            const out: unknown = value.apply(target, args);
            return out instanceof Promise ? out.catch(noteFault) : out;
          } catch (e) {
            return noteFault(e);
          }
        };
      },
    });
  }

  private isInjected(e: unknown): boolean {
    return typeof e === 'object' && e !== null && this.injected.has(e);
  }

  /** Runs a use case as a request would: expected refusals and the injected fault are outcomes. */
  private async request(fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      if (this.isInjected(e)) return;
      if (isAnnexError(e) && EXPECTED_ERRORS.has(e.code)) return;
      throw e;
    }
  }

  async run(c: Command): Promise<void> {
    switch (c.kind) {
      case 'create': {
        const owner = OWNERS[c.who] as Caller;
        return this.request(() =>
          createAnnex(
            this.deps,
            owner,
            {
              name: c.name,
              pool: 'default',
              count: c.count,
              instanceTypes: ['m5.large'],
              market: 'on-demand',
              durationSeconds: c.durationSeconds,
              ...(c.idleSeconds === undefined ? {} : { idleSeconds: c.idleSeconds }),
            },
            c.key,
          ),
        );
      }
      case 'extend':
        return this.request(() =>
          extendAnnex(
            this.deps,
            OWNERS[c.who] as Caller,
            { name: c.name },
            { durationSeconds: c.durationSeconds },
          ),
        );
      case 'addNodes':
        return this.request(() =>
          addNodes(this.deps, OWNERS[c.who] as Caller, { name: c.name }, { count: c.count }, c.key),
        );
      case 'delete':
        return this.request(() => deleteAnnex(this.deps, OWNERS[c.who] as Caller, { name: c.name }));
      case 'advance':
        return this.advance(c.ms);
      case 'fireSchedules':
        // Each schedule invokes the expire function on its own: one failing does not stop another.
        for (const s of this.schedules.due(this.clock.now())) {
          await this.request(() => expireAnnex(this.deps, s.annexId));
        }
        return;
      case 'sweep':
        await this.sweepOnce();
        return;
      case 'selfTerminate': {
        const ours = this.compute.running().filter((i) => !this.foreign.has(i.instanceId));
        const inst = ours[c.pick % Math.max(1, ours.length)];
        if (inst !== undefined) this.compute.selfTerminate(inst.instanceId);
        return;
      }
      case 'heartbeat':
        return this.heartbeat(c.pick, c.claimed);
      case 'stranger':
        return this.stranger(c);
      case 'race': {
        const before = this.faultsFired;
        const [, failed] = await Promise.all([this.run(c.request), this.racingSweep()]);
        if (failed || this.faultsFired > before) this.faultedSweeps.push(this.now());
        return;
      }
      case 'fault': {
        const target = FAULT_TARGETS[c.target] as (typeof FAULT_TARGETS)[number];
        const error = this.fault(target.method, c.error);
        this.injected.add(error);
        this[target.port].faults.failNext(target.method, error);
        return;
      }
    }
  }

  private fault(method: string, kind: 'crash' | 'unavailable' | 'refusal'): Error {
    const what = `injected into ${method}`;
    if (kind === 'unavailable') return upstreamUnavailable(what);
    if (kind === 'refusal' && (method === 'updateAnnex' || method === 'startBatch')) {
      return conflict(`lost race: ${what}`);
    }
    if (kind === 'refusal' && method === 'launch') return limitExceeded(`no capacity: ${what}`);
    return new InjectedFault(what);
  }

  private heartbeat(pick: number, claimed: boolean): void {
    const live = [...this.store.instances.values()].filter(
      (r) => r.state !== 'terminated' && this.compute.instances.get(r.instanceId)?.state === 'running',
    );
    const r = live[pick % Math.max(1, live.length)];
    if (r === undefined) return;
    const at = this.clock.now().toISOString();
    const { idleSince, ...rest } = r;
    const next: InstanceRecord = {
      ...rest,
      lastHeartbeatAt: at,
      claimedSlots: claimed ? 1 : 0,
      totalSlots: 1,
      ...(claimed ? {} : { idleSince: idleSince ?? at }),
    };
    this.store.instances.set(`${r.annexId}|${r.instanceId}`, next);
  }

  private stranger(c: Extract<Command, { kind: 'stranger' }>): void {
    // An unknown id, an annex that exists, or the id a future create with a key will get.
    const ids = [
      UNKNOWN_ANNEX,
      ...this.store.annexes.keys(),
      ...OWNERS.flatMap((o) => KEYS.map((k) => annexIdFor(STAGE, o.principalArn, k))),
    ];
    const annexId = ids[c.annex % ids.length] as string;
    const tags: Record<string, string> =
      c.stage === 'untagged'
        ? { Name: 'started-by-hand' }
        : {
            'annex:id': annexId,
            'annex:stage': c.stage === 'ours' ? STAGE : 'prod',
            ...(c.batch === undefined ? {} : { 'annex:batch': String(c.batch) }),
          };
    const id = this.compute.startByHand(tags, new Date(this.now() - c.ageSeconds * 1000));
    this.appearedAt.set(id, this.now());
    if (c.stage !== 'ours') this.foreign.add(id);
  }

  /** Time passes with the reaper alive: a sweep at every minute boundary crossed. */
  async advance(ms: number): Promise<void> {
    const target = this.now() + ms;
    for (let b = (Math.floor(this.now() / PERIOD_MS) + 1) * PERIOD_MS; b <= target; b += PERIOD_MS) {
      this.clock.advanceMs(b - this.now());
      await this.sweepOnce();
      this.checkInvariants();
    }
    this.clock.advanceMs(target - this.now());
  }

  async sweepOnce(): Promise<SweepReport | undefined> {
    const before = this.faultsFired;
    let report: SweepReport | undefined;
    try {
      report = await sweep(this.deps);
    } catch (e) {
      if (!this.isInjected(e)) throw e;
    }
    if (this.faultsFired > before) {
      this.faultedSweeps.push(this.now());
      return report;
    }
    if (report === undefined || report.errors > 0) {
      const errors = this.log.lines.filter((l) => l.level === 'error').slice(-3);
      throw new Violation(`a sweep that no fault hit failed: ${JSON.stringify(errors)}`);
    }
    this.checkAfterCleanSweep();
    this.faultsFiredAtLastCleanSweep = this.faultsFired;
    this.raced = false;
    return report;
  }

  /**
   * A sweep while a request runs: it may lose a race (a Conflict, retried by the next sweep) or act
   * on a view the request has just changed, so only the invariants, not its post-conditions, hold.
   */
  private async racingSweep(): Promise<boolean> {
    this.raced = true;
    try {
      return (await sweep(this.deps)).errors > 0;
    } catch (e) {
      if (!this.isInjected(e)) throw e;
      return true;
    }
  }

  private annex(id: string | undefined): Annex | undefined {
    return id === undefined ? undefined : this.store.annexes.get(id);
  }

  private ours(): ReturnType<FakeCompute['running']> {
    return this.compute.running().filter((i) => !this.foreign.has(i.instanceId));
  }

  private violation(message: string, detail: Record<string, unknown> = {}): never {
    throw new Violation(`${message} at ${this.clock.now().toISOString()} ${JSON.stringify(detail)}`);
  }

  /** Fails when `now` is past `deadline`, plus a period for each faulted sweep since `since`. */
  private within(deadline: number, since: number, message: string, detail: Record<string, unknown>): void {
    const now = this.now();
    const slack = this.faultedSweeps.filter((t) => t >= since && t <= now).length * PERIOD_MS;
    if (now > deadline + slack) this.violation(message, { ...detail, slackMs: slack });
  }

  /** Checked after every command, and after every sweep while time passes. */
  checkInvariants(): void {
    for (const inst of this.ours()) {
      const annex = this.annex(inst.tags['annex:id']);
      const launched = Date.parse(inst.launchedAt);
      const detail = { instanceId: inst.instanceId, launchedAt: inst.launchedAt, annex };
      if (annex !== undefined && isLive(annex.state)) {
        const expiry = Date.parse(annex.expiresAt);
        this.within(
          expiry + PERIOD_MS,
          expiry,
          'an instance outlived its lease by more than a sweep',
          detail,
        );
      } else {
        const since = Math.max(
          launched,
          this.appearedAt.get(inst.instanceId) ?? launched,
          annex?.endedAt === undefined ? launched : Date.parse(annex.endedAt),
        );
        this.within(
          since + ORPHAN_MIN_AGE_MS + PERIOD_MS,
          since,
          'an instance outlived its annex by more than orphanMinAge and a sweep',
          detail,
        );
      }
    }
    const clean = this.faultsFired === this.faultsFiredAtLastCleanSweep && !this.raced;
    for (const annex of this.store.annexes.values()) {
      if (!isLive(annex.state)) continue;
      const since = Date.parse(annex.updatedAt);
      if (annex.state === 'REQUESTED' || annex.state === 'LAUNCHING') {
        this.within(since + STUCK_AFTER_MS + PERIOD_MS, since, 'a stuck launch was not repaired', { annex });
      }
      if (annex.state === 'TERMINATING') {
        this.within(since + ORPHAN_MIN_AGE_MS + PERIOD_MS, since, 'a termination was left half-way', {
          annex,
        });
      }
      // With nothing failed since the last clean sweep, every live lease has its exact-expiry schedule.
      if (clean && annex.state !== 'TERMINATING' && Date.parse(annex.expiresAt) > this.now()) {
        const fireAt = fireSecondIso(annex.expiresAt);
        if (!this.schedules.forAnnex(annex.id).includes(fireAt)) {
          this.violation('a live lease has no expiry schedule', {
            annex,
            fireAt,
            schedules: this.schedules.forAnnex(annex.id),
          });
        }
      }
    }
    for (const id of this.foreign) {
      if (this.compute.instances.get(id)?.state !== 'running') {
        this.violation('an instance that is not this stage’s was terminated', {
          instance: this.compute.instances.get(id),
        });
      }
    }
  }

  /** What a sweep that no fault hit must leave behind. */
  private checkAfterCleanSweep(): void {
    const now = this.now();
    const liveIds = new Set([...this.store.annexes.values()].filter((a) => isLive(a.state)).map((a) => a.id));
    for (const annex of this.store.annexes.values()) {
      if (!isLive(annex.state)) continue;
      const age = now - Date.parse(annex.updatedAt);
      if (Date.parse(annex.expiresAt) <= now)
        this.violation('a clean sweep left an expired lease live', { annex });
      if (annex.state === 'TERMINATING' && age >= ORPHAN_MIN_AGE_MS) {
        this.violation('a clean sweep left a half-way termination', { annex });
      }
      if ((annex.state === 'REQUESTED' || annex.state === 'LAUNCHING') && age >= STUCK_AFTER_MS) {
        this.violation('a clean sweep left a stuck launch', { annex });
      }
      if (annex.state !== 'TERMINATING') {
        const expected = [fireSecondIso(annex.expiresAt)];
        if (JSON.stringify(this.schedules.forAnnex(annex.id)) !== JSON.stringify(expected)) {
          this.violation('after a clean sweep a live lease has not exactly its expiry schedule', {
            annex,
            schedules: this.schedules.forAnnex(annex.id),
          });
        }
      }
      if (annex.state === 'RUNNING' || annex.state === 'LAUNCHING') {
        for (const r of [...this.store.instances.values()].filter((r) => r.annexId === annex.id)) {
          const inEc2 = this.compute.instances.get(r.instanceId)?.state === 'running';
          if (r.state !== 'terminated' && !inEc2 && now - Date.parse(r.launchedAt) >= ORPHAN_MIN_AGE_MS) {
            this.violation('after a clean sweep a record says running for an instance EC2 ended', { r });
          }
        }
      }
    }
    for (const s of this.schedules.schedules.values()) {
      if (!liveIds.has(s.annexId)) this.violation('after a clean sweep an ended annex has a schedule', { s });
    }
    for (const p of this.secrets.annexParameters()) {
      const annexId = /\/annexes\/([^/]+)\//.exec(p)?.[1];
      if (annexId === undefined || !liveIds.has(annexId)) {
        this.violation('after a clean sweep an ended annex has a credential copy', { p });
      }
    }
    for (const inst of this.ours()) {
      const annex = this.annex(inst.tags['annex:id']);
      if (
        (annex === undefined || !isLive(annex.state)) &&
        now - Date.parse(inst.launchedAt) >= ORPHAN_MIN_AGE_MS
      ) {
        this.violation('after a clean sweep an orphan older than orphanMinAge runs', { inst, annex });
      }
    }
  }

  /** No more faults; let every lease run out with the sweep alive; then nothing may be left. */
  async finish(): Promise<void> {
    for (const port of [this.store, this.compute, this.secrets, this.schedules]) port.faults.reset();
    const lastExpiry = Math.max(
      this.now(),
      ...[...this.store.annexes.values()].map((a) => Date.parse(a.expiresAt)),
    );
    await this.advance(lastExpiry - this.now() + 3 * PERIOD_MS);
    const final = await this.sweepOnce();
    expect(final?.errors).toBe(0);

    expect([...this.store.annexes.values()].filter((a) => isLive(a.state))).toEqual([]);
    expect(this.ours()).toEqual([]);
    expect(this.secrets.annexParameters()).toEqual([]);
    expect([...this.schedules.schedules.values()]).toEqual([]);
    expect([...this.store.instances.values()].filter((r) => r.state !== 'terminated')).toEqual([]);
    for (const id of this.foreign) expect(this.compute.instances.get(id)?.state).toBe('running');

    const converged = await sweep(this.deps);
    expect(converged.actions).toEqual([]);
  }
}

describe('simulation: leases under crashes, lost events and strangers', () => {
  it(
    'never lets an instance outlive its lease by more than a sweep, and leaks nothing in the end',
    { timeout: Math.max(60_000, RUNS * 500) },
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(commandArb, { maxLength: 80, size: 'max' }), async (commands) => {
          const world = await World.start();
          for (const c of commands) {
            await world.run(c);
            world.checkInvariants();
          }
          await world.finish();
        }),
        { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
      );
    },
  );
});
