// Crash consistency of create, add-nodes, extend and delete against the real emulators (DynamoDB
// Local + moto) and the real adapters. For every N, the operation "crashes" right after its N-th
// AWS call completed: the call really happened, its answer is lost, and the process is dead (every
// later call of that incarnation throws without being sent, so no best-effort catch can resume it).
// Then one sweep runs with the clock advanced past the stuck-launch age, the invariants are checked,
// the original request is retried, a second sweep runs, and the invariants are checked again:
//
//   (a) no pending/running instance tagged for the stage without a live lease;
//   (b) no per-annex credential parameter, expiry schedule or launch template without a live lease;
//   (c) the lease table agrees with EC2: what EC2 runs for an annex is recorded non-terminated on it,
//       and every instance recorded non-terminated is running in EC2;
//   (d) the retry converges on the same annex (same id) without a second launch (per case below);
//   (e) a live annex's schedules and tags follow its lease: exactly one schedule, at its expiry,
//       and every running instance tagged with that expiry.
//
// Each case runs in a world of its own (lease table, stage, schedule group, pool), so cases run
// concurrently and never see one another in a sweep; moto is never reset. moto is reached through
// test/support/moto-shim.ts (one request at a time: moto is not thread-safe).
import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeInstancesCommand, DescribeLaunchTemplatesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateScheduleGroupCommand, ListSchedulesCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { GetParametersByPathCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { InitializeHandlerArguments, InitializeHandlerOutput } from '@smithy/types';
import { addInitializeMiddleware } from '../../scripts/devstack/sdk-middleware.ts';
import { afterAll, describe, inject, it, type ExpectStatic } from 'vitest';
import { defaultDevUsers } from '../../scripts/devstack/dev-users.ts';
import type { LocalStack } from '../../scripts/devstack/stack.ts';
import { createLeaseTable } from '../../scripts/devstack/table.ts';
import { Ec2Compute } from '../../shared/aws/ec2.ts';
import { DynamoLeaseStore } from '../../shared/aws/leases.ts';
import { SsmSecretStore } from '../../shared/aws/secrets.ts';
import { addNodes } from '../../shared/domain/annex-nodes.ts';
import { createAnnex, type CreateAnnexInput } from '../../shared/domain/annex-create.ts';
import { deleteAnnex } from '../../shared/domain/annex-end.ts';
import { extendAnnex } from '../../shared/domain/annex-extend.ts';
import type { LaunchDeps } from '../../shared/domain/annex-deps.ts';
import { isAnnexError } from '../../shared/domain/errors.ts';
import { isLive } from '../../shared/domain/lease.ts';
import type { Annex, Caller } from '../../shared/domain/model.ts';
import { handleEc2Event, parseEc2Event } from '../../shared/domain/ec2-events.ts';
import { putPool } from '../../shared/domain/pools.ts';
import type { Clock, Logger, Settings } from '../../shared/domain/ports.ts';
import { sweep, type SweepDeps, type SweepReport } from '../../shared/domain/sweep.ts';
import { ec2Event } from '../support/ec2-events.ts';
import { startMotoShim } from '../support/moto-shim.ts';
import { integrationStack, stackLaunchSettings, stackSchedules } from '../support/integration-stack.ts';

/** The simulated crash: thrown right after an AWS call completed, and by every call after it. */
class Crash extends Error {
  override name = 'Crash';
}

const principal = (name: string): Caller => {
  const user = defaultDevUsers().find((u) => u.name === name);
  if (user === undefined) throw new Error(`no dev user ${name}`);
  return { principalArn: user.principalArn, admin: user.admin === true };
};
const ALICE = principal('alice');
const ADMIN = principal('admin');

const SWEEP = { bootGraceSeconds: 900, orphanMinAgeSeconds: 60, stuckAfterSeconds: 600, concurrency: 8 };
/**
 * Where the injected clock stands for the first sweep and the retry: past stuckAfterSeconds (600)
 * and orphanMinAgeSeconds (60) since the crash, so stuck launches and half-done terminations are
 * eligible, yet short of bootGraceSeconds (900) since moto's wall-clock launch times, so healthy
 * instances that never sent a heartbeat are not ended for a boot timeout.
 */
const FIRST_SWEEP_AT_S = 700;
/** The second sweep: a minute after the retry (a termination the retry left half-done is eligible). */
const SECOND_SWEEP_AT_S = 780;

const COUNT = 2;
const ADDED = 1;
const EXTEND_BY_S = 7200;

// ---------------------------------------------------------------------------------------------
// Counting and crashing AWS calls

interface CallRecord {
  command: string;
  /** Commands that were in flight at the same time (Promise.all in the domain). */
  overlapped: string[];
}

/** One counter shared by every client of one process incarnation. */
class AwsCalls {
  readonly log: CallRecord[] = [];
  crashAt = Number.POSITIVE_INFINITY;
  crashed: { at: number; command: string } | undefined;
  private readonly inFlight = new Map<number, { command: string; overlapped: Set<string> }>();
  private sequence = 0;

  instrument(client: { middlewareStack: object }): void {
    addInitializeMiddleware(
      client,
      'crashAfter',
      (next, context) =>
        async (args: InitializeHandlerArguments<object>): Promise<InitializeHandlerOutput<object>> => {
          const command = (context.commandName ?? 'Unknown').replace(/Command$/, '');
          if (this.crashed !== undefined) {
            throw new Crash(
              `dead since call ${this.crashed.at} (${this.crashed.command}): ${command} not sent`,
            );
          }
          const id = this.sequence++;
          const overlapped = new Set<string>();
          for (const other of this.inFlight.values()) {
            overlapped.add(other.command);
            other.overlapped.add(command);
          }
          this.inFlight.set(id, { command, overlapped });
          let result: { ok: true; out: InitializeHandlerOutput<object> } | { ok: false; error: unknown };
          try {
            result = { ok: true, out: await next(args) };
          } catch (error) {
            result = { ok: false, error };
          } finally {
            this.inFlight.delete(id);
          }
          this.log.push({ command, overlapped: [...overlapped] });
          if (this.crashed !== undefined) throw new Crash(`dead: the answer of ${command} is lost`);
          if (this.log.length === this.crashAt) {
            this.crashed = { at: this.log.length, command };
            throw new Crash(`crash after call ${this.log.length} (${command})`);
          }
          if (!result.ok) throw result.error;
          return result.out;
        },
    );
  }

  count(command: string): number {
    return this.log.filter((c) => c.command === command).length;
  }

  /** Calls sent before the crash still complete at AWS: wait for them before anything else runs. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await new Promise((r) => setTimeout(r, 5));
  }
}

const label = (call: CallRecord): string =>
  call.overlapped.length === 0
    ? call.command
    : `${[...new Set([call.command, ...call.overlapped])].sort().join(' | ')}, in parallel`;

// ---------------------------------------------------------------------------------------------
// Worlds: one lease table, stage, schedule group and pool per case

class ShiftedClock implements Clock {
  offsetSeconds = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetSeconds * 1000);
  }
}

type Deps = LaunchDeps & SweepDeps;

interface Incarnation {
  calls: AwsCalls;
  deps: Deps;
  destroy(): void;
}

interface World {
  stage: string;
  group: string;
  clock: ShiftedClock;
  /** Uninstrumented reads for the assertions (consistent GetItem per annex). */
  probe: DynamoLeaseStore;
  /** The incarnation that crashes. */
  crashing: Incarnation;
  /** A fresh incarnation for the set-up, the sweeps and the retry (counted, never crashing). */
  healthy: Incarnation;
  /** Every warn/error the domain logged, to explain a sweep that reports errors. */
  problems: string[];
  destroy(): void;
}

// moto is not thread-safe (concurrent SSM listing and deleting answers 500) and cases run
// concurrently: the shim passes requests to it one at a time. It also gives RunInstances AWS's
// ClientToken idempotency, which (d) checks was never needed.
const shim = await startMotoShim(inject('motoEndpoint'), { oneRequestAtATime: true, awsProvenance: true });
const stack: LocalStack = await integrationStack('crash', { motoEndpoint: shim.endpoint, seedPool: false });
const probeDynamo = new DynamoDBClient(stack.clientConfig('dynamodb'));
const probeEc2 = new EC2Client(stack.clientConfig('moto'));
const probeSsm = new SSMClient(stack.clientConfig('moto'));
const probeScheduler = new SchedulerClient(stack.clientConfig('moto'));

afterAll(async () => {
  for (const client of [probeDynamo, probeEc2, probeSsm, probeScheduler]) client.destroy();
  await stack.stop();
  await shim.stop();
});

const incarnation = (world: Omit<World, 'crashing' | 'healthy' | 'destroy'>, tableName: string) => {
  const calls = new AwsCalls();
  const dynamo = new DynamoDBClient(stack.clientConfig('dynamodb'));
  const ec2 = new EC2Client(stack.clientConfig('moto'));
  const ssm = new SSMClient(stack.clientConfig('moto'));
  const scheduler = new SchedulerClient(stack.clientConfig('moto'));
  calls.instrument(dynamo);
  calls.instrument(ec2);
  calls.instrument(ssm);
  calls.instrument(scheduler);
  const log: Logger = {
    info: () => {},
    warn: (message, fields) => world.problems.push(`warn: ${message} ${JSON.stringify(fields)}`),
    error: (message, fields) => world.problems.push(`error: ${message} ${JSON.stringify(fields)}`),
  };
  const settings: Settings = {
    stage: world.stage,
    maxDurationSeconds: 7 * 24 * 3600,
    maxInstancesPerAnnex: 50,
  };
  const deps: Deps = {
    store: new DynamoLeaseStore(dynamo, tableName),
    clock: world.clock,
    settings,
    log,
    compute: new Ec2Compute(ec2, world.stage),
    secrets: new SsmSecretStore(ssm, world.stage),
    schedules: stackSchedules(scheduler, stack, world.group),
    launch: stackLaunchSettings(stack),
    sweep: SWEEP,
  };
  return {
    calls,
    deps,
    destroy: () => {
      for (const client of [dynamo, ec2, ssm, scheduler]) client.destroy();
    },
  };
};

const newWorld = async (): Promise<World> => {
  const suffix = randomBytes(4).toString('hex');
  const stage = `cc${suffix}`;
  const tableName = `crash-${suffix}`;
  const base = {
    stage,
    group: `annex-${stage}`,
    clock: new ShiftedClock(),
    probe: new DynamoLeaseStore(probeDynamo, tableName),
    problems: [] as string[],
  };
  await createLeaseTable(probeDynamo, tableName);
  await probeScheduler.send(new CreateScheduleGroupCommand({ Name: base.group }));
  const crashing = incarnation(base, tableName);
  const healthy = incarnation(base, tableName);
  await putPool(healthy.deps, ADMIN, 'default', {
    collectorHost: '127.0.0.1',
    collectorPort: 9618,
    credential: { type: 'password', value: randomBytes(18).toString('base64url') },
  });
  return {
    ...base,
    crashing,
    healthy,
    destroy: () => {
      crashing.destroy();
      healthy.destroy();
    },
  };
};

// ---------------------------------------------------------------------------------------------
// What EC2, SSM and Scheduler hold for a stage, read with uninstrumented clients

interface RunningInstance {
  instanceId: string;
  annexId: string;
  expiresAtTag: string | undefined;
}

const runningInstances = async (stage: string): Promise<RunningInstance[]> => {
  const found: RunningInstance[] = [];
  let NextToken: string | undefined;
  do {
    const out = await probeEc2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'tag:annex:stage', Values: [stage] },
          { Name: 'instance-state-name', Values: ['pending', 'running'] },
        ],
        NextToken,
      }),
    );
    for (const i of (out.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
      const tag = (key: string) => i.Tags?.find((t) => t.Key === key)?.Value;
      found.push({
        instanceId: i.InstanceId ?? '',
        annexId: tag('annex:id') ?? '(untagged)',
        expiresAtTag: tag('annex:expires-at'),
      });
    }
    NextToken = out.NextToken;
  } while (NextToken !== undefined && NextToken !== '');
  return found;
};

