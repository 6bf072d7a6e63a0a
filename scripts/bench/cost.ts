// Section 7: what the control plane costs on AWS, from what the local runs measured
// (scripts/bench/cost-run.ts, in a fresh process: invocations, billed durations and log bytes per
// function, memory sizes from serverless.yml, DynamoDB request units, API requests, Scheduler
// invocations, KMS requests on SSM's behalf) priced with the public list prices in
// scripts/bench/aws-prices.json (one file: region, date and source of every figure).
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadavg } from 'node:os';
import { randomUUID } from 'node:crypto';
import { readServerlessYml, repoRoot } from '../devstack/serverless-config.ts';
import type { CostRun, FunctionUse, Phase } from './cost-run.ts';
import type { Outcome } from './report.ts';

interface Price {
  usd: number;
  unit: string;
  source: string;
}

export interface PriceBook {
  region: string;
  currency: string;
  asOf: string;
  note: string;
  items: Record<
    | 'lambdaArmGbSecond'
    | 'lambdaRequest'
    | 'httpApiRequest'
    | 'dynamoReadRequestUnit'
    | 'dynamoWriteRequestUnit'
    | 'dynamoStorageGbMonth'
    | 'schedulerInvocation'
    | 'eventBridgeRuleEvent'
    | 'kmsKeyMonth'
    | 'kmsRequest'
    | 'ssmStandardParameterMonth'
    | 'ssmStandardApiInteraction'
    | 'ssmAdvancedParameterMonth'
    | 'ssmHigherThroughputApiInteraction'
    | 'logsIngestionGb'
    | 'logsStorageGbMonth',
    Price
  >;
}

export const priceBookFile = join(repoRoot, 'scripts', 'bench', 'aws-prices.json');
export const readPriceBook = (): PriceBook => JSON.parse(readFileSync(priceBookFile, 'utf8')) as PriceBook;

/** The at-rest phases measured before the notifier's rule became conditional (same meter, that commit). */
export const beforeFile = join(repoRoot, 'scripts', 'bench', 'cost-at-rest-before.json');

/** Minutes in a 30-day month: the rate(1 minute) rules fire this often. */
export const TICKS_PER_MONTH = 60 * 24 * 30;
const HOURS_PER_MONTH = 24 * 30;
const GB = 1024 ** 3;

/**
 * The lines the Lambda runtime itself writes per invocation (START, END, REPORT), in the format it
 * writes them (text log format), with a fresh request id and this invocation's numbers.
 */
export const runtimeLogBytes = (billedMs: number, memoryMb: number): number => {
  const id = randomUUID();
  const lines = [
    `START RequestId: ${id} Version: $LATEST`,
    `END RequestId: ${id}`,
    `REPORT RequestId: ${id}\tDuration: ${billedMs.toFixed(2)} ms\tBilled Duration: ${Math.ceil(billedMs)} ms\tMemory Size: ${memoryMb} MB\tMax Memory Used: ${Math.round(memoryMb / 4)} MB\t`,
  ];
  return lines.reduce((n, l) => n + Buffer.byteLength(`${l}\n`), 0);
};

/**
 * One HTTP API access-log line (serverless.yml `logs.httpApi: true`) in the framework's default
 * format, filled with values of the size a request has.
 */
export const accessLogBytes = (): number =>
  Buffer.byteLength(
    `${JSON.stringify({
      requestId: 'JmYHnh1BoAMEb5A=',
      ip: '203.0.113.17',
      requestTime: '02/Dec/2026:21:40:03 +0000',
      httpMethod: 'POST',
      routeKey: 'POST /v1/instances/self/heartbeat',
      status: '200',
      protocol: 'HTTP/1.1',
      responseLength: '187',
    })}\n`,
  );

export interface Dollars {
  lambda: number;
  api: number;
  dynamo: number;
  scheduler: number;
  kms: number;
  logs: number;
  total: number;
}

const add = (a: Dollars, b: Dollars, k = 1): Dollars => ({
  lambda: a.lambda + k * b.lambda,
  api: a.api + k * b.api,
  dynamo: a.dynamo + k * b.dynamo,
  scheduler: a.scheduler + k * b.scheduler,
  kms: a.kms + k * b.kms,
  logs: a.logs + k * b.logs,
  total: a.total + k * b.total,
});

