// Makes the local stack enforce leases as AWS does. moto stores EventBridge Scheduler schedules but
// never fires them, and its EventBridge cannot target a Lambda (see TOOLCHAIN.md), so this runner:
// - polls the stage's schedule group, and when an `at(...)` schedule is due invokes its target
//   function's real handler with the schedule's input, then deletes it (ActionAfterCompletion).
//   "Due" models EventBridge Scheduler's documented precision: each schedule fires at a uniformly
//   random point of the minute its `at()` names (`precisionMs`, seeded by `seed` and the schedule's
//   name), not at the named second. Invocations run concurrently, as Lambda runs them;
// - invokes every function that has a `schedule: rate(...)` event in serverless.yml (the sweep) at
//   that rate.
// - delivers EC2's EventBridge events to the functions whose `eventBridge` pattern matches them:
//   moto emits none, so the runner synthesizes `EC2 Instance State-change Notification` from
//   differences between two DescribeInstances listings of the stage's instances (every
//   `watchInstancesMs`), and delivers event files dropped into `eventsDir` (`npm run dev:event`
//   writes a spot interruption warning or a rebalance recommendation there).
// Targets are found from serverless.yml, so the runner follows the stack definition.
import {
  DeleteScheduleCommand,
  GetScheduleCommand,
  type GetScheduleCommandOutput,
  ListSchedulesCommand,
  SchedulerClient,
} from '@aws-sdk/client-scheduler';
import { createHash, randomInt, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { moduleHandlerLoader, type HandlerLoader } from './gateway.ts';
import { readServerlessYml } from './serverless-config.ts';

export interface EnforcerOptions {
  motoEndpoint: string;
  region: string;
  stage: string;
  scheduleGroup: string;
  /** How often due schedules are looked for; default 1 s. */
  pollMs?: number;
  /**
   * A schedule fires at a uniformly random point of [named time, named time + precisionMs):
   * default 60 000, EventBridge Scheduler's documented precision; 0 fires at the named second.
   */
  precisionMs?: number;
  /** Seeds those points (with each schedule's name); default random, and logged. */
  seed?: number;
  /** Start the rate(...) timers (default true); tests drive `sweepNow` themselves instead. */
  timers?: boolean;
  loadHandler?: HandlerLoader;
  log?: (line: string) => void;
  now?: () => Date;
  /** With timers: poll this directory for EventBridge event files (JSON) to deliver, then delete them. */
  eventsDir?: string;
  /**
   * Called with each event file's event before it is delivered: the dev stack shows a spot
   * warning to the instance too (its metadata service), as EC2 does at the same moment.
   */
  onEventFile?: (event: Record<string, unknown>) => void;
  /** With timers: synthesize EC2 state-change events this often (ms); default off. */
  watchInstancesMs?: number;
}

export interface Enforcer {
  /** Starts every due schedule's invocation once, and waits for them; returns how many fired. */
  fireDueSchedules(): Promise<number>;
  /** When the schedule named `name` whose `at()` names `atMs` fires under the precision model. */
  fireTime(name: string, atMs: number): number;
  /** Runs each rate(...) function (or those of `only`) once, as its EventBridge rule would. */
  runRateFunctions(only?: readonly string[]): Promise<unknown[]>;
  /** Delivers one EventBridge event to every function whose eventBridge pattern matches it. */
  deliverEvent(event: Record<string, unknown>): Promise<unknown[]>;
  /**
   * Lists the stage's instances in EC2 and delivers an `EC2 Instance State-change Notification`
   * for each one whose state differs from the previous listing (the first listing only records).
   */
  syncInstanceStates(): Promise<Record<string, unknown>[]>;
  stop(): Promise<void>;
}

interface EventPattern {
  source?: string[];
  'detail-type'?: string[];
}

interface FunctionDef {
  handler: string;
  events?: { schedule?: { rate?: string } | string; eventBridge?: { pattern?: EventPattern } }[];
}

/** The subset of EventBridge pattern matching the stack uses: source and detail-type lists. */
const matches = (pattern: EventPattern | undefined, event: Record<string, unknown>): boolean =>
  pattern !== undefined &&
  (pattern.source === undefined || pattern.source.includes(String(event.source))) &&
  (pattern['detail-type'] === undefined || pattern['detail-type'].includes(String(event['detail-type'])));

const RATE = /^rate\((\d+)\s+(minute|minutes|hour|hours)\)$/;

const rateMs = (rate: string): number => {
  const m = RATE.exec(rate.trim());
  if (m === null) throw new Error(`unsupported schedule rate: ${rate}`);
  return Number(m[1]) * (m[2]?.startsWith('hour') === true ? 3_600_000 : 60_000);
};

/** A uniformly distributed point of [0, precisionMs), fixed by the seed and the schedule's name. */
export const fireOffsetMs = (seed: number, name: string, precisionMs: number): number =>
  precisionMs <= 0
    ? 0
    : Math.floor(
        (createHash('sha256').update(`${seed}:${name}`).digest().readUInt32BE(0) / 2 ** 32) * precisionMs,
      );

/** `at(2026-11-25T12:00:00)` (UTC) → epoch ms; anything else → undefined. */
export const atTime = (expression: string | undefined): number | undefined => {
  const m = /^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$/.exec(expression ?? '');
  return m?.[1] === undefined ? undefined : Date.parse(`${m[1]}Z`);
};

export function startEnforcer(options: EnforcerOptions): Enforcer {
  const log = options.log ?? (() => {});
  const now = options.now ?? (() => new Date());
  const load = options.loadHandler ?? moduleHandlerLoader();
  const functions = (readServerlessYml() as { functions: Record<string, FunctionDef> }).functions;
  const prefix = `annex-${options.stage}-`;
  const scheduler = new SchedulerClient({
    endpoint: options.motoEndpoint,
    region: options.region,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });

  const invoke = async (functionKey: string, event: unknown): Promise<unknown> => {
    const def = functions[functionKey];
    if (def === undefined) throw new Error(`no function ${functionKey} in serverless.yml`);
    const handler = (await load(def.handler)) as unknown as (e: unknown, c: unknown) => Promise<unknown>;
    return handler(event, { awsRequestId: crypto.randomUUID(), functionName: `${prefix}${functionKey}` });
  };

  const precisionMs = options.precisionMs ?? 60_000;
  const seed = options.seed ?? randomInt(2 ** 31);
  log(`schedules fire within ${precisionMs} ms of their named time (seed ${seed})`);
  const fireTime = (name: string, atMs: number): number => atMs + fireOffsetMs(seed, name, precisionMs);

  /** Invocations under way, by schedule name: a poll does not fire them again. */
  const inFlight = new Map<string, Promise<boolean>>();
  const fire = async (name: string, s: GetScheduleCommandOutput, at: number): Promise<boolean> => {
    const arn = s.Target?.Arn ?? '';
    const functionName = arn.slice(arn.indexOf(':function:') + ':function:'.length);
    const invokedAt = Date.now();
    try {
      await invoke(functionName.slice(prefix.length), JSON.parse(s.Target?.Input ?? '{}'));
      log(`schedule ${name} fired ${functionName} (invoked ${invokedAt - at} ms after its named time)`);
      if (s.ActionAfterCompletion === 'DELETE') {
        // The target may have deleted its own schedule already (expire cancels it): that is done.
        await scheduler
          .send(new DeleteScheduleCommand({ GroupName: options.scheduleGroup, Name: name }))
          .catch((e: unknown) => {
            if ((e as { name?: string }).name !== 'ResourceNotFoundException') throw e;
          });
      }
      return true;
    } catch (e) {
      // EventBridge Scheduler retries a failed invocation; so does the next poll.
      log(`schedule ${name}: ${functionName} failed (${(e as Error).message}); retrying`);
      return false;
    }
  };

  let listing: Promise<Promise<boolean>[]> | undefined;
  const fireDueSchedules = async (): Promise<number> => {
    listing ??= (async () => {
      let NextToken: string | undefined;
      const due: string[] = [];
      do {
        const page = await scheduler.send(
          new ListSchedulesCommand({ GroupName: options.scheduleGroup, NextToken }),
        );
        for (const s of page.Schedules ?? [])
          if (s.Name !== undefined && s.State !== 'DISABLED' && !inFlight.has(s.Name)) due.push(s.Name);
        NextToken = page.NextToken;
      } while (NextToken !== undefined && NextToken !== '');
      const started: Promise<boolean>[] = [];
      for (const name of due) {
        const s = await scheduler.send(
          new GetScheduleCommand({ GroupName: options.scheduleGroup, Name: name }),
        );
        const at = atTime(s.ScheduleExpression);
        if (at === undefined || fireTime(name, at) > now().getTime() || s.State === 'DISABLED') continue;
        const arn = s.Target?.Arn ?? '';
        if (!arn.includes(':function:') || !arn.slice(arn.indexOf(':function:') + 10).startsWith(prefix)) {
          log(`schedule ${name}: target ${arn} is not a function of this stage; left alone`);
          continue;
        }
        const job = fire(name, s, at).finally(() => inFlight.delete(name));
        inFlight.set(name, job);
        started.push(job);
      }
      return started;
    })().finally(() => {
      listing = undefined;
    });
    const started = await listing;
    return (await Promise.all(started)).filter(Boolean).length;
  };

  const rateFunctions = Object.entries(functions).flatMap(([key, def]) =>
    (def.events ?? []).flatMap((e) => {
      const rate = typeof e.schedule === 'string' ? e.schedule : e.schedule?.rate;
      return rate === undefined ? [] : [{ key, everyMs: rateMs(rate) }];
    }),
  );
  const runRateFunctions = (only?: readonly string[]) =>
    Promise.all(
      rateFunctions
        .filter(({ key }) => only === undefined || only.includes(key))
        .map(({ key }) => invoke(key, { source: 'aws.events', 'detail-type': 'Scheduled Event' })),
    );

  const deliverEvent = async (event: Record<string, unknown>): Promise<unknown[]> => {
    const targets = Object.entries(functions).filter(([, def]) =>
      (def.events ?? []).some((e) => matches(e.eventBridge?.pattern, event)),
    );
    const results: unknown[] = [];
    for (const [key] of targets) {
      results.push(await invoke(key, event));
      log(`${String(event['detail-type'])} ${JSON.stringify(event.detail)} → ${key}`);
    }
    return results;
  };

  const ec2 = new EC2Client({
    endpoint: options.motoEndpoint,
    region: options.region,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });
  let known: Map<string, string> | undefined;
  let syncing: Promise<Record<string, unknown>[]> | undefined;
  const syncInstanceStates = (): Promise<Record<string, unknown>[]> => {
    syncing ??= (async () => {
      const states = new Map<string, string>();
      let NextToken: string | undefined;
      do {
        const page = await ec2.send(
          new DescribeInstancesCommand({
            Filters: [{ Name: 'tag:annex:stage', Values: [options.stage] }],
            NextToken,
          }),
        );
        for (const r of page.Reservations ?? [])
          for (const i of r.Instances ?? [])
            if (i.InstanceId !== undefined) states.set(i.InstanceId, i.State?.Name ?? 'pending');
        NextToken = page.NextToken;
      } while (NextToken !== undefined && NextToken !== '');
      const previous = known;
      known = states;
      if (previous === undefined) return [];
      const delivered: Record<string, unknown>[] = [];
      for (const [instanceId, state] of states) {
        if (previous.get(instanceId) === state) continue;
        // As EC2 would have sent it (second precision), at the time the runner noticed.
        const event = {
          version: '0',
          id: randomUUID(),
          'detail-type': 'EC2 Instance State-change Notification',
          source: 'aws.ec2',
          account: '123456789012',
          time: now()
            .toISOString()
            .replace(/\.\d{3}Z$/, 'Z'),
          region: options.region,
          resources: [`arn:aws:ec2:${options.region}:123456789012:instance/${instanceId}`],
          detail: { 'instance-id': instanceId, state },
        };
        await deliverEvent(event);
        delivered.push(event);
      }
      return delivered;
    })().finally(() => {
      syncing = undefined;
    });
    return syncing;
  };

  const deliverEventFiles = async (dir: string): Promise<void> => {
    mkdirSync(dir, { recursive: true });
    for (const file of readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()) {
      const path = join(dir, file);
      const event = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      rmSync(path, { force: true });
      options.onEventFile?.(event);
      await deliverEvent(event);
    }
  };

  const timers: NodeJS.Timeout[] = [];
  if ((options.timers ?? true) && options.eventsDir !== undefined) {
    const dir = options.eventsDir;
    timers.push(
      setInterval(() => {
        deliverEventFiles(dir).catch((e: unknown) =>
          log(`event file delivery failed: ${(e as Error).message}`),
        );
      }, options.pollMs ?? 1000),
    );
  }
  if ((options.timers ?? true) && options.watchInstancesMs !== undefined) {
    timers.push(
      setInterval(() => {
        syncInstanceStates().catch((e: unknown) =>
          log(`instance state watch failed: ${(e as Error).message}`),
        );
      }, options.watchInstancesMs),
    );
  }
  if (options.timers ?? true) {
    timers.push(
      setInterval(() => {
        fireDueSchedules().catch((e: unknown) => log(`schedule poll failed: ${(e as Error).message}`));
      }, options.pollMs ?? 1000),
    );
    for (const { key, everyMs } of rateFunctions) {
      timers.push(
        setInterval(() => {
          invoke(key, { source: 'aws.events', 'detail-type': 'Scheduled Event' }).then(
            () => log(`${key} ran (every ${everyMs / 1000} s)`),
            (e: unknown) => log(`${key} failed: ${(e as Error).message}`),
          );
        }, everyMs),
      );
    }
  }

  return {
    fireDueSchedules,
    fireTime,
    runRateFunctions,
    deliverEvent,
    syncInstanceStates,
    stop: async () => {
      for (const t of timers) clearInterval(t);
      await listing?.catch(() => undefined);
      await Promise.allSettled([...inFlight.values()]);
      await syncing?.catch(() => undefined);
      scheduler.destroy();
      ec2.destroy();
    },
  };
}
