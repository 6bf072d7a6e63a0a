// Section 5: the cost of one sweep (`sweep()` of shared/domain/sweep.ts, with the deps the reaper
// handler builds) over many live leases, on DynamoDB Local with the lease items written exactly as
// DynamoLeaseStore writes them. Two variants, labelled in the report:
//
// - moto: EC2, SSM and Scheduler in moto. moto's DescribeInstances looks up each instance's tags
//   by scanning every tag it holds (moto/ec2/models/core.py get_tags → describe_tags), so listing
//   N tagged instances costs O(N²) in the emulator: this variant is scaled down to what fits the
//   time budget, and measures how that listing grows.
// - memory: 10,000 leases / 20,000 instances. DynamoDB is real (DynamoDB Local); EC2, SSM and
//   Scheduler are answered from memory by a client middleware (instrument.ts FakeCloud) in the page
//   sizes the adapters ask for, so those calls cost only the adapters' and SDK's own work.
//
// Every lease is live and unexpired and every instance recent and heartbeating, with its expiry
// schedule and credential copy in place, so the sweep has nothing to do (the steady-state cost);
// then 1% of the leases are moved into the past (their schedules gone, as if lost) and the sweep
// runs again and must end exactly those.
import { randomBytes } from 'node:crypto';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { RunInstancesCommand, type Instance } from '@aws-sdk/client-ec2';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { instanceRecord } from '../../shared/domain/instance-records.ts';
import { mapLimit } from '../../shared/domain/concurrency.ts';
import { requestHash } from '../../shared/domain/lease.ts';
import type { Annex, InstanceRecord } from '../../shared/domain/model.ts';
import type { LaunchedInstance } from '../../shared/domain/ports.ts';
import { sweep, type SweepDeps, type SweepReport } from '../../shared/domain/sweep.ts';
import { sweepSettings } from '../../shared/config.ts';
import { TAG } from '../../shared/aws/ec2.ts';
import { DynamoLeaseStore } from '../../shared/aws/leases.ts';
import { annexItem } from '../../shared/aws/table/entities.ts';
import type { LocalStack } from '../devstack/stack.ts';
import { CommandRecorder, FakeCloud, type CommandStats } from './instrument.ts';
import {
  addStage,
  benchClients,
  destroyClients,
  mainStage,
  stageDeps,
  withBenchStack,
  type Clients,
  type StageTarget,
} from './local.ts';
import { median, percentile } from './stats.ts';

export type Variant = 'moto' | 'memory';

/** One phase of a sweep: wall time, and this process's CPU time over the same interval. */
export interface Phase {
  name: string;
  wallMs: number;
  cpuMs: number;
}

/** Calls of one method of the sweep's deps (store, compute, secrets, schedules). */
export interface MethodCalls {
  name: string;
  calls: number;
  totalMs: number;
  p50: number;
  p99: number;
}

export interface SweepRun {
  label: string;
  concurrency: number;
  leases: number;
  expired: number;
  wallMs: number;
  /** CPU this Node process used during the sweep (user + system). */
  cpuMs: number;
  liveAnnexes: number;
  taggedInstances: number;
  actions: Record<string, number>;
  errors: number;
  /** In sweep order; together they cover the whole sweep. */
  phases: Phase[];
  /** Every deps method the sweep called, by `target.method`. */
  methods: MethodCalls[];
  dynamo: {
    requests: number;
    byCommand: Record<string, { count: number; items: number; ms: number; capacityUnits: number }>;
    itemsRead: number;
    queryItems: number;
    getItems: number;
    scans: number;
    capacityUnits: number;
    /** Responses that carried ConsumedCapacity, of the requests asked for it. */
    withCapacity: number;
  };
  pages: { describeInstances: number; describeParameters: number; listSchedules: number };
  /** Every other AWS call (not DynamoDB), by service:Command. */
  otherCalls: Record<string, number>;
  /** Where this process's CPU went during the run, when it was profiled. */
  profile?: CpuProfileSummary;
}

export interface CpuProfileSummary {
  /** Sampled time, idle excluded. */
  busyMs: number;
  idleMs: number;
  categories: { name: string; ms: number }[];
  topFunctions: { name: string; ms: number }[];
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}

