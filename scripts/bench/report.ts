// Renders BENCHMARKS.md from the measurements. Every verdict is computed from the unrounded value;
// printed ratios get a third decimal when two would hide which side of the target they are on.
import { relative } from 'node:path';
import { repoRoot } from '../devstack/serverless-config.ts';
import type { BundleResult, BundleSection } from './bundles.ts';
import type { ColdSection } from './cold.ts';
import type { EnforcementSection } from './enforcement.ts';
import type { LatencySection } from './latency.ts';
import {
  enforcementSection,
  enforcementSummaryRows,
  sweepSection,
  sweepSummaryRows,
} from './report-enforcement.ts';
import type { SweepSection } from './sweep.ts';
import type { BenchResults } from './results.ts';
import { bytes, ms, ratio, verdict } from './stats.ts';

export const TARGETS = { bundle: 1.15, cold: 1.15, latency: 1.2 } as const;

/** Functions that neither launch nor terminate instances: they must not load the EC2 client. */
export const NO_EC2_FUNCTIONS = ['pools-put', 'pools-list', 'annex-list', 'annex-get'] as const;

export interface MachineNotes {
  command: string;
  date: string;
  node: string;
  platform: string;
  cpuModel: string;
  cores: number;
  memory: string;
  loadAtStart: string;
  loadAtEnd: string;
  versions: Record<string, string>;
  totalSeconds: number;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: string } | { ok: false; skipped: true };

const rel = (path: string): string => relative(repoRoot, path);
const shortPkg = (pkg: string): string => pkg.replace('@aws-sdk/', '');
const code = (text: string): string => `\`${text}\``;

function failedOrSkipped(outcome: Outcome<unknown>): string | undefined {
  if (outcome.ok) return undefined;
  if ('skipped' in outcome) return '_Not run in this invocation (`--only`)._\n';
  return `**This section failed**, so it has no numbers:\n\n\`\`\`\n${outcome.error}\n\`\`\`\n`;
}

// ---------------------------------------------------------------------------------------------
// Summary