const ZERO: Dollars = { lambda: 0, api: 0, dynamo: 0, scheduler: 0, kms: 0, logs: 0, total: 0 };

/** What a measured phase costs at list prices (logs: ingestion, plus a month's storage of them). */
export function phaseCost(phase: Phase, p: PriceBook): Dollars {
  const i = p.items;
  let lambda = 0;
  let logBytes = 0;
  for (const f of Object.values(phase.functions) as FunctionUse[]) {
    lambda += (f.billedMs / 1000) * (f.memoryMb / 1024) * i.lambdaArmGbSecond.usd;
    lambda += f.invocations * i.lambdaRequest.usd;
    logBytes += f.logBytes + f.invocations * runtimeLogBytes(f.billedMs / f.invocations, f.memoryMb);
  }
  logBytes += phase.apiRequests * accessLogBytes();
  const api = phase.apiRequests * i.httpApiRequest.usd;
  const dynamo =
    phase.dynamo.readUnits * i.dynamoReadRequestUnit.usd +
    phase.dynamo.writeUnits * i.dynamoWriteRequestUnit.usd;
  const scheduler = (phase.functions.expire?.invocations ?? 0) * i.schedulerInvocation.usd;
  const kms = phase.moto.kmsRequests * i.kmsRequest.usd;
  const logs = (logBytes / GB) * (i.logsIngestionGb.usd + i.logsStorageGbMonth.usd);
  return { lambda, api, dynamo, scheduler, kms, logs, total: lambda + api + dynamo + scheduler + kms + logs };
}

/** KMS customer managed keys the stack defines (AWS managed keys carry no monthly fee). */
export const customerKeys = (): number =>
  Object.values(
    (readServerlessYml() as { resources: { Resources: Record<string, { Type: string }> } }).resources
      .Resources,
  ).filter((r) => r.Type === 'AWS::KMS::Key').length;

export interface AtRest {
  /** Per tick (both rate functions), and the month. */
  perTick: Dollars;
  monthly: Dollars;
  keysMonthly: number;
  functions: Record<string, FunctionUse>;
  ticks: number;
  dynamo: { readUnits: number; writeUnits: number };
}

export function atRest(phase: Phase, ticks: number, p: PriceBook, keys: number): AtRest {
  const perTick = add(ZERO, phaseCost(phase, p), 1 / ticks);
  const keysMonthly = keys * p.items.kmsKeyMonth.usd;
  const monthly = add(ZERO, perTick, TICKS_PER_MONTH);
  monthly.kms += keysMonthly;
  monthly.total += keysMonthly;
  return {
    perTick,
    monthly,
    keysMonthly,
    functions: phase.functions,
    ticks,
    dynamo: { readUnits: phase.dynamo.readUnits, writeUnits: phase.dynamo.writeUnits },
  };
}

export interface AnnexHour {
  live: number;
  /** Create, bootstrap, 60 heartbeats per instance, the end: once per one-hour lease. */
  lease: Dollars;
  /** The sweep's extra work for one more live annex, 60 ticks. */
  sweep: Dollars;
  /** The at-rest hour, shared by the live annexes. */
  shared: Dollars;
  total: number;
  extrapolated: boolean;
}

export interface CostSection {
  run: CostRun;
  prices: PriceBook;
  /** No annex, no Slack: the sweep alone (the notifier's rule is disabled). */
  atRest: AtRest;
  /** What the Slack notifier adds at rest where Slack is configured. */
  slackAtRest: AtRest;
  /** Measured the same way before the notifier's rule became conditional: both, always. */
  before?: { commit: string; atRest: Dollars };
  perPhase: { name: string; cost: Dollars; phase: Phase }[];
  /** Sweep cost per tick against live annexes (0, the lifecycle's, the scale run's) and the fitted slope. */
  sweepPoints: { live: number; perTick: number }[];
  sweepSlope: number;
  annexHours: AnnexHour[];
  load: { start: number; end: number };
  elapsedMs: number;
  logFile: string;
}