/** Annex ids of the per-annex credential copies, `/annex/<stage>/annexes/<id>/pool-credentials`. */
const annexParameters = async (stage: string): Promise<string[]> => {
  const prefix = `/annex/${stage}/annexes/`;
  const ids: string[] = [];
  let NextToken: string | undefined;
  do {
    const out = await probeSsm.send(
      new GetParametersByPathCommand({ Path: prefix.slice(0, -1), Recursive: true, NextToken }),
    );
    for (const p of out.Parameters ?? []) {
      const m = /^([^/]+)\/pool-credentials$/.exec(p.Name?.slice(prefix.length) ?? '');
      ids.push(m?.[1] ?? `(unexpected ${p.Name})`);
    }
    NextToken = out.NextToken;
  } while (NextToken !== undefined && NextToken !== '');
  return ids;
};

/** Annex ids of the stage's launch templates (fleet launches make one per annex), by their tags. */
const launchTemplates = async (stage: string): Promise<string[]> => {
  const out = await probeEc2.send(
    new DescribeLaunchTemplatesCommand({ Filters: [{ Name: 'tag:annex:stage', Values: [stage] }] }),
  );
  return (out.LaunchTemplates ?? []).map(
    (t) => t.Tags?.find((tag) => tag.Key === 'annex:id')?.Value ?? `(untagged ${t.LaunchTemplateName})`,
  );
};

