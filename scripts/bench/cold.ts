// Section 2: cold import time. Each sample is one fresh Node process that imports one bundle and
// exits; the wall time of the whole process (spawn to exit) is measured around spawnSync. Each
// round runs the function's bundle, its baseline and an empty process (the floor) in a rotating
// order, so slow phases of a shared machine hit all three alike; rounds go round-robin over the
// functions for the same reason.
import { spawnSync } from 'node:child_process';
import { median, percentile } from './stats.ts';

export interface ColdTarget {
  name: string;
  bundle: string;
  baseline: string;
}

export interface Samples {
  samples: number[];
  median: number;
  p90: number;
}

export interface ColdResult {
  name: string;
  rounds: number;
  bundle: Samples;
  baseline: Samples;
  floor: Samples;
  /** median(bundle) / median(baseline). */
  rawRatio: number;
  /** (median(bundle) − median(floor)) / (median(baseline) − median(floor)). */
  netRatio: number;
  /** Informational: the median over rounds of (bundle − floor) / (baseline − floor) within a round. */
  pairedNetRatio: number;
}

export interface ColdSection {
  roundsWanted: number;
  warmups: number;
  budgetMs: number;
  elapsedMs: number;
  /** True when the time budget stopped the rounds before `roundsWanted`. */
  truncated: boolean;
  floor: Samples;
  results: ColdResult[];
}

/** A clean environment: no AWS profile, no tsx loader, no ANNEX_* settings. */
const childEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {
    AWS_REGION: 'us-east-1',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  for (const name of ['PATH', 'HOME', 'LANG', 'TMPDIR']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
};

const importArgs = (file: string): string[] => [
  '--input-type=module',
  '-e',
  `await import(${JSON.stringify(file)})`,
];

function timeProcess(args: readonly string[], env: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  const child = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  if (child.status !== 0) {
    throw new Error(
      `node ${args.join(' ')} failed (${child.status ?? child.signal}): ${child.stderr.toString()}`,
    );
  }
  return elapsed;
}

/** Before timing anything: the bundle loads in a clean process and exports the handler. */
function checkLoads(file: string, env: NodeJS.ProcessEnv, wantHandler: boolean): void {
  const check = wantHandler
    ? `const m = await import(${JSON.stringify(file)}); if (typeof m.handler !== 'function') { console.error('no handler export'); process.exit(3); }`
    : `await import(${JSON.stringify(file)});`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', check], { env, stdio: 'pipe' });
  if (child.status !== 0) throw new Error(`${file} does not load: ${child.stderr.toString()}`);
}

const summarize = (samples: number[]): Samples => ({
  samples,
  median: median(samples),
  p90: percentile(samples, 90),
});

export function runColdSection(
  targets: readonly ColdTarget[],
  log: (line: string) => void,
  { rounds = 15, warmups = 2, budgetMs = 170_000, minRounds = 5 } = {},
): ColdSection {
  const env = childEnv();
  for (const t of targets) {
    checkLoads(t.bundle, env, true);
    checkLoads(t.baseline, env, false);
  }
  const floorArgs = ['-e', ''];
  const plans = targets.map((t) => ({
    target: t,
    kinds: [
      { kind: 'bundle', args: importArgs(t.bundle) },
      { kind: 'baseline', args: importArgs(t.baseline) },
      { kind: 'floor', args: floorArgs },
    ] as const,
    samples: { bundle: [] as number[], baseline: [] as number[], floor: [] as number[] },
  }));
  const started = Date.now();
  for (let w = 0; w < warmups; w++) {
    for (const plan of plans) for (const k of plan.kinds) timeProcess(k.args, env);
  }
  log(`cold: ${warmups} warm-up round(s) done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  // Round-robin over the functions, so a slow phase of the machine hits every function alike.
  let truncated = false;
  for (let r = 0; r < rounds; r++) {
    if (r >= minRounds && Date.now() - started > budgetMs) {
      truncated = true;
      log(`cold: time budget reached after ${r} rounds`);
      break;
    }
    for (const plan of plans) {
      // Rotate which of the three runs first, so none always follows another.
      for (let i = 0; i < plan.kinds.length; i++) {
        const k = plan.kinds[(r + i) % plan.kinds.length];
        if (k !== undefined) plan.samples[k.kind].push(timeProcess(k.args, env));
      }
    }
    if ((r + 1) % 5 === 0)
      log(`cold: ${r + 1}/${rounds} rounds, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  const results: ColdResult[] = [];
  const allFloor: number[] = [];
  for (const { target, samples } of plans) {
    allFloor.push(...samples.floor);
    const result: ColdResult = {
      name: target.name,
      rounds: samples.bundle.length,
      bundle: summarize(samples.bundle),
      baseline: summarize(samples.baseline),
      floor: summarize(samples.floor),
      rawRatio: 0,
      netRatio: 0,
      pairedNetRatio: median(
        samples.bundle.map(
          (b, i) =>
            (b - (samples.floor[i] ?? NaN)) / ((samples.baseline[i] ?? NaN) - (samples.floor[i] ?? NaN)),
        ),
      ),
    };
    result.rawRatio = result.bundle.median / result.baseline.median;
    result.netRatio =
      (result.bundle.median - result.floor.median) / (result.baseline.median - result.floor.median);
    results.push(result);
    log(
      `cold ${target.name}: bundle ${result.bundle.median.toFixed(1)} ms, baseline ${result.baseline.median.toFixed(1)} ms, ` +
        `floor ${result.floor.median.toFixed(1)} ms (n=${result.rounds}); net ratio ${result.netRatio.toFixed(2)}×`,
    );
  }
  return {
    roundsWanted: rounds,
    warmups,
    budgetMs,
    elapsedMs: Date.now() - started,
    truncated,
    floor: summarize(allFloor),
    results,
  };
}