const phaseNamed = (run: CostRun, name: string): Phase => {
  const phase = run.phases.find((p) => p.name === name);
  if (phase === undefined) throw new Error(`cost run has no phase ${name}`);
  return phase;
};

/** Least-squares slope through the points. */
const slope = (points: { live: number; perTick: number }[]): number => {
  const n = points.length;
  const mx = points.reduce((s, q) => s + q.live, 0) / n;
  const my = points.reduce((s, q) => s + q.perTick, 0) / n;
  const sxy = points.reduce((s, q) => s + (q.live - mx) * (q.perTick - my), 0);
  const sxx = points.reduce((s, q) => s + (q.live - mx) ** 2, 0);
  return sxy / sxx;
};

export function priceRun(
  run: CostRun,
  p: PriceBook,
  keys: number,
): Omit<CostSection, 'load' | 'elapsedMs' | 'logFile'> {
  const rest = atRest(phaseNamed(run, 'at rest'), run.ticks, p, keys);
  const slackAtRest = atRest(phaseNamed(run, 'at rest, Slack notifier'), run.ticks, p, 0);
  const perPhase = run.phases.map((phase) => ({ name: phase.name, cost: phaseCost(phase, p), phase }));
  const costOf = (name: string) => phaseCost(phaseNamed(run, name), p);
  const sweepPoints = [
    { live: 0, perTick: rest.perTick.total + slackAtRest.perTick.total },
    { live: run.annexes, perTick: costOf(`sweep, ${run.annexes} live`).total / run.ticks },
    { live: run.scaleAnnexes, perTick: costOf(`sweep, ${run.scaleAnnexes} live`).total / run.ticks },
  ];
  const b = Math.max(0, slope(sweepPoints));
  const instances = run.annexes * run.instancesPerAnnex;
  // One annex, one hour: its share of each lifecycle step measured over `annexes` annexes.
  const lease = [
    add(ZERO, costOf('create'), 1 / run.annexes),
    add(ZERO, costOf('bootstrap'), run.instancesPerAnnex / instances),
    // 60 heartbeats per instance per hour, from `heartbeats` measured per instance.
    add(ZERO, costOf('heartbeat'), (60 * run.instancesPerAnnex) / (run.heartbeats * instances)),
    add(ZERO, costOf('expire'), 1 / run.annexes),
  ].reduce((s, d) => add(s, d), ZERO);
  const sweepDollars: Dollars = { ...ZERO, total: 60 * b };
  const sharedHour = add(ZERO, rest.monthly, 1 / HOURS_PER_MONTH);
  const annexHours = [1, 100, 10_000].map((live) => {
    const shared = add(ZERO, sharedHour, 1 / live);
    return {
      live,
      lease,
      sweep: sweepDollars,
      shared,
      total: lease.total + sweepDollars.total + shared.total,
      extrapolated: live > run.scaleAnnexes,
    };
  });
  return { run, prices: p, atRest: rest, slackAtRest, perPhase, sweepPoints, sweepSlope: b, annexHours };
}

export async function runCostSection(log: (line: string) => void, logFile: string): Promise<CostSection> {
  const started = Date.now();
  const loadStart = loadavg()[0] ?? Number.NaN;
  const out = join(repoRoot, '.bench', 'cost-run.json');
  const fd = openSync(logFile, 'w');
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(repoRoot, 'scripts', 'bench', 'cost-run.ts'), out],
        {
          cwd: repoRoot,
          stdio: ['ignore', fd, 'pipe'],
        },
      );
      child.stderr?.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') log(line);
      });
      child.once('error', reject);
      child.once('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`cost-run exited with ${code}`)),
      );
    });
  } finally {
    closeSync(fd);
  }
  const run = JSON.parse(readFileSync(out, 'utf8')) as CostRun;
  const prices = readPriceBook();
  const keys = customerKeys();
  const priced = priceRun(run, prices, keys);
  let before: CostSection['before'];
  try {
    const b = JSON.parse(readFileSync(beforeFile, 'utf8')) as {
      commit: string;
      ticks: number;
      phases: Phase[];
    };
    const [sweepOnly, notifier] = ['at rest', 'at rest, Slack notifier'].map((name) => {
      const phase = b.phases.find((x) => x.name === name);
      if (phase === undefined) throw new Error(`${beforeFile} has no phase ${name}`);
      return atRest(phase, b.ticks, prices, name === 'at rest' ? keys : 0).monthly;
    }) as [Dollars, Dollars];
    before = { commit: b.commit, atRest: add(sweepOnly, notifier) };
  } catch {
    before = undefined;
  }
  return {
    ...priced,
    ...(before === undefined ? {} : { before }),
    load: { start: loadStart, end: loadavg()[0] ?? Number.NaN },
    elapsedMs: Date.now() - started,
    logFile,
  };
}

