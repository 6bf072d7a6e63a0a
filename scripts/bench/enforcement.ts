// Section 4: enforcement latency, from the instant a lease expires to the TerminateInstances call
// for its instances, on two paths measured side by side in one run of real (wall-clock) time:
//
// (a) schedule path (stage `bench`): the per-annex schedule that createAnnex writes to moto's
//     EventBridge Scheduler (`at()` names the latest minute that ends by the expiry) is fired by the
//     dev runner (`startEnforcer`, scripts/devstack/enforcer.ts: `fireDueSchedules()` every `pollMs`, as
//     its timer does) at a seeded, uniformly random point of that minute, as the Scheduler fires
//     (its documented precision); the expire target is `expireAnnex` with the deps and the wait the
//     expire handler passes (`terminateDeps()`, sleep until the exact second), on clients this
//     process owns so that a middleware can timestamp each TerminateInstances.
// (b) sweep-only path (stage `benchsw`, its own table and schedule group, so neither path can end
//     the other's annexes): nothing fires its schedules; `sweep()` with the reaper's deps runs on
//     a 60 s cadence (rate(1 minute)) that starts at a random phase. Annexes the on-cadence ticks
//     end are measured end to end. Those that expire after the last tick that fits the time budget
//     are ended by one catch-up sweep: their latency is (next on-cadence tick − expiry, arithmetic)
//     + (catch-up sweep start → their TerminateInstances, measured).
//
// Annexes of both paths (2 × m5.large each, durationSeconds 150: at least two minutes, so the
// schedule's minute is still ahead when it is written) are created alternately, one every
// spread / (2n) seconds, so that expiries spread evenly over `spreadSeconds` (≥ 60 s: one whole
// sweep period, so the wait for the next tick covers [0, 60 s)).
import { loadavg } from 'node:os';
import type { Caller } from '../../shared/domain/model.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetScheduleCommand } from '@aws-sdk/client-scheduler';
import { createAnnex } from '../../shared/domain/annex-create.ts';
import { expireAnnex } from '../../shared/domain/annex-end.ts';
import { EXPIRY_MAX_WAIT_SECONDS } from '../../shared/domain/lease.ts';
import { scheduleName } from '../../shared/aws/schedules.ts';
import { sweep, type SweepReport } from '../../shared/domain/sweep.ts';
import { logger } from '../../shared/log.ts';
import { atTime, startEnforcer } from '../devstack/enforcer.ts';
import type { GatewayHandler } from '../devstack/gateway.ts';
import { CommandRecorder } from './instrument.ts';
import {
  addStage,
  benchClients,
  destroyClients,
  mainStage,
  registerPool,
  stageDeps,
  withBenchStack,
  type Clients,
} from './local.ts';
import { median, percentile } from './stats.ts';

export type EnforcementPath = 'schedule' | 'sweep';

export interface Dist {
  n: number;
  min: number;
  p50: number;
  p99: number;
  max: number;
}

export interface AnnexTiming {
  path: EnforcementPath;
  annexId: string;
  createdAt: number;
  expiresAt: number;
  instanceIds: string[];
  /** First successful TerminateInstances naming one of its instances: sent, answered. */
  terminateSentAt?: number;
  terminateDoneAt?: number;
  /**
   * Schedule path: the minute `at()` names, the point of it the runner's precision model fires
   * at, and when the target was invoked.
   */
  namedAt?: number;
  fireAt?: number;
  invokedAt?: number;
  /** Sweep path: the tick that ended it. */
  tick?: number;
  /** Sweep path: wait for that tick (arithmetic for catch-up ticks) and tick start → terminate. */
  waitMs?: number;
  inSweepMs?: number;
  /** terminate sent − expiry (sweep path, catch-up: wait + inSweep). */
  latencyMs?: number;
}

export interface Tick {
  index: number;
  kind: 'on-cadence' | 'catch-up';
  scheduledAt: number;
  startedAt: number;
  endedAt: number;
  liveAnnexes: number;
  ended: number;
  errors: number;
}

export interface PathResult {
  annexes: number;
  terminated: number;
  latency: Dist;
}

