// How fast `annex --help` starts, side by side with `node -e ''` (the floor: Node itself). Runs the
// two interleaved, N times each, and reports median and p90 wall time of the whole process, spawn
// to exit. `npm run bench -w @annex/cli` prints it; scripts/bench.ts can import measureHelpStartup.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildCli, cliBinary, cliCommand } from '../scripts/build.ts';

export interface Timing {
  runs: number;
  medianMs: number;
  p90Ms: number;
  minMs: number;
  maxMs: number;
}

export interface HelpStartup {
  /** `node <cli>/bin/annex.js --help`: the command npm links as `annex`. */
  annexHelp: Timing;
  /** `node -e ''`. */
  nodeBaseline: Timing;
  /** What annex adds to Node's own start-up, median and p90 of the paired differences. */
  overheadMedianMs: number;
  overheadP90Ms: number;
  /** The budget for `annex --help` wall time. */
  budgetMs: number;
  withinBudget: boolean;
}

const quantile = (sorted: number[], q: number): number => {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
};

const timing = (samples: number[]): Timing => {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    runs: samples.length,
    medianMs: round(quantile(sorted, 0.5)),
    p90Ms: round(quantile(sorted, 0.9)),
    minMs: round(sorted[0] ?? Number.NaN),
    maxMs: round(sorted.at(-1) ?? Number.NaN),
  };
};

/** Wall time of one process, spawn to exit, with its output discarded. */
const timeProcess = (args: string[]): Promise<number> =>
  new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => {
      const elapsed = performance.now() - started;
      if (code === 0) resolve(elapsed);
      else reject(new Error(`node ${args.join(' ')} exited ${code}`));
    });
  });

export async function measureHelpStartup(
  options: { runs?: number; budgetMs?: number; build?: boolean } = {},
): Promise<HelpStartup> {
  const runs = options.runs ?? 20;
  const budgetMs = options.budgetMs ?? 150;
  if (options.build === true || !existsSync(cliBinary)) await buildCli();
  // One warm-up of each, so the first sample does not pay for a cold file cache.
  await timeProcess([cliCommand, '--help']);
  await timeProcess(['-e', '']);
  const annex: number[] = [];
  const node: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved, and alternating which goes first, so load on the machine hits both alike.
    if (i % 2 === 0) {
      annex.push(await timeProcess([cliCommand, '--help']));
      node.push(await timeProcess(['-e', '']));
    } else {
      node.push(await timeProcess(['-e', '']));
      annex.push(await timeProcess([cliCommand, '--help']));
    }
  }
  const overhead = timing(annex.map((a, i) => a - (node[i] ?? 0)));
  const annexHelp = timing(annex);
  return {
    annexHelp,
    nodeBaseline: timing(node),
    overheadMedianMs: overhead.medianMs,
    overheadP90Ms: overhead.p90Ms,
    budgetMs,
    withinBudget: annexHelp.medianMs <= budgetMs,
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const runs = Number(process.env.ANNEX_BENCH_RUNS ?? 20);
  const result = await measureHelpStartup({ runs });
  const row = (name: string, t: Timing) =>
    `${name.padEnd(16)}${String(t.medianMs).padStart(8)}${String(t.p90Ms).padStart(8)}${String(t.minMs).padStart(8)}${String(t.maxMs).padStart(8)}`;
  console.log(`annex --help start-up, ${runs} interleaved runs each (ms)`);
  console.log(
    `${''.padEnd(16)}${'median'.padStart(8)}${'p90'.padStart(8)}${'min'.padStart(8)}${'max'.padStart(8)}`,
  );
  console.log(row('annex --help', result.annexHelp));
  console.log(row("node -e ''", result.nodeBaseline));
  console.log(
    `annex adds ${result.overheadMedianMs} ms (median), ${result.overheadP90Ms} ms (p90) to Node's own start-up`,
  );
  console.log(
    `budget ${result.budgetMs} ms for annex --help (median): ${result.withinBudget ? 'met' : 'NOT met'}`,
  );
  if (!result.withinBudget) process.exitCode = 1;
}