// ---------------------------------------------------------------------------------------------
// BENCHMARKS.md

const code = (text: string): string => `\`${text}\``;
const rel = (path: string): string => relative(repoRoot, path);
const sec = (ms: number, digits = 2): string =>
  Number.isFinite(ms) ? `${(ms / 1000).toFixed(digits)} s` : 'n/a';

const usd = (x: number): string => {
  if (!Number.isFinite(x)) return 'n/a';
  if (x === 0) return '$0';
  if (Math.abs(x) >= 1) return `$${x.toFixed(2)}`;
  if (Math.abs(x) >= 0.01) return `$${x.toFixed(3)}`;
  return `$${x.toPrecision(2)}`;
};

const dollarCells = (d: Dollars): string =>
  [d.lambda, d.api, d.dynamo, d.scheduler, d.kms, d.logs, d.total].map(usd).join(' | ');

const fnRows = (functions: Record<string, FunctionUse>, ticks: number): string[] =>
  Object.entries(functions).map(
    ([key, f]) =>
      `| ${key} | ${f.memoryMb} MB | ${(f.invocations / ticks).toFixed(0)} | ${(f.billedMs / f.invocations).toFixed(0)} ms | ${(
        f.logBytes / f.invocations
      ).toFixed(0)} B |`,
  );

/** At rest (no annex) the control plane should cost about nothing: under $0.25 a month. */
export const AT_REST_TARGET_USD = 0.25;

export interface CostRendering {
  summary: string;
  /** The price book's line: file, region, date, and its note. */
  prices: string;
  /** DynamoDB storage price, named in the template's list of what is not counted. */
  storagePrice: string;
  section: string;
}