export interface EnforcementSection {
  annexesPerPath: number;
  instancesPerAnnex: number;
  durationSeconds: number;
  spreadSeconds: number;
  pollMs: number;
  sweepEveryMs: number;
  /** Offset of the first sweep tick after the first create (random in [0, period)). */
  phaseMs: number;
  /** Expiries actually spanned (first → last). */
  expirySpanMs: number;
  /** The dev runner's model of the Scheduler's precision. */
  precisionMs: number;
  seed: number;
  schedule: PathResult & {
    /** expiry − the minute `at()` names. */
    early: Dist;
    /** Modeled fire point − that minute. */
    inMinute: Dist;
    /** Modeled fire point → target invoked (the runner's poll). */
    detection: Dist;
    /** Target invoked → expiry: the handler's wait for the exact second. */
    wait: Dist;
    /** Annexes whose target was invoked after their expiry. */
    firedLate: number;
    terminateCall: Dist;
    fired: number;
    runnerFailures: string[];
  };
  sweep: PathResult & {
    wait: Dist;
    inSweep: Dist;
    /** Annexes ended by on-cadence ticks (measured end to end) and by the catch-up sweep. */
    endToEnd: number;
    catchUp: number;
    endToEndLatency: Dist;
    ticks: Tick[];
    sweepConcurrency: number;
  };
  annexes: AnnexTiming[];
  createMs: Dist;
  elapsedMs: number;
  /** 1-minute load average at the start and end of the section. */
  load: { start: number; end: number };
  logFile: string;
  logLines: number;
}

export const dist = (values: readonly number[]): Dist => ({
  n: values.length,
  min: values.length === 0 ? Number.NaN : Math.min(...values),
  p50: median(values),
  p99: percentile(values, 99),
  max: values.length === 0 ? Number.NaN : Math.max(...values),
});

const sleepUntil = (at: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));