/** Schedules of the stage's group, named `<annexId>-<fire epoch seconds>`. */
const schedulesOf = async (group: string): Promise<{ annexId: string; fireSecond: number }[]> => {
  const found: { annexId: string; fireSecond: number }[] = [];
  let NextToken: string | undefined;
  do {
    const out = await probeScheduler.send(new ListSchedulesCommand({ GroupName: group, NextToken }));
    for (const s of out.Schedules ?? []) {
      const m = /^(.+)-(\d+)$/.exec(s.Name ?? '');
      found.push({ annexId: m?.[1] ?? `(unexpected ${s.Name})`, fireSecond: Number(m?.[2]) });
    }
    NextToken = out.NextToken;
  } while (NextToken !== undefined && NextToken !== '');
  return found;
};

const fireSecond = (iso: string): number => Math.ceil(Date.parse(iso) / 1000);

/** Every violation of (a), (b), (c) and (e) in the world, as readable sentences. */
const violations = async (world: World, annexIds: string[]): Promise<string[]> => {
  const [instances, parameters, schedules, live, templates] = await Promise.all([
    runningInstances(world.stage),
    annexParameters(world.stage),
    schedulesOf(world.group),
    world.probe.listLiveAnnexes(),
    launchTemplates(world.stage),
  ]);
  const ids = new Set([
    ...annexIds,
    ...instances.map((i) => i.annexId),
    ...parameters,
    ...templates,
    ...schedules.map((s) => s.annexId),
    ...live.map((a) => a.id),
  ]);
  const found: string[] = [];
  for (const id of ids) {
    const annex = await world.probe.getAnnex(id);
    const leaseIsLive = annex !== undefined && isLive(annex.state);
    const running = instances.filter((i) => i.annexId === id);
    const own = schedules.filter((s) => s.annexId === id);
    if (!leaseIsLive) {
      const why = annex === undefined ? 'no lease' : `lease ${annex.state}`;
      if (running.length > 0) found.push(`(a) ${id}: ${running.length} instance(s) running with ${why}`);
      if (parameters.includes(id)) found.push(`(b) ${id}: credential parameter left with ${why}`);
      if (own.length > 0) found.push(`(b) ${id}: ${own.length} schedule(s) left with ${why}`);
      if (templates.includes(id)) found.push(`(b) ${id}: launch template left with ${why}`);
    }
    if (annex !== undefined) {
      const recorded = (await world.probe.listInstances(id))
        .filter((r) => r.state !== 'terminated')
        .map((r) => r.instanceId);
      const inEc2 = running.map((i) => i.instanceId);
      const unrecorded = inEc2.filter((i) => !recorded.includes(i));
      const phantom = recorded.filter((i) => !inEc2.includes(i));
      if (unrecorded.length > 0) found.push(`(c) ${id}: EC2 runs ${unrecorded.join(',')}, not recorded live`);
      if (phantom.length > 0) found.push(`(c) ${id}: recorded live ${phantom.join(',')}, not running in EC2`);
    }
    if (annex !== undefined && leaseIsLive && annex.state !== 'TERMINATING') {
      const fires = own.map((s) => s.fireSecond);
      if (fires.length !== 1 || fires[0] !== fireSecond(annex.expiresAt)) {
        found.push(
          `(e) ${id}: schedules at [${fires.join(',')}], lease ends at ${fireSecond(annex.expiresAt)}`,
        );
      }
      const stale = running.filter((i) => i.expiresAtTag !== annex.expiresAt);
      if (stale.length > 0) {
        found.push(
          `(e) ${id}: ${stale.length} instance(s) tagged ${stale[0]?.expiresAtTag}, lease ${annex.expiresAt}`,
        );
      }
    }
  }
  return found;
};

