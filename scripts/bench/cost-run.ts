// The measuring half of the cost section (scripts/bench/cost.ts runs it in a fresh Node process, so
// the handlers' cached SDK clients are built for these emulators). On new emulators, behind
// counting proxies (wire-meter.ts), with every handler metered (scripts/devstack/lambda-meter.ts), it
// drives the real handlers the way AWS would:
//   1. at rest: no annex; the rate(1 minute) functions run `ticks` times each, as their rules fire
//      them: the sweep, then (measured apart: its rule runs only where Slack is configured) the Slack
//      notifier;
//   2. one lease lifecycle for `annexes` annexes of 2 instances: create (API), each instance's
//      bootstrap and `heartbeats` heartbeats (API, instance credentials), `ticks` sweeps with them
//      live, and the end through the real expire function, fired by the dev runner with the
//      Scheduler's precision modeled (it waits for the exact second);
//   3. the sweep with `scaleAnnexes` (50) live annexes, `ticks` times; then they are deleted (API).
// Writes what it measured as JSON to argv[2] (with --at-rest-only: phase 1 alone, as
// scripts/bench/cost-at-rest-before.json was measured). Handler logs go to stdout (the parent sends them to
// a file).
import { writeFileSync } from 'node:fs';
import { startEmulators } from '../devstack/emulators.ts';
import { startEnforcer } from '../devstack/enforcer.ts';
import { moduleHandlerLoader, readHttpRoutes } from '../devstack/gateway.ts';
import { LambdaMeter, type MeteredInvocation } from '../devstack/lambda-meter.ts';
import { startLocalStack, type LocalStack } from '../devstack/stack.ts';
import { diff, startWireMeter, type WireCounts, type WireMeter } from './wire-meter.ts';

export interface FunctionUse {
  invocations: number;
  memoryMb: number;
  billedMs: number;
  logBytes: number;
  failed: number;
}

export interface Phase {
  name: string;
  /** Per function key. */
  functions: Record<string, FunctionUse>;
  dynamo: WireCounts;
  moto: WireCounts;
  /** API requests served (one per route invocation). */
  apiRequests: number;
  wallMs: number;
}

export interface CostRun {
  annexes: number;
  instancesPerAnnex: number;
  heartbeats: number;
  ticks: number;
  scaleAnnexes: number;
  durationSeconds: number;
  precisionMs: number;
  seed: number;
  phases: Phase[];
  /** Annexes of phase 2 that ended for reason `expired` (no sweep ran meanwhile: by expire). */
  expiredBySchedule: number;
  /** Each expire invocation's duration (ms): its wait for the exact second, then the end path. */
  expireDurationsMs: number[];
}

const API_FUNCTIONS = new Set(readHttpRoutes().map((r) => r.functionName));

const summarize = (invocations: MeteredInvocation[]): Record<string, FunctionUse> => {
  const out: Record<string, FunctionUse> = {};
  for (const i of invocations) {
    const f = (out[i.functionKey] ??= {
      invocations: 0,
      memoryMb: i.memoryMb,
      billedMs: 0,
      logBytes: 0,
      failed: 0,
    });
    f.invocations++;
    f.billedMs += i.billedMs;
    f.logBytes += i.logBytes;
    if (!i.ok) f.failed++;
  }
  return out;
};