export function renderCostSection(outcome: Outcome<CostSection>): CostRendering {
  if (!outcome.ok) {
    const why = 'skipped' in outcome ? 'not run' : `failed: ${outcome.error.split('\n')[0] ?? ''}`;
    return {
      summary: `| Control plane at rest ≈ $0 a month (≤ $${AT_REST_TARGET_USD}), cost per annex-hour | ${why} | — |`,
      prices: why,
      storagePrice: 'priced per GB-month',
      section: '',
    };
  }
  const c = outcome.value;
  const r = c.run;
  const p = c.prices;
  const met = c.atRest.monthly.total <= AT_REST_TARGET_USD;
  const hour = (live: number) => c.annexHours.find((h) => h.live === live);
  // The heading and the method (## 7) are in the template; the price book's line and the storage price
  // it names are filled in from the results.
  const lines = [
    `Command: \`npm run bench -- --only=cost\` (part of \`npm run bench\`); took ${sec(c.elapsedMs, 0)}; 1-minute load average`,
    `${c.load.start.toFixed(2)} → ${c.load.end.toFixed(2)}. Handler logs: ${code(rel(c.logFile))}.`,
    '',
    '### At rest: no annex',
    '',
    `${r.ticks} ticks of the rate(1 minute) functions after two warm-up ticks; a month is ${TICKS_PER_MONTH.toLocaleString('en-US')} ticks.`,
    `KMS customer managed keys in serverless.yml: ${c.atRest.keysMonthly / p.items.kmsKeyMonth.usd} (the table and SSM use AWS managed keys: no monthly fee).`,
    '',
    '| function | memory | invocations per tick | billed per invocation | logs per invocation |',
    '|---|---:|---:|---:|---:|',
    ...fnRows({ ...c.atRest.functions, ...c.slackAtRest.functions }, r.ticks),
    '',
    '| per month | Lambda | API Gateway | DynamoDB | Scheduler | KMS | Logs | total |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...(c.before === undefined
      ? []
      : [
          `| before (commit ${c.before.commit}: the sweep and the Slack notifier, always both) | ${dollarCells(c.before.atRest)} |`,
        ]),
    `| ${c.before === undefined ? 'this commit' : 'after'}: the sweep alone, no Slack | ${dollarCells(c.atRest.monthly)} |`,
    `| with Slack configured, the notifier adds | ${dollarCells(c.slackAtRest.monthly)} |`,
    '',
    `Target: ≤ $${AT_REST_TARGET_USD} a month at rest: ${met ? 'met' : '**missed**'}.`,
    '',
    '### Per annex-hour',
    '',
    `An annex of ${r.instancesPerAnnex} instances leased for one hour: create, ${r.instancesPerAnnex} bootstraps, 60 heartbeats per instance (measured:`,
    `${r.heartbeats} per instance over ${r.annexes} annexes), the end through the expire function (which waits for the exact second: measured`,
    `${r.expireDurationsMs.length} invocations, mean ${sec(r.expireDurationsMs.reduce((s, x) => s + x, 0) / Math.max(1, r.expireDurationsMs.length), 1)}; ${r.expiredBySchedule}/${r.annexes} ended by it),`,
    'the sweep’s extra work per live annex (60 ticks), and the at-rest hour shared by the live annexes.',
    '',
    '| lifecycle step (measured) | n | Lambda | API Gateway | DynamoDB | Scheduler | KMS | Logs | total | RRU | WRU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...c.perPhase.map(
      ({ name, cost, phase }) =>
        `| ${name} | ${Object.values(phase.functions).reduce((s, f) => s + f.invocations, 0)} | ${dollarCells(cost)} | ${phase.dynamo.readUnits.toFixed(1)} | ${phase.dynamo.writeUnits.toFixed(1)} |`,
    ),
    '',
    `Sweep + notifier per tick against live annexes: ${c.sweepPoints
      .map((q) => `${q.live} live ${usd(q.perTick)}`)
      .join(', ')}; least-squares slope ${usd(c.sweepSlope)} per live annex per tick.`,
    '',
    '| live annexes | lease (once per annex-hour) | sweep share | at-rest share | per annex-hour |',
    '|---:|---:|---:|---:|---:|',
    ...c.annexHours.map(
      (h) =>
        `| ${h.live.toLocaleString('en-US')}${h.extrapolated ? ' (sweep slope extrapolated)' : ''} | ${usd(h.lease.total)} | ${usd(
          h.sweep.total,
        )} | ${usd(h.shared.total)} | **${usd(h.total)}** |`,
    ),
    '',
    `Measured up to ${r.scaleAnnexes} live annexes; the 10,000 row extends the sweep’s linear slope (section 5 measures one`,
    'sweep over 10,000 leases). The lease part is the same at any scale; the at-rest share shrinks with the number of annexes.',
    `At 10,000 live annexes the control plane costs ~${usd((hour(10_000)?.total ?? 0) * 10_000 * HOURS_PER_MONTH)} a month in total.`,
    '',
  ];
  const h1 = hour(1);
  const h10k = hour(10_000);
  return {
    prices: `Prices: ${code(rel(priceBookFile))}, ${p.region}, list prices as of ${p.asOf} (${p.currency}; free tiers not applied).\n${p.note}`,
    storagePrice: `$${p.items.dynamoStorageGbMonth.usd}/GB-month`,
    summary:
      `| Control plane at rest ≈ $0 a month (≤ $${AT_REST_TARGET_USD}, ${p.region} list prices of ${p.asOf}); per annex-hour | ` +
      `at rest ${usd(c.atRest.monthly.total)}/month${c.before === undefined ? '' : ` (before: ${usd(c.before.atRest.total)})`}; ` +
      `per annex-hour ${usd(h1?.total ?? Number.NaN)} at 1 live, ${usd(hour(100)?.total ?? Number.NaN)} at 100, ${usd(
        h10k?.total ?? Number.NaN,
      )} at 10,000 | ${met ? 'met' : '**missed**'} |`,
    section: lines.join('\n'),
  };
}