// ---------------------------------------------------------------------------------------------
// The operations

interface Target {
  /** The annex acted on; for create, unknown until the request has written it. */
  annexId?: string;
  name: string;
  /** The Idempotency-Key of the request (create, add-nodes), the same on the retry. */
  key: string;
  /** The annex as the set-up left it (add-nodes, extend, delete). */
  before?: Annex;
}

interface Operation {
  name: 'create' | 'create-spot' | 'add-nodes' | 'extend' | 'delete' | 'replace';
  /** What the operation acts on, made through the healthy incarnation (not counted). */
  prepare(world: World): Promise<Target>;
  /** The request; run again unchanged (same Idempotency-Key where it has one) as the retry. */
  request(deps: Deps, target: Target): Promise<Annex>;
  /** The command that first changes durable state: a crash before it leaves nothing to repair. */
  firstWrite: string;
}

const createInput = (name: string): CreateAnnexInput => ({
  name,
  pool: 'default',
  count: COUNT,
  instanceTypes: ['m5.large'],
  market: 'on-demand',
  durationSeconds: 3600,
});

/**
 * Idempotency keys unique to each world: an annex id is derived from the owner and the key only,
 * and EC2 is shared by every world (see the stage-isolation test at the end of this file).
 */
const uniqueKey = (what: string): string => `${what}-${randomBytes(6).toString('hex')}`;

const runningAnnex = async (world: World): Promise<Target> => {
  const { annex } = await createAnnex(world.healthy.deps, ALICE, createInput('burst'), uniqueKey('setup'));
  if (annex.state !== 'RUNNING') throw new Error(`set-up annex is ${annex.state}`);
  return { annexId: annex.id, name: annex.name, key: uniqueKey('add'), before: annex };
};