async function main(outFile: string, atRestOnly: boolean): Promise<void> {
  const annexes = 4;
  const heartbeats = 5;
  const ticks = 10;
  const scaleAnnexes = 50;
  const durationSeconds = 150;
  const precisionMs = 60_000;
  const seed = 2026;
  const log = (line: string) => process.stderr.write(`[cost] ${line}\n`);

  const emulators = await startEmulators({ log: (line) => log(`emulators: ${line}`) });
  let dynamo: WireMeter | undefined;
  let moto: WireMeter | undefined;
  let stack: LocalStack | undefined;
  const meter = new LambdaMeter();
  try {
    dynamo = await startWireMeter(emulators.dynamoEndpoint, 'dynamodb');
    moto = await startWireMeter(emulators.motoEndpoint, 'moto');
    meter.countLogs();
    const loadHandler = meter.wrap(moduleHandlerLoader());
    stack = await startLocalStack({
      dynamoEndpoint: dynamo.url,
      motoEndpoint: moto.url,
      stage: 'cost',
      maxAttempts: 1,
      loadHandler,
      log: (line) => process.stdout.write(`[gateway] ${line}\n`),
    });
    // The runner reads schedules from moto directly: its own calls are the emulated Scheduler's,
    // not the stack's.
    const enforcer = startEnforcer({
      motoEndpoint: emulators.motoEndpoint,
      region: stack.region,
      stage: stack.stage,
      scheduleGroup: stack.scheduleGroup,
      timers: false,
      precisionMs,
      seed,
      loadHandler,
      log: (line) => process.stdout.write(`[enforcer] ${line}\n`),
    });

    const phases: Phase[] = [];
    const measure = async (name: string, fn: () => Promise<void>): Promise<void> => {
      const from = meter.invocations.length;
      const d0 = (dynamo as WireMeter).snapshot();
      const m0 = (moto as WireMeter).snapshot();
      const t0 = Date.now();
      await fn();
      const invocations = meter.since(from);
      phases.push({
        name,
        functions: summarize(invocations),
        dynamo: diff((dynamo as WireMeter).counts, d0),
        moto: diff((moto as WireMeter).counts, m0),
        apiRequests: invocations.filter((i) => API_FUNCTIONS.has(i.functionKey)).length,
        wallMs: Date.now() - t0,
      });
      log(`${name}: ${invocations.length} invocations in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    };
    const tick = async (n: number, only?: readonly string[]) => {
      for (let i = 0; i < n; i++) await enforcer.runRateFunctions(only);
    };

    // Warm up (first imports, first SDK connections), not measured.
    await tick(2);
    // Without Slack its notifier's rule is disabled (serverless.yml): at rest only the sweep runs.
    await measure('at rest', () => tick(ticks, ['reaper']));
    await measure('at rest, Slack notifier', () => tick(ticks, ['slackNotify']));
    if (atRestOnly) {
      await enforcer.stop();
      writeFileSync(outFile, JSON.stringify({ ticks, phases }, null, 2));
      return;
    }

    const alice = stack.as('alice');
    const created: { name: string; id: string; instanceIds: string[] }[] = [];
    await measure('create', async () => {
      for (let i = 0; i < annexes; i++) {
        const name = `cost-${i}`;
        const res = await alice.request<{ annex: { id: string } }>('POST', '/v1/annexes', {
          name,
          count: 2,
          instanceTypes: ['m5.large'],
          durationSeconds,
        });
        if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${JSON.stringify(res.body)}`);
        created.push({ name, id: res.body.annex.id, instanceIds: [] });
      }
    });
    for (const a of created) {
      const detail = await alice.request<{ instances: { instanceId: string }[] }>(
        'GET',
        `/v1/annexes/${a.name}`,
      );
      a.instanceIds = detail.body.instances.map((i) => i.instanceId);
    }
    const instances = created.flatMap((a) =>
      a.instanceIds.map((id) => stack?.as(stack.instanceCredentials(id))),
    );
    await measure('bootstrap', async () => {
      for (const client of instances) {
        const res = await client?.request('POST', '/v1/instances/self/bootstrap');
        if (res?.status !== 200) throw new Error(`bootstrap: ${res?.status}`);
      }
    });
    await measure('heartbeat', async () => {
      for (let k = 0; k < heartbeats; k++)
        for (const client of instances) {
          const res = await client?.request('POST', '/v1/instances/self/heartbeat', {
            claimedSlots: 1,
            totalSlots: 2,
            idleSeconds: 0,
            state: 'joined',
          });
          if (res?.status !== 200) throw new Error(`heartbeat: ${res?.status}`);
        }
    });
    await measure(`sweep, ${annexes} live`, () => tick(ticks));
    const waitsFrom = meter.invocations.length;
    // The runner polls on a timer, as its own does (schedules fire and wait concurrently); the
    // phase ends when every annex's expire invocation has returned.
    await measure('expire', async () => {
      const poller = setInterval(() => {
        enforcer.fireDueSchedules().catch((e: unknown) => log(`poll failed: ${(e as Error).message}`));
      }, 1000);
      const deadline = Date.now() + (durationSeconds + 120) * 1000;
      while (meter.since(waitsFrom, 'expire').length < created.length && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 500));
      clearInterval(poller);
    });
    let expired = 0;
    for (const a of created) {
      const got = await alice.request<{ annex: { state: string; endReason?: string } }>(
        'GET',
        `/v1/annexes/${a.name}`,
      );
      if (got.body.annex.state === 'TERMINATED' && got.body.annex.endReason === 'expired') expired++;
    }
    const expireInvocations = meter.since(waitsFrom, 'expire');

    const scale: string[] = [];
    for (let i = 0; i < scaleAnnexes; i++) {
      const name = `scale-${i}`;
      const res = await alice.request('POST', '/v1/annexes', {
        name,
        count: 2,
        instanceTypes: ['m5.large'],
        durationSeconds: 3600,
      });
      if (res.status !== 201) throw new Error(`create ${name}: ${res.status}`);
      scale.push(name);
    }
    await measure(`sweep, ${scaleAnnexes} live`, () => tick(ticks));
    await measure('delete', async () => {
      for (const name of scale) await alice.request('DELETE', `/v1/annexes/${name}`);
    });
    await enforcer.stop();

    const run: CostRun = {
      annexes,
      instancesPerAnnex: 2,
      heartbeats,
      ticks,
      scaleAnnexes,
      durationSeconds,
      precisionMs,
      seed,
      phases,
      expiredBySchedule: expired,
      expireDurationsMs: expireInvocations.map((i) => i.durationMs),
    };
    writeFileSync(outFile, JSON.stringify(run, null, 2));
  } finally {
    meter.stop();
    await stack?.stop();
    await dynamo?.stop();
    await moto?.stop();
    await emulators.stop();
  }
}

const out = process.argv[2];
if (out === undefined) throw new Error('usage: cost-run.ts OUT.json [--at-rest-only]');
main(out, process.argv.includes('--at-rest-only')).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`[cost] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
