// The benchmark's measurements as data: `npm run bench` writes them to scripts/bench/results.json
// (committed with BENCHMARKS.md), and BENCHMARKS.md is rendered from that file alone
// (scripts/bench/render.ts), so a report can be re-rendered, or its template changed, without
// measuring again.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { HelpStartup } from '../../cli/bench/help-startup.ts';
import { repoRoot } from '../devstack/serverless-config.ts';
import type { BundleSection } from './bundles.ts';
import type { ColdSection } from './cold.ts';
import type { CostSection } from './cost.ts';
import type { EnforcementSection } from './enforcement.ts';
import type { LatencySection } from './latency.ts';
import type { MachineNotes, Outcome } from './report.ts';
import type { SweepSection } from './sweep.ts';

export interface BenchResults {
  notes: MachineNotes;
  bundles: Outcome<BundleSection>;
  cold: Outcome<ColdSection>;
  latency: Outcome<LatencySection>;
  enforcement: Outcome<EnforcementSection>;
  sweep: Outcome<SweepSection>;
  cli: Outcome<HelpStartup>;
  cost: Outcome<CostSection>;
}

export const resultsFile = join(repoRoot, 'scripts', 'bench', 'results.json');

/** Paths inside the repository are stored as `<repo>/…`, so the file is the same on every clone. */
const REPO = '<repo>/';

export function writeResults(results: BenchResults, file: string = resultsFile): void {
  mkdirSync(dirname(file), { recursive: true });
  const portable = (_key: string, value: unknown): unknown =>
    typeof value === 'string' && value.startsWith(`${repoRoot}/`)
      ? REPO + value.slice(repoRoot.length + 1)
      : value;
  writeFileSync(file, `${JSON.stringify(results, portable, 2)}\n`);
}

export const readResults = (file: string = resultsFile): BenchResults =>
  JSON.parse(readFileSync(file, 'utf8'), (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(REPO) ? join(repoRoot, value.slice(REPO.length)) : value,
  ) as BenchResults;