const OPERATIONS: Operation[] = [
  {
    name: 'create',
    prepare: async () => ({ name: 'burst', key: uniqueKey('create') }),
    request: async (deps, t) => (await createAnnex(deps, ALICE, createInput(t.name), t.key)).annex,
    firstWrite: 'TransactWriteItems',
  },
  {
    // Spot: a per-annex launch template (CreateLaunchTemplate), then one instant CreateFleet.
    name: 'create-spot',
    prepare: async () => ({ name: 'burst', key: uniqueKey('create-spot') }),
    request: async (deps, t) =>
      (
        await createAnnex(
          deps,
          ALICE,
          { ...createInput(t.name), market: 'spot', instanceTypes: ['m5.large', 'm5a.large'] },
          t.key,
        )
      ).annex,
    firstWrite: 'TransactWriteItems',
  },
  {
    name: 'add-nodes',
    prepare: runningAnnex,
    // A retry of a batch the sweep abandoned is refused (409, "use a new key"); the harness then
    // reads the annex as the caller would next see it.
    request: async (deps, t) => {
      try {
        return await addNodes(deps, ALICE, { name: t.name }, { count: ADDED }, t.key);
      } catch (e) {
        if (!isAnnexError(e, 'Conflict') || !/abandoned/.test(e.message)) throw e;
        refusedRetries.add(t.key ?? '');
        const annex = await deps.store.findAnnexByName(ALICE.principalArn, t.name);
        if (annex === undefined) throw e;
        return annex;
      }
    },
    firstWrite: 'TransactWriteItems',
  },
  {
    name: 'extend',
    prepare: runningAnnex,
    request: (deps, t) => extendAnnex(deps, ALICE, { name: t.name }, { durationSeconds: EXTEND_BY_S }),
    firstWrite: 'TransactWriteItems',
  },
  {
    name: 'delete',
    prepare: runningAnnex,
    request: (deps, t) => deleteAnnex(deps, ALICE, { name: t.name }),
    firstWrite: 'TransactWriteItems',
  },
  {
    // EC2 warns that it takes back one instance of a spot annex that asked for replacements: the
    // event is recorded and a replacement batch of one is launched (handlers/ec2-events.ts). The
    // retry is EventBridge delivering the same event again. `key` carries the warned instance.
    name: 'replace',
    prepare: async (world) => {
      const { annex } = await createAnnex(
        world.healthy.deps,
        ALICE,
        {
          ...createInput('spotty'),
          market: 'spot',
          instanceTypes: ['m5.large', 'c5.large'],
          replaceInterrupted: true,
        },
        uniqueKey('setup'),
      );
      if (annex.state !== 'RUNNING') throw new Error(`set-up annex is ${annex.state}`);
      const victim = (await world.probe.listInstances(annex.id))[0]?.instanceId ?? '';
      return { annexId: annex.id, name: annex.name, key: victim, before: annex };
    },
    request: async (deps, t) => {
      // The same event on every delivery (EventBridge's id and time), stamped at the annex's creation.
      const event = parseEc2Event(
        ec2Event('spot-interruption-warning', t.key, { time: t.before?.createdAt }),
      );
      if (event === undefined || t.annexId === undefined) throw new Error('no event to deliver');
      await handleEc2Event(deps, event);
      const annex = await deps.store.getAnnex(t.annexId);
      if (annex === undefined) throw new Error(`annex ${t.annexId} is gone`);
      return annex;
    },
    firstWrite: 'TransactWriteItems',
  },
];

// ---------------------------------------------------------------------------------------------
// One case: crash, sweep, check, retry, sweep, check

/** Idempotency keys whose add-nodes retry was refused because the sweep abandoned their batch. */
const refusedRetries = new Set<string>();

interface CaseRun {
  target: Target;
  calls: CallRecord[];
  /** What the crashed request did: returned (the crash hit its last call, caught as best effort) or threw. */
  outcome: 'returned' | Error;
  crashedAt: { at: number; command: string } | undefined;
  /** The annex the crashed request left in the table, if it got as far as writing one. */
  annexIdAfterCrash: string | undefined;
  firstSweep: SweepReport;
  afterCrash: { annex: Annex | undefined; violations: string[] };
  retried: Annex;
  launchesInRetry: number;
  secondSweep: SweepReport;
  afterRetry: { annex: Annex | undefined; violations: string[]; running: number };
  /** Ids of every annex of that owner and name in the table after the retry. */
  annexesNamed: string[];
  problems: string[];
}