export async function runEnforcementSection(
  log: (line: string) => void,
  logFile: string,
  {
    annexesPerPath = 24,
    durationSeconds = 150,
    spreadSeconds = 64,
    pollMs = 1000,
    graceMs = 10_000,
    precisionMs = 60_000,
    seed = 2026,
  } = {},
): Promise<EnforcementSection> {
  const sweepEveryMs = 60_000;
  const started = Date.now();
  const loadStart = loadavg()[0] ?? Number.NaN;
  const result = await withBenchStack('enforcement', log, logFile, async ({ stack }) => {
    const recorder = new CommandRecorder(new Set(['RunInstancesCommand', 'TerminateInstancesCommand']));
    const clientsA: Clients = benchClients(stack);
    const clientsB: Clients = benchClients(stack);
    recorder.attach(clientsA.ec2, 'ec2');
    recorder.attach(clientsB.ec2, 'ec2');
    const targetB = await addStage(stack, clientsB, 'benchsw');
    const depsA = stageDeps(stack, mainStage(stack), clientsA);
    const depsB = stageDeps(stack, targetB, clientsB);
    await registerPool(stack, depsA);
    await registerPool(stack, depsB);

    const annexes = new Map<string, AnnexTiming>();
    const ownerOf = new Map<string, string>();
    recorder.onKept((c) => {
      if (c.error !== undefined) return;
      if (c.command === 'RunInstancesCommand') {
        const specs = (c.input.TagSpecifications ?? []) as { Tags?: { Key?: string; Value?: string }[] }[];
        const annexId = specs.flatMap((s) => s.Tags ?? []).find((t) => t.Key === 'annex:id')?.Value;
        const instances = (c.output?.Instances ?? []) as { InstanceId?: string }[];
        for (const i of instances)
          if (annexId !== undefined && i.InstanceId) ownerOf.set(i.InstanceId, annexId);
      } else {
        for (const id of (c.input.InstanceIds ?? []) as string[]) {
          const t = annexes.get(ownerOf.get(id) ?? '');
          if (t !== undefined && t.terminateSentAt === undefined) {
            t.terminateSentAt = c.sentAt;
            t.terminateDoneAt = c.doneAt;
          }
        }
      }
    });

    // (a) The dev runner, with the expire function's target bound to this process's deps.
    const expireHandler = async (event: { annexId?: unknown; expiresAt?: unknown }) => {
      const annexId = String(event.annexId);
      const t = annexes.get(annexId);
      if (t !== undefined) t.invokedAt ??= Date.now();
      const annex = await expireAnnex(depsA, annexId, {
        sleep: (ms) => sleep(ms),
        maxWaitMs: EXPIRY_MAX_WAIT_SECONDS * 1000,
      });
      logger.info('expiry handled', { annexId, firedFor: event.expiresAt, state: annex?.state });
      return { annexId, ...(annex === undefined ? {} : { state: annex.state }) };
    };
    const runnerLog: string[] = [];
    const enforcer = startEnforcer({
      motoEndpoint: stack.motoEndpoint,
      region: stack.region,
      stage: stack.stage,
      scheduleGroup: stack.scheduleGroup,
      pollMs,
      precisionMs,
      seed,
      timers: false,
      loadHandler: async (path) => {
        if (path !== 'handlers/expire.handler') throw new Error(`enforcement bench: no handler ${path}`);
        return expireHandler as unknown as GatewayHandler;
      },
      log: (line) => {
        runnerLog.push(line);
        process.stdout.write(`[enforcer] ${line}\n`);
      },
    });

    const alice = stack.users.find((u) => u.name === 'alice');
    if (alice === undefined) throw new Error('the local stack has no user alice');
    const caller: Caller = { principalArn: alice.principalArn, admin: false };
    const total = 2 * annexesPerPath;
    const stepMs = (spreadSeconds * 1000) / total;
    const createStart = Date.now() + 1000;
    const plannedLastExpiry = createStart + stepMs * (total - 1) + durationSeconds * 1000;
    const windowEnd = plannedLastExpiry + graceMs;
    const phaseMs = Math.random() * sweepEveryMs;
    const tickOrigin = createStart + phaseMs;
    log(
      `enforcement: ${total} annexes (${annexesPerPath} per path), one every ${(stepMs / 1000).toFixed(2)} s; ` +
        `schedule poll ${pollMs} ms; sweep ticks every 60 s from +${(phaseMs / 1000).toFixed(1)} s; ` +
        `done by ~${Math.round((windowEnd - Date.now()) / 1000)} s from now`,
    );

    const poller = setInterval(() => {
      enforcer
        .fireDueSchedules()
        .catch((e: unknown) => runnerLog.push(`poll failed: ${(e as Error).message}`));
    }, pollMs);

    // (b) The sweep of stage benchsw on its cadence.
    const ticks: Tick[] = [];
    const runTick = async (kind: Tick['kind'], scheduledAt: number): Promise<void> => {
      const startedAt = Date.now();
      let report: SweepReport | undefined;
      try {
        report = await sweep(depsB);
      } catch (e) {
        log(`enforcement: sweep tick failed: ${(e as Error).message}`);
      }
      ticks.push({
        index: ticks.length,
        kind,
        scheduledAt,
        startedAt,
        endedAt: Date.now(),
        liveAnnexes: report?.liveAnnexes ?? 0,
        ended: report?.actions.filter((a) => a.action === 'end-annex').length ?? 0,
        errors: report === undefined ? 1 : report.errors,
      });
    };
    const cadence = (async () => {
      for (let k = 0; tickOrigin + k * sweepEveryMs <= windowEnd; k++) {
        const at = tickOrigin + k * sweepEveryMs;
        await sleepUntil(at);
        await runTick('on-cadence', at);
      }
    })();

    const createMs: number[] = [];
    for (let i = 0; i < total; i++) {
      const path: EnforcementPath = i % 2 === 0 ? 'schedule' : 'sweep';
      // A random sub-second offset per slot: `at()` names whole seconds, so the rounding of each
      // expiry up to its second is spread over [0, 1 s) as it is for real requests.
      await sleepUntil(createStart + i * stepMs + Math.random() * Math.min(1000, stepMs / 2));
      const t0 = Date.now();
      const { annex } = await createAnnex(path === 'schedule' ? depsA : depsB, caller, {
        name: `enf-${path}-${i}`,
        pool: 'default',
        count: 2,
        instanceTypes: ['m5.large'],
        market: 'on-demand',
        durationSeconds,
      });
      createMs.push(Date.now() - t0);
      const expiresAt = Date.parse(annex.expiresAt);
      let timing: Pick<AnnexTiming, 'namedAt' | 'fireAt'> = {};
      if (path === 'schedule') {
        const name = scheduleName(annex.id, annex.expiresAt);
        const { ScheduleExpression } = await clientsA.scheduler.send(
          new GetScheduleCommand({ GroupName: stack.scheduleGroup, Name: name }),
        );
        const namedAt = atTime(ScheduleExpression) ?? Number.NaN;
        timing = { namedAt, fireAt: enforcer.fireTime(name, namedAt) };
      }
      annexes.set(annex.id, {
        path,
        annexId: annex.id,
        createdAt: t0,
        expiresAt,
        instanceIds: [...ownerOf].filter(([, a]) => a === annex.id).map(([id]) => id),
        ...timing,
      });
      if (annex.state !== 'RUNNING') log(`enforcement: ${annex.name} is ${annex.state} after create`);
    }
    log('enforcement: all annexes created; waiting for expiries');

    const all = [...annexes.values()];
    const lastExpiry = Math.max(...all.map((a) => a.expiresAt));
    const scheduleDone = () => all.every((a) => a.path === 'sweep' || a.terminateSentAt !== undefined);
    while (Date.now() < windowEnd + 20_000 && !(scheduleDone() && Date.now() >= windowEnd)) {
      await sleepUntil(Date.now() + 250);
    }
    await cadence;
    clearInterval(poller);
    await enforcer.stop();

    // Catch-up: annexes of path (b) that expired after the last on-cadence tick that fitted.
    const pending = all.filter((a) => a.path === 'sweep' && a.terminateSentAt === undefined);
    if (pending.length > 0) {
      await sleepUntil(lastExpiry + 1000);
      const k = Math.ceil((Date.now() - tickOrigin) / sweepEveryMs);
      log(
        `enforcement: catch-up sweep for ${pending.length} annex(es) expired after the last on-cadence tick`,
      );
      await runTick('catch-up', tickOrigin + k * sweepEveryMs);
    }

    // Attribution.
    for (const a of all) {
      if (a.terminateSentAt === undefined) continue;
      if (a.path === 'schedule') {
        a.latencyMs = a.terminateSentAt - a.expiresAt;
        continue;
      }
      const sent = a.terminateSentAt;
      const tick = ticks.find((t) => t.startedAt <= sent && sent <= t.endedAt);
      if (tick === undefined) continue;
      a.tick = tick.index;
      a.inSweepMs = sent - tick.startedAt;
      if (tick.kind === 'on-cadence') {
        a.waitMs = tick.startedAt - a.expiresAt;
        a.latencyMs = sent - a.expiresAt;
      } else {
        // The next on-cadence tick at or after the expiry, on the cadence that ran.
        const next = tickOrigin + Math.ceil((a.expiresAt - tickOrigin) / sweepEveryMs) * sweepEveryMs;
        a.waitMs = next - a.expiresAt;
        a.latencyMs = a.waitMs + a.inSweepMs;
      }
    }

    const ofPath = (p: EnforcementPath) => all.filter((a) => a.path === p);
    const done = (p: EnforcementPath) => ofPath(p).filter((a) => a.latencyMs !== undefined);
    const sched = done('schedule');
    const swept = done('sweep');
    const endToEnd = swept.filter((a) => ticks[a.tick ?? -1]?.kind === 'on-cadence');
    const section = {
      phaseMs,
      expirySpanMs: lastExpiry - Math.min(...all.map((a) => a.expiresAt)),
      schedule: {
        annexes: ofPath('schedule').length,
        terminated: sched.length,
        latency: dist(sched.map((a) => a.latencyMs as number)),
        early: dist(sched.map((a) => a.expiresAt - (a.namedAt as number))),
        inMinute: dist(sched.map((a) => (a.fireAt as number) - (a.namedAt as number))),
        detection: dist(
          sched.flatMap((a) => (a.invokedAt === undefined ? [] : [a.invokedAt - (a.fireAt as number)])),
        ),
        wait: dist(sched.flatMap((a) => (a.invokedAt === undefined ? [] : [a.expiresAt - a.invokedAt]))),
        firedLate: sched.filter((a) => a.invokedAt !== undefined && a.invokedAt > a.expiresAt).length,
        terminateCall: dist(sched.map((a) => (a.terminateDoneAt as number) - (a.terminateSentAt as number))),
        fired: runnerLog.filter((l) => / fired /.test(l)).length,
        runnerFailures: runnerLog.filter((l) => /failed/.test(l)),
      },
      sweep: {
        annexes: ofPath('sweep').length,
        terminated: swept.length,
        latency: dist(swept.map((a) => a.latencyMs as number)),
        wait: dist(swept.map((a) => a.waitMs as number)),
        inSweep: dist(swept.map((a) => a.inSweepMs as number)),
        endToEnd: endToEnd.length,
        catchUp: swept.length - endToEnd.length,
        endToEndLatency: dist(endToEnd.map((a) => a.latencyMs as number)),
        ticks,
        sweepConcurrency: depsB.sweep.concurrency,
      },
      annexes: all,
      createMs: dist(createMs),
    };
    destroyClients(clientsA);
    destroyClients(clientsB);
    return section;
  });
  const s = result.value;
  log(
    `enforcement: schedule path p50 ${(s.schedule.latency.p50 / 1000).toFixed(2)} s, p99 ${(s.schedule.latency.p99 / 1000).toFixed(2)} s ` +
      `(${s.schedule.terminated}/${s.schedule.annexes}); sweep-only p50 ${(s.sweep.latency.p50 / 1000).toFixed(1)} s, ` +
      `p99 ${(s.sweep.latency.p99 / 1000).toFixed(1)} s (${s.sweep.terminated}/${s.sweep.annexes})`,
  );
  return {
    annexesPerPath,
    instancesPerAnnex: 2,
    durationSeconds,
    spreadSeconds,
    pollMs,
    precisionMs,
    seed,
    sweepEveryMs,
    ...s,
    elapsedMs: Date.now() - started,
    load: { start: loadStart, end: loadavg()[0] ?? Number.NaN },
    logFile,
    logLines: result.logLines,
  };
}