const CATEGORIES: [string, (url: string, fn: string) => boolean][] = [
  ['garbage collection', (_u, f) => f === '(garbage collector)'],
  ['AWS SDK (@aws-sdk, @smithy, @aws-crypto)', (u) => /node_modules\/@(aws-sdk|smithy|aws-crypto)\//.test(u)],
  [
    'hashing (SigV4 signing)',
    (u, f) => u.startsWith('node:internal/crypto') || /^(Hmac|Hash|digest|update)$/.test(f),
  ],
  [
    'HTTP, sockets, streams, events (Node)',
    (u, f) =>
      /^node:(_http|net|events|internal\/(streams|http|deps\/undici|net|stream_base|timers)|stream|timers|buffer|internal\/buffer)/.test(
        u,
      ) || /^(writev|writeBuffer|writeUtf8String|onStreamRead|close)$/.test(f),
  ],
  [
    'promises and task queues (Node)',
    (u, f) => u.startsWith('node:internal/process') || f === 'runMicrotasks',
  ],
  ['domain code and adapters (shared/)', (u) => u.includes('/shared/')],
  ['benchmark instrumentation (scripts/bench/)', (u) => u.includes('/scripts/bench/')],
];

function summarizeProfile(profile: {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}): CpuProfileSummary {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (deltas[i] ?? 0) / 1000));
  const byCategory = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let idleMs = 0;
  for (const [id, ms] of self) {
    const frame = nodes.get(id)?.callFrame ?? { functionName: '', url: '' };
    if (frame.functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    // The inspector session's own native call (Profiler.stop serialising the profile): not the sweep.
    if (frame.functionName === 'dispatch' && frame.url === '') continue;
    const category = CATEGORIES.find(([, test]) => test(frame.url, frame.functionName))?.[0] ?? 'other';
    byCategory.set(category, (byCategory.get(category) ?? 0) + ms);
    const where = frame.url
      .replace(/^.*node_modules\//, '')
      .replace(/^file:\/\/.*?\/(shared|scripts)\//, '$1/');
    const name = `${frame.functionName || '(anonymous)'}${where === '' ? '' : ` (${where.replace(/\/dist-cjs\/.*$/, '')})`}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
  }
  const sortDesc = (m: Map<string, number>) =>
    [...m].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms);
  const categories = sortDesc(byCategory);
  return {
    busyMs: categories.reduce((n, c) => n + c.ms, 0),
    idleMs,
    categories,
    topFunctions: sortDesc(byFunction).slice(0, 8),
  };
}

export interface VariantResult {
  variant: Variant;
  leases: number;
  instances: number;
  wantedLeases: number;
  seeding: { ec2Ms: number; dynamoMs: number; ssmMs: number; schedulerMs: number; totalMs: number };
  /** moto only: listStageInstances time at growing sizes (instances → ms). */
  motoListing: { instances: number; ms: number }[];
  runs: SweepRun[];
  /** Runs left out, and why. */
  skipped: string[];
}

export interface SweepSection {
  defaultConcurrency: number;
  /** ANNEX_SWEEP_CONCURRENCY as set in the environment, if it was. */
  concurrencyEnv?: string;
  /** 1-minute load average at the start and end of the section. */
  load: { start: number; end: number };
  budgetMs: number;
  variants: VariantResult[];
  failures: string[];
  elapsedMs: number;
  logFile: string;
  logLines: number;
}

const OWNERS = 100;
const ownerArn = (i: number): string => `arn:aws:iam::123456789012:user/bench-${i % OWNERS}`;

/** An annex as createAnnex + a successful launch leave it: RUNNING, version 3. */
function runningAnnex(stack: LocalStack, stage: string, i: number, now: Date, expiresAt: Date): Annex {
  const input = { name: `sweep-${i}`, count: 2, instanceTypes: ['m5.large'], market: 'on-demand' };
  const createdAt = new Date(now.getTime() - 120_000).toISOString();
  return {
    id: `ax-${randomBytes(10).toString('hex')}`,
    name: input.name,
    owner: ownerArn(i),
    pool: 'default',
    poolCredentialParameter: `/annex/${stage}/pools/shared/default/credential`,
    state: 'RUNNING',
    spec: {
      market: 'on-demand',
      instanceTypes: input.instanceTypes,
      imageId: stack.imageId,
      subnetIds: stack.subnetIds,
      securityGroupIds: stack.securityGroupIds,
      tags: {},
    },
    requestedCount: 2,
    batches: 1,
    idleSeconds: 900,
    createdAt,
    updatedAt: createdAt,
    expiresAt: expiresAt.toISOString(),
    requestHash: requestHash(input),
    version: 3,
  };
}

/** The tags Ec2Compute.launch puts on an annex's instances (the instance half of them). */
const launchTags = (annex: Annex, stage: string): [string, string][] => [
  ['Name', `annex-${annex.name}`],
  [TAG.id, annex.id],
  [TAG.name, annex.name],
  [TAG.owner, annex.owner],
  [TAG.stage, stage],
  [TAG.expiresAt, annex.expiresAt],
  [TAG.batch, '1'],
];

/**
 * The instance record the launch wrote, priced as the first sweep after its launch left it (the
 * steady state has nothing to price), plus a recent heartbeat with a claimed slot (busy).
 */
const heartbeating = (annex: Annex, i: LaunchedInstance, now: string): InstanceRecord => ({
  ...instanceRecord(annex, i, now),
  hourlyUsd: 0.096,
  priceSource: 'on-demand-table',
  lastHeartbeatAt: now,
  claimedSlots: 1,
  totalSlots: 1,
});

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

interface Seeded {
  annexes: Annex[];
  /** instance ids per annex id */
  instances: Map<string, string[]>;
}

/** Writes items with BatchWriteItem (25 per request), `concurrency` requests at a time. */
async function batchWrite(
  doc: DynamoDBDocumentClient,
  tableName: string,
  items: Record<string, unknown>[],
  concurrency: number,
): Promise<void> {
  const batches: Record<string, unknown>[][] = [];
  for (let i = 0; i < items.length; i += 25) batches.push(items.slice(i, i + 25));
  await mapLimit(batches, concurrency, async (batch) => {
    let requests: Record<string, unknown>[] = batch.map((Item) => ({ PutRequest: { Item } }));
    for (let round = 0; requests.length > 0; round++) {
      if (round >= 10) throw new Error('DynamoDB Local did not accept the seed items');
      if (round > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** round));
      const out = await doc.send(new BatchWriteCommand({ RequestItems: { [tableName]: requests } }));
      requests = (out.UnprocessedItems?.[tableName] ?? []) as Record<string, unknown>[];
    }
  });
}

/**
 * The lease table side the sweep reads: per annex its META item (built by DynamoLeaseStore's own
 * item builder, so it is exactly what createAnnex/updateAnnex write, live-index attribute
 * included), and its instance items through `store.putInstances` itself. The name claim and the
 * event items an annex also has are not written: the sweep never reads them (other partitions or
 * other sort-key ranges), and they would double the seeding time.
 */
async function seedTable(
  store: DynamoLeaseStore,
  doc: DynamoDBDocumentClient,
  tableName: string,
  annexes: Annex[],
  records: InstanceRecord[],
): Promise<void> {
  await batchWrite(
    doc,
    tableName,
    annexes.map((annex) => annexItem(annex)),
    8,
  );
  const chunks: InstanceRecord[][] = [];
  for (let i = 0; i < records.length; i += 250) chunks.push(records.slice(i, i + 250));
  await mapLimit(chunks, 8, (chunk) => store.putInstances(chunk));
}

const msSince = (t: number): number => performance.now() - t;

interface TimedCall {
  name: string;
  start: number;
  end: number;
  /** process.cpuUsage() user + system, µs, at start and end. */
  cpuStart: number;
  cpuEnd: number;
}

const cpuNow = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/** Methods whose start and end bound a phase: only these take CPU snapshots (cheap, not free). */
const BOUNDARIES =
  /^(compute\.listStageInstances|store\.listLive.*|secrets\.listAnnexCredentials|schedules\.list)$/;

/** A proxy that records when each async method of `target` starts and ends (as `prefix.method`). */
function timed<T extends object>(target: T, prefix: string, calls: TimedCall[]): T {
  return new Proxy(target, {
    get(t, prop, receiver) {
      const value: unknown = Reflect.get(t, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      const fn = value as (...args: unknown[]) => unknown;
      const name = `${prefix}.${prop}`;
      const boundary = BOUNDARIES.test(name);
      return (...args: unknown[]) => {
        const start = performance.now();
        const cpuStart = boundary ? cpuNow() : 0;
        const done = () =>
          calls.push({ name, start, end: performance.now(), cpuStart, cpuEnd: boundary ? cpuNow() : 0 });
        const result = fn.apply(t, args);
        if (result instanceof Promise) return result.finally(done);
        done();
        return result;
      };
    },
  });
}

/** Phases from the deps calls: EC2 listing, live listings, lease checks, parameters, schedules. */
function phasesOf(calls: TimedCall[], start: number, end: number, cpuStart: number, cpuEnd: number): Phase[] {
  const first = (test: (c: TimedCall) => boolean) => calls.filter(test).sort((a, b) => a.start - b.start)[0];
  const ec2 = first((c) => c.name === 'compute.listStageInstances');
  const live = calls.filter((c) => /^store\.listLive/.test(c.name));
  const params = first((c) => c.name === 'secrets.listAnnexCredentials');
  const scheds = first((c) => c.name === 'schedules.list');
  // Boundaries (time, CPU) in order; a missing phase takes no time.
  const points: { name: string; at: number; cpu: number }[] = [{ name: 'start', at: start, cpu: cpuStart }];
  const push = (name: string, at: number | undefined, cpu: number | undefined) => {
    const prev = points[points.length - 1] as { at: number; cpu: number };
    points.push({ name, at: at ?? prev.at, cpu: cpu ?? prev.cpu });
  };
  push('EC2 listing', ec2?.end, ec2?.cpuEnd);
  const liveEnd = live.length === 0 ? undefined : live.reduce((a, b) => (a.end > b.end ? a : b));
  push('live listings (leases ∥ instances)', liveEnd?.end, liveEnd?.cpuEnd);
  push('lease checks and orphans', params?.start, params?.cpuStart);
  push('parameter listing and leaks', scheds?.start, scheds?.cpuStart);
  push('schedule listing', scheds?.end, scheds?.cpuEnd);
  push('schedule reconcile', end, cpuEnd);
  return points.slice(1).map((p, i) => ({
    name: p.name,
    wallMs: p.at - (points[i] as { at: number }).at,
    cpuMs: (p.cpu - (points[i] as { cpu: number }).cpu) / 1000,
  }));
}

function methodsOf(calls: TimedCall[]): MethodCalls[] {
  const by = new Map<string, number[]>();
  for (const c of calls) by.set(c.name, [...(by.get(c.name) ?? []), c.end - c.start]);
  return [...by]
    .map(([name, ms]) => ({
      name,
      calls: ms.length,
      totalMs: ms.reduce((a, b) => a + b, 0),
      p50: median(ms),
      p99: percentile(ms, 99),
    }))
    .sort((a, b) => b.totalMs - a.totalMs);
}

async function measuredSweep(
  label: string,
  deps: SweepDeps,
  recorder: CommandRecorder,
  expired: number,
  leases: number,
  profile = false,
): Promise<SweepRun> {
  const calls: TimedCall[] = [];
  const wrapped: SweepDeps = {
    ...deps,
    store: timed(deps.store, 'store', calls),
    compute: timed(deps.compute, 'compute', calls),
    secrets: timed(deps.secrets, 'secrets', calls),
    schedules: timed(deps.schedules, 'schedules', calls),
  };
  recorder.take();
  const session = profile ? new Session() : undefined;
  if (session !== undefined) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const cpu = process.cpuUsage();
  const cpuStart = cpuNow();
  const start = performance.now();
  const report: SweepReport = await sweep(wrapped);
  const end = performance.now();
  const cpuEnd = cpuNow();
  const cpuUsed = process.cpuUsage(cpu);
  let profileSummary: CpuProfileSummary | undefined;
  if (session !== undefined) {
    const { profile: taken } = await session.post('Profiler.stop');
    session.disconnect();
    profileSummary = summarizeProfile(taken as unknown as Parameters<typeof summarizeProfile>[0]);
  }
  const stats = recorder.take();

  const dynamo = [...stats].filter(([k]) => k.startsWith('dynamodb:'));
  const stat = (key: string): CommandStats | undefined => stats.get(key);
  const actions: Record<string, number> = {};
  for (const a of report.actions) actions[a.action] = (actions[a.action] ?? 0) + 1;
  return {
    label,
    concurrency: deps.sweep.concurrency,
    leases,
    expired,
    wallMs: end - start,
    cpuMs: (cpuUsed.user + cpuUsed.system) / 1000,
    liveAnnexes: report.liveAnnexes,
    taggedInstances: report.taggedInstances,
    actions,
    errors: report.errors,
    phases: phasesOf(calls, start, end, cpuStart, cpuEnd),
    methods: methodsOf(calls),
    dynamo: {
      requests: dynamo.reduce((n, [, s]) => n + s.count, 0),
      byCommand: Object.fromEntries(
        dynamo.map(([k, s]) => [
          k.slice('dynamodb:'.length),
          { count: s.count, items: s.items, ms: s.totalMs, capacityUnits: s.capacityUnits },
        ]),
      ),
      itemsRead: dynamo.reduce((n, [, s]) => n + s.items, 0),
      queryItems: stat('dynamodb:QueryCommand')?.items ?? 0,
      getItems: stat('dynamodb:GetItemCommand')?.items ?? 0,
      scans: stat('dynamodb:ScanCommand')?.count ?? 0,
      capacityUnits: dynamo.reduce((n, [, s]) => n + s.capacityUnits, 0),
      withCapacity: dynamo.reduce((n, [, s]) => n + s.withCapacity, 0),
    },
    pages: {
      describeInstances: stat('ec2:DescribeInstancesCommand')?.count ?? 0,
      describeParameters: stat('ssm:DescribeParametersCommand')?.count ?? 0,
      listSchedules: stat('scheduler:ListSchedulesCommand')?.count ?? 0,
    },
    otherCalls: Object.fromEntries(
      [...stats]
        .filter(
          ([k]) =>
            !k.startsWith('dynamodb:') &&
            ![
              'ec2:DescribeInstancesCommand',
              'ssm:DescribeParametersCommand',
              'scheduler:ListSchedulesCommand',
            ].includes(k),
        )
        .map(([k, s]) => [k, s.count]),
    ),
    ...(profileSummary === undefined ? {} : { profile: profileSummary }),
  };
}

/** Moves `count` random leases' expiry into the past: table item, instance tags, schedule gone. */
async function expireSome(
  deps: SweepDeps,
  store: DynamoLeaseStore,
  doc: DynamoDBDocumentClient,
  tableName: string,
  seeded: Seeded,
  count: number,
): Promise<number> {
  const chosen = [...seeded.annexes].sort(() => Math.random() - 0.5).slice(0, count);
  const items: Record<string, unknown>[] = [];
  for (const annex of chosen) {
    const old = annex.expiresAt;
    annex.expiresAt = new Date(Date.now() - 60_000 - Math.floor(Math.random() * 600_000)).toISOString();
    items.push(annexItem(annex));
    await deps.compute.retag(seeded.instances.get(annex.id) ?? [], { [TAG.expiresAt]: annex.expiresAt });
    await deps.schedules.cancel(annex.id, old);
  }
  await batchWrite(doc, tableName, items, 4);
  return chosen.length;
}

async function runVariant(
  variant: Variant,
  stack: LocalStack,
  wantedLeases: number,
  log: (line: string) => void,
  {
    seedBudgetMs,
    extraConcurrency,
    sectionDeadline,
  }: { seedBudgetMs: number; extraConcurrency?: number; sectionDeadline: number },
): Promise<VariantResult> {
  const skipped: string[] = [];
  const clients: Clients = benchClients(stack);
  const recorder = new CommandRecorder();
  recorder.attach(clients.dynamo, 'dynamodb', { askCapacity: true });
  recorder.attach(clients.ec2, 'ec2');
  recorder.attach(clients.ssm, 'ssm');
  recorder.attach(clients.scheduler, 'scheduler');
  const target: StageTarget =
    variant === 'moto' ? mainStage(stack) : await addStage(stack, clients, 'benchmem');
  const fake = variant === 'memory' ? new FakeCloud() : undefined;
  if (fake !== undefined) {
    fake.attachEc2(clients.ec2);
    fake.attachSsm(clients.ssm);
    fake.attachScheduler(clients.scheduler);
  }
  const store = new DynamoLeaseStore(clients.dynamo, target.tableName);
  const deps = stageDeps(stack, target, clients, { store });
  const doc = DynamoDBDocumentClient.from(clients.dynamo, {
    marshallOptions: { removeUndefinedValues: true },
  });
  const seeded: Seeded = { annexes: [], instances: new Map() };
  const records: InstanceRecord[] = [];
  const motoListing: VariantResult['motoListing'] = [];
  const seeding = { ec2Ms: 0, dynamoMs: 0, ssmMs: 0, schedulerMs: 0, totalMs: 0 };
  const seedStart = performance.now();
  const now = new Date();
  const nowIso = now.toISOString();
  const expiryOf = () => new Date(now.getTime() + 3600_000 + Math.floor(Math.random() * 6 * 24 * 3600_000));

  // EC2 (and the annexes, which take their instance ids from it).
  let t = performance.now();
  const deadline = Date.now() + seedBudgetMs;
  for (let i = 0; i < wantedLeases; i++) {
    const annex = runningAnnex(stack, target.stage, i, now, expiryOf());
    let launched: LaunchedInstance[];
    if (variant === 'moto') {
      if (Date.now() > deadline) {
        log(`sweep moto: seeding budget reached after ${i} leases`);
        break;
      }
      const out = await clients.ec2.send(
        new RunInstancesCommand({
          ImageId: stack.imageId,
          InstanceType: 'm5.large',
          MinCount: 2,
          MaxCount: 2,
          SubnetId: stack.subnetIds[0],
          TagSpecifications: [
            {
              ResourceType: 'instance',
              Tags: launchTags(annex, target.stage).map(([Key, Value]) => ({ Key, Value })),
            },
          ],
        }),
      );
      launched = (out.Instances ?? []).map((x: Instance) => ({
        instanceId: x.InstanceId ?? '',
        instanceType: x.InstanceType ?? 'm5.large',
        state: 'running' as const,
        batch: 1,
        launchedAt: (x.LaunchTime ?? now).toISOString(),
        ...(x.SubnetId === undefined ? {} : { subnetId: x.SubnetId }),
        ...(x.Placement?.AvailabilityZone === undefined
          ? {}
          : { availabilityZone: x.Placement.AvailabilityZone }),
        ...(x.PrivateIpAddress === undefined ? {} : { privateIpAddress: x.PrivateIpAddress }),
      }));
      if (i + 1 === Math.floor(wantedLeases / 2)) {
        const s = performance.now();
        const n = (await deps.compute.listStageInstances(target.stage)).length;
        motoListing.push({ instances: n, ms: msSince(s) });
      }
    } else {
      const launchTime = new Date(now.getTime() - Math.floor(Math.random() * 300_000));
      launched = [0, 1].map(() => {
        const instanceId = `i-${hex(9).slice(0, 17)}`;
        const subnetId = stack.subnetIds[0] ?? 'subnet-00000000';
        fake?.addInstance({
          instanceId,
          instanceType: 'm5.large',
          launchTime,
          state: 'running',
          tags: new Map(launchTags(annex, target.stage)),
          subnetId,
          availabilityZone: 'us-east-1a',
          privateIpAddress: `10.${(i >> 8) & 255}.${i & 255}.${Math.floor(Math.random() * 250) + 2}`,
        });
        return {
          instanceId,
          instanceType: 'm5.large',
          state: 'running' as const,
          batch: 1,
          launchedAt: launchTime.toISOString(),
          subnetId,
          availabilityZone: 'us-east-1a',
        };
      });
    }
    seeded.annexes.push(annex);
    seeded.instances.set(
      annex.id,
      launched.map((l) => l.instanceId),
    );
    for (const l of launched) records.push(heartbeating(annex, l, nowIso));
    if (variant === 'moto' && (i + 1) % 50 === 0) log(`sweep moto: ${i + 1} leases launched`);
  }
  seeding.ec2Ms = msSince(t);
  const leases = seeded.annexes.length;
  log(`sweep ${variant}: ${leases} leases / ${records.length} instances in EC2; writing the table`);

  t = performance.now();
  await seedTable(store, doc, target.tableName, seeded.annexes, records);
  seeding.dynamoMs = msSince(t);

  // The credential copy and the expiry schedule of each lease, through the real adapters.
  t = performance.now();
  await mapLimit(seeded.annexes, 4, (a) =>
    deps.secrets.putAnnexCredential(a.id, 'bench-pool-password-not-a-secret', {
      'annex:id': a.id,
      'annex:stage': target.stage,
    }),
  );
  seeding.ssmMs = msSince(t);
  t = performance.now();
  await mapLimit(seeded.annexes, 4, (a) => deps.schedules.schedule(a.id, a.expiresAt));
  seeding.schedulerMs = msSince(t);
  seeding.totalMs = msSince(seedStart);
  log(
    `sweep ${variant}: seeded in ${(seeding.totalMs / 1000).toFixed(1)} s (EC2 ${(seeding.ec2Ms / 1000).toFixed(1)} s, ` +
      `DynamoDB ${(seeding.dynamoMs / 1000).toFixed(1)} s, SSM ${(seeding.ssmMs / 1000).toFixed(1)} s, ` +
      `Scheduler ${(seeding.schedulerMs / 1000).toFixed(1)} s)`,
  );

  const runs: SweepRun[] = [];
  const run = async (label: string, d: SweepDeps, expired: number, profile = false) => {
    const r = await measuredSweep(label, d, recorder, expired, leases, profile);
    runs.push(r);
    log(
      `sweep ${variant} ${label}: ${(r.wallMs / 1000).toFixed(2)} s, ${r.dynamo.requests} DynamoDB requests, ` +
        `${r.dynamo.itemsRead} items read, actions ${JSON.stringify(r.actions)}, errors ${r.errors}`,
    );
  };
  await run('steady state, run 1', deps, 0);
  // Optional runs, each only when it and the 1% run after it (about as long) still fit the budget.
  const optional: [string, SweepDeps][] = [];
  if (variant === 'memory') optional.push(['steady state, run 2', deps]);
  if (extraConcurrency !== undefined) {
    const sweepAt = sweepSettings({ ...process.env, ANNEX_SWEEP_CONCURRENCY: String(extraConcurrency) });
    optional.push([
      `steady state, concurrency ${extraConcurrency} (diagnostic)`,
      { ...deps, sweep: sweepAt },
    ]);
  }
  for (const [label, d] of optional) {
    const last = runs[runs.length - 1]?.wallMs ?? 0;
    if (Date.now() + 2.3 * last > sectionDeadline) {
      log(`sweep ${variant}: ${label} not run (time budget)`);
      skipped.push(label);
      continue;
    }
    await run(label, d, 0);
  }
  if (variant === 'moto') {
    motoListing.push({
      instances: records.length,
      ms: runs[runs.length - 1]?.phases.find((p) => p.name === 'EC2 listing')?.wallMs ?? Number.NaN,
    });
  }
  const expired = await expireSome(deps, store, doc, target.tableName, seeded, Math.ceil(leases / 100));
  // The 1% run is the one CPU-profiled (in the memory variant): the steady-state verdict stays unprofiled.
  await run('1% expired', deps, expired, variant === 'memory');
  destroyClients(clients);
  return { variant, leases, instances: records.length, wantedLeases, seeding, motoListing, runs, skipped };
}

export async function runSweepSection(
  log: (line: string) => void,
  logFile: string,
  {
    motoLeases = 250,
    memoryLeases = 10_000,
    motoSeedBudgetMs = 75_000,
    memoryExtraConcurrency = 64 as number | undefined,
    budgetMs = 200_000,
  } = {},
): Promise<SweepSection> {
  const started = Date.now();
  const loadStart = loadavg()[0] ?? Number.NaN;
  const failures: string[] = [];
  const result = await withBenchStack('sweep', log, logFile, async ({ stack }) => {
    const variants: VariantResult[] = [];
    for (const [variant, leases] of [
      ['moto', motoLeases],
      ['memory', memoryLeases],
    ] as const) {
      if (leases <= 0) continue;
      try {
        variants.push(
          await runVariant(variant, stack, leases, log, {
            seedBudgetMs: motoSeedBudgetMs,
            sectionDeadline: started + budgetMs,
            ...(variant === 'memory' && memoryExtraConcurrency !== undefined
              ? { extraConcurrency: memoryExtraConcurrency }
              : {}),
          }),
        );
      } catch (e) {
        const text = e instanceof Error ? (e.stack ?? e.message) : String(e);
        log(`sweep ${variant} failed: ${text}`);
        failures.push(`${variant}: ${text}`);
      }
    }
    return variants;
  });
  if (result.value.length === 0) throw new Error(`every sweep variant failed:\n${failures.join('\n')}`);
  return {
    defaultConcurrency: sweepSettings().concurrency,
    ...(process.env.ANNEX_SWEEP_CONCURRENCY === undefined
      ? {}
      : { concurrencyEnv: process.env.ANNEX_SWEEP_CONCURRENCY }),
    load: { start: loadStart, end: loadavg()[0] ?? Number.NaN },
    budgetMs,
    variants: result.value,
    failures,
    elapsedMs: Date.now() - started,
    logFile,
    logLines: result.logLines,
  };
}