const runCase = async (op: Operation, crashAt?: number): Promise<CaseRun> => {
  const world = await newWorld();
  try {
    const target = await op.prepare(world);
    world.crashing.calls.crashAt = crashAt ?? Number.POSITIVE_INFINITY;
    const outcome = await op.request(world.crashing.deps, target).then(
      () => 'returned' as const,
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
    await world.crashing.calls.settled();
    const annexIdAfterCrash =
      target.annexId ?? (await world.probe.findAnnexByName(ALICE.principalArn, target.name))?.id;
    const known = annexIdAfterCrash === undefined ? [] : [annexIdAfterCrash];

    world.clock.offsetSeconds = FIRST_SWEEP_AT_S;
    const firstSweep = await sweep(world.healthy.deps);
    const afterCrash = {
      annex: annexIdAfterCrash === undefined ? undefined : await world.probe.getAnnex(annexIdAfterCrash),
      violations: await violations(world, known),
    };

    const launches = () =>
      world.healthy.calls.count('RunInstances') + world.healthy.calls.count('CreateFleet');
    const launchesBefore = launches();
    const retried = await op.request(world.healthy.deps, target);
    const launchesInRetry = launches() - launchesBefore;

    world.clock.offsetSeconds = SECOND_SWEEP_AT_S;
    const secondSweep = await sweep(world.healthy.deps);
    const afterRetry = {
      annex: await world.probe.getAnnex(retried.id),
      violations: await violations(world, [...known, retried.id]),
      running: (await runningInstances(world.stage)).filter((i) => i.annexId === retried.id).length,
    };
    const annexesNamed = (await world.probe.listAnnexesByOwner(ALICE.principalArn))
      .filter((a) => a.name === target.name)
      .map((a) => a.id);
    return {
      target,
      calls: world.crashing.calls.log,
      outcome,
      crashedAt: world.crashing.calls.crashed,
      annexIdAfterCrash,
      firstSweep,
      afterCrash,
      retried,
      launchesInRetry,
      secondSweep,
      afterRetry,
      annexesNamed,
      problems: world.problems,
    };
  } finally {
    world.destroy();
  }
};

// ---------------------------------------------------------------------------------------------
// What "converges" means, per operation and per how far the crashed request got

type Phase = 'nothing-written' | 'written-not-launched' | 'launched' | 'written' | 'noticed';

const phaseOf = (op: Operation, calls: CallRecord[], crashAt: number): Phase => {
  const index = (command: string) => calls.findIndex((c) => c.command === command) + 1;
  if (crashAt < index(op.firstWrite)) return 'nothing-written';
  if (op.name === 'replace') {
    // The first transaction records the warning; the second starts the replacement batch.
    const batchStarted =
      calls.findIndex((c, i) => i >= index(op.firstWrite) && c.command === 'TransactWriteItems') + 1;
    if (crashAt < batchStarted) return 'noticed';
    return crashAt < index('CreateFleet') ? 'written-not-launched' : 'launched';
  }
  if (op.name === 'create' || op.name === 'add-nodes') {
    return crashAt < index('RunInstances') ? 'written-not-launched' : 'launched';
  }
  if (op.name === 'create-spot') {
    return crashAt < index('CreateFleet') ? 'written-not-launched' : 'launched';
  }
  return 'written';
};

const EXPECTATION: Record<Operation['name'], Partial<Record<Phase, string>>> = {
  replace: {
    'nothing-written': 'nothing to repair; the redelivered warning is recorded and replaced once',
    noticed: 'the warning is recorded; the redelivery replaces the instance once (no second event)',
    'written-not-launched':
      'the sweep abandons the empty replacement batch (requestedCount unchanged); the redelivery launches nothing',
    launched: 'the sweep adopts the replacement (or it was recorded); the redelivery launches nothing',
  },
  'create-spot': {
    'nothing-written': 'nothing to repair; the retry creates the annex and launches one fleet',
    'written-not-launched':
      'the sweep fails the stuck annex and deletes its template; the retry returns it FAILED, no fleet',
    launched:
      'the sweep adopts the fleet’s instances by tag (or they were recorded); the retry launches no fleet',
  },
  create: {
    'nothing-written': 'nothing to repair; the retry creates the annex and launches once',
    'written-not-launched':
      'the sweep fails the stuck annex cleanly; the retry returns it FAILED and launches nothing',
    launched: 'the sweep adopts the batch (or it was recorded); the retry returns it RUNNING, no launch',
  },
  'add-nodes': {
    'nothing-written': 'nothing to repair; the retry launches the batch once',
    'written-not-launched':
      'the sweep abandons the empty batch; the retry (same key) is refused with 409 "abandoned", no launch',
    launched: 'the sweep adopts the batch (or it was recorded); the retry returns it, no launch',
  },
  extend: {
    'nothing-written': 'nothing to repair; the retry extends the lease',
    written: 'the sweep retags and reschedules the extended lease; the retry extends it again',
  },
  delete: {
    'nothing-written': 'nothing to repair; the retry ends the annex',
    written: 'the sweep finishes the half-done termination; the retry returns the ended annex',
  },
};

const assertConverged = (expect: ExpectStatic, op: Operation, run: CaseRun, phase: Phase): void => {
  // The crashed request either died with the crash or (crash on its very last, best-effort call)
  // returned; it never fails with anything else.
  if (run.outcome !== 'returned') expect(run.outcome).toBeInstanceOf(Crash);
  // Neither sweep hit an error (a failing step is logged and counted, then retried next minute).
  expect({
    errors: run.firstSweep.errors,
    problems: run.problems.filter((p) => p.startsWith('error')),
  }).toEqual({ errors: 0, problems: [] });
  expect(run.secondSweep.errors).toBe(0);
  // (a), (b), (c), (e) after the crash and one sweep, and again after the retry and a second sweep.
  expect(run.afterCrash.violations).toEqual([]);
  expect(run.afterRetry.violations).toEqual([]);

  // (d) the same annex (and never a second one), no second launch, as many instances as it asks for.
  const { target, retried, afterCrash, afterRetry } = run;
  expect(run.annexesNamed).toEqual([retried.id]);
  expect(retried.id).toBe(run.annexIdAfterCrash ?? retried.id);
  // Convergence comes from finding instances by tag, never from EC2 answering a repeated client
  // token with the first reservation (AWS would; moto would launch again; the shim replays).
  expect(
    shim.runInstances.filter((r) => r.replayed && r.clientToken?.startsWith(`${retried.id}-`) === true),
  ).toEqual([]);
  expect(afterRetry.annex).toMatchObject({
    id: retried.id,
    state: retried.state,
    version: retried.version,
  });
  const before = target.before;
  switch (op.name) {
    case 'create':
    case 'create-spot':
      if (phase === 'nothing-written') {
        expect(afterCrash.annex).toBeUndefined();
        expect(run.launchesInRetry).toBe(1);
      } else {
        expect(run.launchesInRetry).toBe(0);
      }
      if (phase === 'written-not-launched') {
        expect(afterCrash.annex).toMatchObject({ state: 'FAILED', endReason: 'launch-failed' });
        expect(retried.state).toBe('FAILED');
        expect(afterRetry.running).toBe(0);
      } else {
        expect(retried).toMatchObject({ state: 'RUNNING', requestedCount: COUNT });
        expect(afterRetry.running).toBe(COUNT);
      }
      break;
    case 'add-nodes': {
      expect(run.launchesInRetry).toBe(phase === 'nothing-written' ? 1 : 0);
      expect(refusedRetries.has(target.key ?? '')).toBe(phase === 'written-not-launched');
      const expected = phase === 'written-not-launched' ? COUNT : COUNT + ADDED;
      expect(afterCrash.annex).toMatchObject({ state: 'RUNNING' });
      expect(afterCrash.annex?.launching).toBeUndefined();
      expect(retried).toMatchObject({ state: 'RUNNING', requestedCount: expected });
      expect(afterRetry.annex?.launching).toBeUndefined();
      expect(afterRetry.running).toBe(expected);
      break;
    }
    case 'extend':
      expect(run.launchesInRetry).toBe(0);
      expect(afterCrash.annex?.state).toBe('RUNNING');
      if (phase === 'nothing-written') expect(afterCrash.annex?.expiresAt).toBe(before?.expiresAt);
      else
        expect(Date.parse(afterCrash.annex?.expiresAt ?? '')).toBeGreaterThan(
          Date.parse(before?.expiresAt ?? ''),
        );
      // The retry extends from its own "now": the lease, the tags and the one schedule follow it ((e)).
      expect(retried.state).toBe('RUNNING');
      expect(afterRetry.annex?.expiresAt).toBe(retried.expiresAt);
      expect(afterRetry.running).toBe(COUNT);
      break;
    case 'delete':
      expect(run.launchesInRetry).toBe(0);
      expect(afterCrash.annex?.state).toBe(phase === 'nothing-written' ? 'RUNNING' : 'TERMINATED');
      expect(retried).toMatchObject({ state: 'TERMINATED', endReason: 'user' });
      expect(afterRetry.running).toBe(0);
      break;
    case 'replace': {
      const relaunched = phase === 'nothing-written' || phase === 'noticed';
      expect(run.launchesInRetry).toBe(relaunched ? 1 : 0);
      expect(afterCrash.annex).toMatchObject({ state: 'RUNNING', requestedCount: COUNT });
      expect(afterCrash.annex?.launching).toBeUndefined();
      // A replacement never adds to what the annex asks for, and is counted once.
      expect(retried).toMatchObject({ state: 'RUNNING', requestedCount: COUNT, replacements: 1 });
      expect(afterRetry.running).toBe(phase === 'written-not-launched' ? COUNT : COUNT + 1);
      break;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Count each operation's calls (a run without a crash), then one named case per crash point

const baselines = await Promise.all(OPERATIONS.map((op) => runCase(op)));

OPERATIONS.forEach((op, i) => {
  const baseline = baselines[i];
  if (baseline === undefined) throw new Error(`no baseline for ${op.name}`);
  const k = baseline.calls.length;
  describe(`${op.name}: ${k} AWS calls (${baseline.calls.map(label).join(', ')})`, () => {
    it(`${op.name}: completes without a crash, and a retry changes nothing`, ({ expect }) => {
      expect(baseline.outcome).toBe('returned');
      assertConverged(expect, op, baseline, phaseOf(op, baseline.calls, k));
    });

    const cases = baseline.calls.map((call, n) => {
      const crashAt = n + 1;
      const phase = phaseOf(op, baseline.calls, crashAt);
      return {
        title: `${op.name}: crash after call ${crashAt} of ${k} (${label(call)}) → ${EXPECTATION[op.name][phase]}`,
        crashAt,
        phase,
      };
    });
    for (const { title, crashAt, phase } of cases) {
      it.concurrent(title, async ({ expect }) => {
        const run = await runCase(op, crashAt);
        expect(run.crashedAt?.at).toBe(crashAt);
        assertConverged(expect, op, run, phase);
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Regressions for the bugs this harness found in shared/ (each failed against the code it was
// written for; see the report).

describe('bugs found by the crash harness', () => {
  const create = OPERATIONS.find((op) => op.name === 'create');
  const createBaseline = baselines[OPERATIONS.findIndex((op) => op.name === 'create')];

  // Was: reconcileSchedules worked from the live listing taken before checkLease ran, so an annex
  // the same sweep had just FAILED (stuck launch) still counted as live and got its expiry schedule
  // re-created (the next sweep deleted it again). Every create crash between the annex write and
  // RunInstances hit it.
  it.concurrent(
    'a sweep that fails a stuck launch leaves no expiry schedule for the failed annex',
    async ({ expect }) => {
      if (create === undefined || createBaseline === undefined) throw new Error('no create baseline');
      const annexWritten = createBaseline.calls.findIndex((c) => c.command === 'TransactWriteItems') + 1;
      const run = await runCase(create, annexWritten);
      expect(run.afterCrash.annex?.state).toBe('FAILED');
      expect(run.firstSweep.actions.filter((a) => a.action === 'schedule-expiry')).toEqual([]);
      expect(run.afterCrash.violations).toEqual([]);
    },
  );

  // Two stages in one account and region (dev and prod), one caller, one Idempotency-Key.
  // Was (1): the annex id came from the owner and the key alone, and findBatchInstances and
  // listAnnexInstances filtered by annex id only: the second stage adopted the first one's
  // instances instead of launching, and ending it terminated them.
  // Was (2): with the look-ups stage-scoped, the shared annex id still meant a shared EC2
  // ClientToken `<annexId>-b1-a0`; on AWS a token is account- and region-wide, so the second
  // stage's RunInstances (other tags) was refused with IdempotentParameterMismatch (409, then
  // FAILED by the sweep). The shim in front of moto answers as AWS does.
  const sameKeyInTwoStages = async () => {
    const [prod, dev] = await Promise.all([newWorld(), newWorld()]);
    const key = uniqueKey('same-key');
    const inProd = await createAnnex(prod.healthy.deps, ALICE, createInput('burst'), key);
    const prodInstances = (await runningInstances(prod.stage)).map((i) => i.instanceId).sort();
    const inDev = await createAnnex(dev.healthy.deps, ALICE, createInput('burst'), key).then(
      ({ annex }) => annex.state,
      (e: unknown) => (e instanceof Error ? e.message : String(e)),
    );
    return { prod, dev, inProd: inProd.annex, prodInstances, inDev };
  };

  it.concurrent(
    'an annex never adopts or terminates instances another stage launched with the same caller and key',
    async ({ expect }) => {
      const { prod, dev, inProd, prodInstances } = await sameKeyInTwoStages();
      try {
        expect(inProd.state).toBe('RUNNING');
        const devAnnex = await dev.probe.findAnnexByName(ALICE.principalArn, 'burst');
        await deleteAnnex(dev.healthy.deps, ALICE, { name: 'burst' });

        const recordedInDev = devAnnex === undefined ? [] : await dev.probe.listInstances(devAnnex.id);
        expect(recordedInDev.filter((r) => prodInstances.includes(r.instanceId))).toEqual([]);
        expect((await runningInstances(prod.stage)).map((i) => i.instanceId).sort()).toEqual(prodInstances);
        expect(await runningInstances(dev.stage)).toEqual([]);
      } finally {
        prod.destroy();
        dev.destroy();
      }
    },
  );

  it.concurrent(
    'a create in one stage launches its own instances when another stage saw the same caller and key',
    async ({ expect }) => {
      const { prod, dev, inDev } = await sameKeyInTwoStages();
      try {
        expect(inDev).toBe('RUNNING');
        expect(await runningInstances(dev.stage)).toHaveLength(COUNT);
      } finally {
        prod.destroy();
        dev.destroy();
      }
    },
  );
});