function summary(
  bundles: Outcome<BundleSection>,
  cold: Outcome<ColdSection>,
  latency: Outcome<LatencySection>,
  enforcement: Outcome<EnforcementSection>,
  sweep: Outcome<SweepSection>,
  extraRows: readonly string[],
): string {
  const rows: string[] = [];
  const notMeasured = (outcome: Outcome<unknown>): string =>
    !outcome.ok && 'skipped' in outcome ? 'not run' : 'section failed';
  const list = (items: { name: string; value: string; met: boolean }[]): string =>
    items.map((i) => `${i.name} ${i.value}${i.met ? '' : ' ✗'}`).join(', ');

  if (bundles.ok) {
    const items = bundles.value.results.map((r) => ({
      name: r.fn.name,
      value: ratio(r.ratio, TARGETS.bundle),
      met: r.ratio <= TARGETS.bundle,
    }));
    const met = items.filter((i) => i.met).length;
    rows.push(
      `| Bundle bytes ≤ ${TARGETS.bundle}× the bare-clients baseline, every function | ${met}/${items.length} met: ${list(items)} | ${verdict(met === items.length)} |`,
    );
    const ro = bundles.value.results.filter((r) =>
      (NO_EC2_FUNCTIONS as readonly string[]).includes(r.fn.name),
    );
    const withEc2 = ro.filter((r) => r.includesEc2);
    const missing = NO_EC2_FUNCTIONS.filter((n) => !ro.some((r) => r.fn.name === n));
    rows.push(
      `| No EC2 client in ${NO_EC2_FUNCTIONS.join(', ')} | ${
        withEc2.length === 0
          ? 'none of them includes `@aws-sdk/client-ec2`'
          : `EC2 client in ${withEc2.map((r) => r.fn.name).join(', ')}`
      }${missing.length > 0 ? ` (not in serverless.yml: ${missing.join(', ')})` : ''} | ${verdict(withEc2.length === 0 && missing.length === 0)} |`,
    );
  } else {
    rows.push(
      `| Bundle bytes ≤ ${TARGETS.bundle}× the bare-clients baseline | ${notMeasured(bundles)} | — |`,
    );
    rows.push(`| No EC2 client in ${NO_EC2_FUNCTIONS.join(', ')} | ${notMeasured(bundles)} | — |`);
  }

  if (cold.ok) {
    const items = cold.value.results.map((r) => ({
      name: r.name,
      value: ratio(r.netRatio, TARGETS.cold),
      met: r.netRatio <= TARGETS.cold,
    }));
    const met = items.filter((i) => i.met).length;
    rows.push(
      `| Cold import (bundle − floor) / (baseline − floor) ≤ ${TARGETS.cold}×, medians, every function | ${met}/${items.length} met: ${list(items)} | ${verdict(met === items.length)} |`,
    );
  } else {
    rows.push(`| Cold import ≤ ${TARGETS.cold}× the baseline | ${notMeasured(cold)} | — |`);
  }

  if (latency.ok) {
    const items = latency.value.results.map((r) => ({
      name: r.op,
      value: `${ratio(r.ratioP50, TARGETS.latency)} (p95 ${ratio(r.ratioP95, TARGETS.latency)})`,
      met: r.ratioP50 <= TARGETS.latency,
    }));
    const met = items.filter((i) => i.met).length;
    rows.push(
      `| API p50 ≤ ${TARGETS.latency}× the same SDK calls made directly, every operation | ${met}/${items.length} met: ${list(items)} | ${verdict(met === items.length)} |`,
    );
  } else {
    rows.push(`| API p50 ≤ ${TARGETS.latency}× direct SDK calls | ${notMeasured(latency)} | — |`);
  }
  rows.push(...enforcementSummaryRows(enforcement), ...sweepSummaryRows(sweep));
  return [
    '## Summary',
    '',
    '| target | measured | result |',
    '|---|---|---|',
    ...rows,
    ...extraRows,
    '',
    '✗ marks the functions or operations that miss their target. Verdicts use the unrounded values.',
    'Sections 4 and 5 are absolute times on this machine (real time and emulators): see their notes.',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Section 1

const contributorCell = (r: BundleResult, index: number): string => {
  const c = r.nonSdk[index];
  if (c === undefined) return '';
  return `${code(c.name)} ${bytes(c.bytes)}`;
};

function bundleSection(outcome: Outcome<BundleSection>): string {
  // The heading and the method (## 1) are in the template.
  const failed = failedOrSkipped(outcome);
  if (failed !== undefined) return failed;
  if (!outcome.ok) return '';
  const { options, ignoredKeys, results } = outcome.value;
  const lines = [
    `esbuild options used: ${code(JSON.stringify(options))}` +
      (ignoredKeys.length > 0
        ? ` (serverless-esbuild settings not passed to esbuild: ${ignoredKeys.join(', ')})`
        : '') +
      '.',
    '',
    `| function | bundle | baseline | ratio | ≤ ${TARGETS.bundle}× | SDK clients in the bundle | SDK part (bundle / baseline) | non-SDK part |`,
    '|---|---:|---:|---:|---|---|---:|---:|',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.fn.name} (${code(r.fn.key)}) | ${bytes(r.bytes)} | ${bytes(r.baselineBytes)} | ${ratio(r.ratio, TARGETS.bundle)} | ${verdict(
        r.ratio <= TARGETS.bundle,
      )} | ${r.clients.map((c) => shortPkg(c.pkg)).join(', ')} | ${bytes(r.sdkBytes)} / ${bytes(r.baselineSdkBytes)} | ${bytes(
        r.nonSdkBytes,
      )} |`,
    );
  }
  lines.push(
    '',
    '“SDK part” counts the `@aws-sdk`, `@smithy`, `@aws-crypto` and `@aws` scopes plus any package the',
    'baseline also contains (tslib, fast-xml-parser, …); “non-SDK part” is everything else: our sources,',
    'zod, middy. Exact byte counts: ' +
      results.map((r) => `${r.fn.name} ${r.bytes} / ${r.baselineBytes}`).join(', ') +
      '.',
    '',
    'What the bytes over the baseline are made of (largest non-SDK contributor, its share of the excess):',
    results
      .map((r) => {
        const top = r.nonSdk[0];
        const excess = r.bytes - r.baselineBytes;
        return top === undefined || excess <= 0
          ? `${r.fn.name}: no excess`
          : `${r.fn.name}: ${code(top.name)} ${((100 * top.bytes) / excess).toFixed(0)}% of ${bytes(excess)}`;
      })
      .join('; ') + '.',
    '',
    '### EC2 client in functions that do not launch or terminate instances',
    '',
    '| function | includes `@aws-sdk/client-ec2` | result |',
    '|---|---|---|',
  );
  for (const name of NO_EC2_FUNCTIONS) {
    const r = results.find((x) => x.fn.name === name);
    if (r === undefined) lines.push(`| ${name} | not in serverless.yml | — |`);
    else lines.push(`| ${name} | ${r.includesEc2 ? '**yes**' : 'no'} | ${verdict(!r.includesEc2)} |`);
  }
  lines.push(
    '',
    '### Top 5 non-SDK contributors per function',
    '',
    'Bytes each package (or project source file) contributes to the minified bundle, from the metafile.',
    '',
    '| function | 1 | 2 | 3 | 4 | 5 |',
    '|---|---|---|---|---|---|',
  );
  for (const r of results) {
    lines.push(`| ${r.fn.name} | ${[0, 1, 2, 3, 4].map((i) => contributorCell(r, i)).join(' | ')} |`);
  }
  // Inside the packages that appear in any top 5 and weigh at least 10 KB somewhere.
  const heavy = new Map<string, BundleResult['nonSdk'][number]>();
  for (const r of results) {
    for (const c of r.nonSdk.slice(0, 5)) {
      if (c.parts.length === 0 || c.bytes < 10 * 1024) continue;
      const seen = heavy.get(c.name);
      if (seen === undefined || seen.bytes < c.bytes) heavy.set(c.name, c);
    }
  }
  if (heavy.size > 0) {
    lines.push('', '### Inside the heaviest non-SDK packages', '');
    lines.push('| package | total | largest parts (files) |', '|---|---:|---|');
    for (const c of heavy.values()) {
      const parts = c.parts
        .slice(0, 5)
        .map((p) => `${code(p.name)} ${bytes(p.bytes)} (${p.files})`)
        .join(', ');
      lines.push(`| ${code(c.name)} | ${bytes(c.bytes)} | ${parts} |`);
    }
  }
  lines.push('', '<details><summary>What each baseline imports (from our sources)</summary>', '');
  for (const r of results) {
    const imports = Object.entries(r.sdkImports)
      .map(([pkg, names]) => `${code(pkg)}: ${names.join(', ')}`)
      .join('; ');
    lines.push(`- **${r.fn.name}**: ${imports === '' ? '(no SDK client imports)' : imports}`);
  }
  lines.push(
    '',
    `Bundles: ${code(rel(results[0]?.file.replace(/[^/]+$/, '') ?? ''))} (${code('<fn>.mjs')}, ${code('<fn>.baseline.mjs')}, and the generated ${code('<fn>.baseline.entry.mjs')}).`,
    '',
    '</details>',
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Section 2

function coldSection(outcome: Outcome<ColdSection>): string {
  // The heading and the method (## 2) are in the template.
  const failed = failedOrSkipped(outcome);
  if (failed !== undefined) return failed;
  if (!outcome.ok) return '';
  const c = outcome.value;
  const lines = [
    `Rounds: ${c.roundsWanted} wanted per function, ${c.warmups} warm-up rounds each; time budget ${(c.budgetMs / 1000).toFixed(0)} s, ` +
      `took ${(c.elapsedMs / 1000).toFixed(0)} s${c.truncated ? ' — **the budget cut some functions short; see n**' : ''}. ` +
      `Floor over all rounds: median ${ms(c.floor.median)}, p90 ${ms(c.floor.p90)}.`,
    '',
    `| function | n | bundle median | bundle p90 | baseline median | baseline p90 | floor median | floor p90 | raw ratio | paired ratio | net ratio | ≤ ${TARGETS.cold}× |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  const spread = Math.max(...c.results.map((r) => Math.abs(r.pairedNetRatio - r.netRatio)));
  for (const r of c.results) {
    lines.push(
      `| ${r.name} | ${r.rounds} | ${ms(r.bundle.median)} | ${ms(r.bundle.p90)} | ${ms(r.baseline.median)} | ${ms(
        r.baseline.p90,
      )} | ${ms(r.floor.median)} | ${ms(r.floor.p90)} | ${ratio(r.rawRatio, TARGETS.cold)} | ${ratio(
        r.pairedNetRatio,
        TARGETS.cold,
      )} | ${ratio(r.netRatio, TARGETS.cold)} | ${verdict(r.netRatio <= TARGETS.cold)} |`,
    );
  }
  if (Number.isFinite(spread)) {
    lines.push(
      '',
      `The two estimates of the same net ratio (paired vs medians) differ by up to ${spread.toFixed(2)}× in this run:`,
      'a verdict closer to the target than that is within the noise of this machine.',
    );
  }
  lines.push('');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Section 3

function latencySection(outcome: Outcome<LatencySection>): string {
  // The heading and the method (## 3) are in the template.
  const failed = failedOrSkipped(outcome);
  if (failed !== undefined) return failed;
  if (!outcome.ok) return '';
  const l = outcome.value;
  const lines = [
    `Rounds: ${l.rounds} measured (${l.roundsWanted} wanted, time budget ${(l.budgetMs / 1000).toFixed(0)} s${
      l.rounds < l.roundsWanted ? ' — **budget reached first**' : ''
    }) after ${l.warmupRounds} warm-up rounds; measured rounds took ${(l.elapsedMs / 1000).toFixed(0)} s.`,
    '',
    `| operation | HTTP p50 | HTTP p95 | direct p50 | direct p95 | p50 overhead | ratio p50 | ratio p95 | p50 ≤ ${TARGETS.latency}× |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of l.results) {
    lines.push(
      `| ${r.label} | ${ms(r.http.p50)} | ${ms(r.http.p95)} | ${ms(r.direct.p50)} | ${ms(r.direct.p95)} | ${ms(
        r.http.p50 - r.direct.p50,
      )} | ${ratio(r.ratioP50, TARGETS.latency)} | ${ratio(r.ratioP95, TARGETS.latency)} | ${verdict(
        r.ratioP50 <= TARGETS.latency,
      )} |`,
    );
  }
  lines.push(
    '',
    '### Where the HTTP path’s extra time goes (diagnostic)',
    '',
    'Medians of the per-round differences between paths of the same round.',
    '',
    '| operation | in-process handler p50 | in-process handler p95 | HTTP + SigV4 (HTTP − handler) | middy + zod + views + JSON (handler − direct) |',
    '|---|---:|---:|---:|---:|',
  );
  for (const r of l.results) {
    lines.push(
      `| ${r.label} | ${ms(r.handler.p50)} | ${ms(r.handler.p95)} | ${ms(r.httpLayerMs)} | ${ms(r.handlerLayerMs)} |`,
    );
  }
  lines.push(
    '',
    `Edge alone — \`POST /v1/annexes\` with body \`{}\` (signing, HTTP, SigV4 verification, middy, zod, 400; no`,
    `AWS call), once per round: p50 ${ms(l.edge.p50)}, p95 ${ms(l.edge.p95)}.`,
    '',
    `Results seen (path, operation → annex state, count): ${Object.entries(l.states)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}: ${v}`)
      .join('; ')}.`,
    '',
    `Log lines written during the section (${l.handlerLogLines}: the handlers’ JSON logs from every path and the gateway’s`,
    `access log) went to ${code(rel(l.handlerLogFile))} instead of stdout, written synchronously as stdout to a file would be.`,
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

/** The report's values and computed sections, by the names BENCHMARKS.template.md gives them. */
export function reportFragments(
  results: Omit<BenchResults, 'cli' | 'cost'>,
  extraSummaryRows: readonly string[],
): Record<string, string> {
  const { notes, bundles, cold, latency, enforcement, sweep } = results;
  return {
    command: notes.command,
    date: notes.date,
    totalSeconds: notes.totalSeconds.toFixed(0),
    node: notes.node,
    platform: notes.platform,
    cpuModel: notes.cpuModel,
    cores: String(notes.cores),
    memory: notes.memory,
    loadAtStart: notes.loadAtStart,
    loadAtEnd: notes.loadAtEnd,
    versions: Object.entries(notes.versions)
      .map(([name, version]) => `${name} ${version}`)
      .join(', '),
    summary: summary(bundles, cold, latency, enforcement, sweep, extraSummaryRows),
    bundles: bundleSection(bundles),
    cold: coldSection(cold),
    latency: latencySection(latency),
    enforcement: enforcementSection(enforcement, notes.command),
    sweep: sweepSection(sweep, notes.command, notes.cores),
  };
}
