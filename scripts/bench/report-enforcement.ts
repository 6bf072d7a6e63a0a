// BENCHMARKS.md sections 4 (enforcement latency) and 5 (sweep cost), and their summary rows.
// Verdicts are computed from unrounded values.
import { relative } from 'node:path';
import { LIVE_SHARDS } from '../../shared/aws/keys.ts';
import { repoRoot } from '../devstack/serverless-config.ts';
import type { Dist, EnforcementSection } from './enforcement.ts';
import type { SweepRun, SweepSection, VariantResult } from './sweep.ts';
import { verdict } from './stats.ts';

export const ENFORCEMENT_TARGETS = {
  /** Schedule path, expiry → TerminateInstances, p99. */
  scheduleP99Ms: 5_000,
  /** Sweep-only path, p99. */
  sweepP99Ms: 65_000,
  /** One sweep over 10,000 live leases / 20,000 instances. */
  sweepWallMs: 10_000,
  sweepLeases: 10_000,
} as const;

/** condor_annex's lease check period, the anchor for the sweep-only path. */
const CONDOR_ANNEX_PERIOD_S = 300;

/** The reaper's memory in serverless.yml and the size at which Lambda gives one full vCPU. */
const ONE_VCPU_MB = 1769;

type Outcome<T> = { ok: true; value: T } | { ok: false; error: string } | { ok: false; skipped: true };

const code = (text: string): string => `\`${text}\``;
const rel = (path: string): string => relative(repoRoot, path);
const sec = (ms: number, digits = 2): string =>
  Number.isFinite(ms) ? `${(ms / 1000).toFixed(digits)} s` : 'n/a';
const msText = (ms: number): string => (Number.isFinite(ms) ? `${ms.toFixed(0)} ms` : 'n/a');
const int = (n: number): string => n.toLocaleString('en-US');
const distCells = (d: Dist, digits = 2): string =>
  `${d.n} | ${sec(d.p50, digits)} | ${sec(d.p99, digits)} | ${sec(d.max, digits)}`;
const pct = (part: number, whole: number): string => `${((100 * part) / whole).toFixed(0)}%`;

function failedOrSkipped(outcome: Outcome<unknown>): string | undefined {
  if (outcome.ok) return undefined;
  if ('skipped' in outcome) return '_Not run in this invocation (`--only`)._\n';
  return `**This section failed**, so it has no numbers:\n\n\`\`\`\n${outcome.error}\n\`\`\`\n`;
}

const notMeasured = (outcome: Outcome<unknown>): string =>
  !outcome.ok && 'skipped' in outcome ? 'not run' : 'section failed';

// ---------------------------------------------------------------------------------------------
// Summary rows

export function enforcementSummaryRows(outcome: Outcome<EnforcementSection>): string[] {
  const t = ENFORCEMENT_TARGETS;
  if (!outcome.ok) {
    return [
      `| Enforcement, schedule path: expiry → TerminateInstances p99 ≤ ${t.scheduleP99Ms / 1000} s | ${notMeasured(outcome)} | — |`,
      `| Enforcement, sweep-only path: p99 ≤ ${t.sweepP99Ms / 1000} s | ${notMeasured(outcome)} | — |`,
    ];
  }
  const e = outcome.value;
  const sch = e.schedule;
  const sw = e.sweep;
  const schMet = sch.terminated === sch.annexes && sch.latency.p99 <= t.scheduleP99Ms;
  const swMet = sw.terminated === sw.annexes && sw.latency.p99 <= t.sweepP99Ms;
  return [
    `| Enforcement, schedule path: expiry → TerminateInstances p99 ≤ ${t.scheduleP99Ms / 1000} s, with the Scheduler’s documented one-minute precision modeled (each schedule fires at a seeded random point of its minute; dev runner polling moto every ${e.pollMs / 1000} s) | ` +
      `p50 ${sec(sch.latency.p50)}, p99 ${sec(sch.latency.p99)}, max ${sec(sch.latency.max)} (${sch.terminated}/${sch.annexes} annexes; ` +
      `the schedule fired ${sec(sch.wait.p50, 1)} early at p50, and expire waited for the second). Anchor: condor_annex’s ${CONDOR_ANNEX_PERIOD_S}-s check, p50 ~${CONDOR_ANNEX_PERIOD_S / 2} s | ${verdict(schMet)} |`,
    `| Enforcement, sweep-only path (rate(1 minute), no schedule fired): p99 ≤ ${t.sweepP99Ms / 1000} s | ` +
      `p50 ${sec(sw.latency.p50, 1)}, p99 ${sec(sw.latency.p99, 1)}, max ${sec(sw.latency.max, 1)} (${sw.terminated}/${sw.annexes}; ` +
      `${sw.endToEnd} measured end to end, ${sw.catchUp} with the wait for the next tick computed). ` +
      `Anchor: condor_annex, lease check every ${CONDOR_ANNEX_PERIOD_S} s → p50 ~${CONDOR_ANNEX_PERIOD_S / 2} s, max ~${CONDOR_ANNEX_PERIOD_S} s + the check | ${verdict(swMet)} |`,
  ];
}

const steadyRuns = (v: VariantResult): SweepRun[] =>
  v.runs.filter((r) => r.expired === 0 && !/diagnostic/.test(r.label));

/** Reads are O(live): no Scan, and no more items than each live lease and instance read twice. */
const readsBounded = (r: SweepRun, instances: number): boolean =>
  r.dynamo.scans === 0 && r.dynamo.itemsRead <= 2 * (r.leases + instances);

export function sweepSummaryRows(outcome: Outcome<SweepSection>): string[] {
  const t = ENFORCEMENT_TARGETS;
  if (!outcome.ok) {
    return [
      `| One sweep over ${int(t.sweepLeases)} live leases / ${int(2 * t.sweepLeases)} instances ≤ ${t.sweepWallMs / 1000} s | ${notMeasured(outcome)} | — |`,
      `| Sweep reads O(live), no Scan | ${notMeasured(outcome)} | — |`,
    ];
  }
  const rows: string[] = [];
  const s = outcome.value;
  const mem = s.variants.find((v) => v.variant === 'memory');
  const moto = s.variants.find((v) => v.variant === 'moto');
  if (mem === undefined) {
    rows.push(
      `| One sweep over ${int(t.sweepLeases)} live leases ≤ ${t.sweepWallMs / 1000} s | variant failed | — |`,
    );
  } else {
    const steady = steadyRuns(mem);
    const expired = mem.runs.find((r) => r.expired > 0);
    const worst = Math.max(...steady.map((r) => r.wallMs));
    const met = mem.leases >= t.sweepLeases && worst <= t.sweepWallMs && steady.every((r) => r.errors === 0);
    rows.push(
      `| One sweep over ${int(t.sweepLeases)} live leases / ${int(2 * t.sweepLeases)} instances ≤ ${t.sweepWallMs / 1000} s ` +
        `(DynamoDB Local real; EC2, SSM, Scheduler answered from memory) | steady state ${steady
          .map((r) => sec(r.wallMs, 1))
          .join(
            ', ',
          )} (${int(mem.leases)} leases, concurrency ${steady[0]?.concurrency ?? '?'}, Node CPU ${steady
          .map((r) => sec(r.cpuMs, 1))
          .join(', ')})` +
        (expired === undefined ? '' : `; 1% expired ${sec(expired.wallMs, 1)}`) +
        ` | ${verdict(met)} |`,
    );
    const r = steady[0];
    if (r !== undefined) {
      const b = r.dynamo.byCommand;
      rows.push(
        `| Sweep reads O(live), no Scan | ${int(r.dynamo.itemsRead)} items read for ${int(r.liveAnnexes)} leases + ${int(
          r.taggedInstances,
        )} instances (Query ${int(b.QueryCommand?.items ?? 0)}, GetItem ${int(b.GetItemCommand?.items ?? 0)}) in ${int(
          r.dynamo.requests,
        )} requests; Scan ${r.dynamo.scans} | ${verdict(readsBounded(r, mem.instances))} |`,
      );
    }
  }
  if (moto !== undefined) {
    const r = steadyRuns(moto)[0];
    if (r !== undefined) {
      rows.push(
        `| (scaled down, all in moto; informational) one sweep over ${int(moto.leases)} leases / ${int(
          moto.instances,
        )} instances | ${sec(r.wallMs, 1)}, of which moto’s DescribeInstances ${sec(
          phaseOf(r, 'EC2 listing')?.wallMs ?? Number.NaN,
          1,
        )} (O(N²) in moto) | — (not the target size) |`,
      );
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Section 4

export function enforcementSection(outcome: Outcome<EnforcementSection>, command: string): string {
  const t = ENFORCEMENT_TARGETS;
  // The heading and the method (## 4) are in the template.
  const failed = failedOrSkipped(outcome);
  if (failed !== undefined) return failed;
  if (!outcome.ok) return '';
  const e = outcome.value;
  const sch = e.schedule;
  const sw = e.sweep;
  const lines = [
    `Command: ${command}; this section alone: \`npm run bench -- --only=enforcement\`. 1-minute load average ${e.load.start.toFixed(
      2,
    )} at its start, ${e.load.end.toFixed(2)} at its end (2 cores).`,
    `Scheduler precision model: ${e.precisionMs / 1000} s, seed ${e.seed}.`,
    `${e.annexesPerPath} annexes per path, ${e.instancesPerAnnex} × m5.large each,`,
    `\`durationSeconds: ${e.durationSeconds}\`, created alternately one every ${sec((e.spreadSeconds * 1000) / (2 * e.annexesPerPath))}`,
    `(plus a random sub-second offset), so expiries spread over ${sec(e.expirySpanMs, 1)}. Schedule poll every ${e.pollMs} ms;`,
    `sweep every ${e.sweepEveryMs / 1000} s, first tick ${sec(e.phaseMs, 1)} after the first create; sweep concurrency ${sw.sweepConcurrency}`,
    `(\`sweepSettings()\`). The section took ${sec(e.elapsedMs, 0)}. With n = ${e.annexesPerPath}, the nearest-rank p99 is the maximum.`,
    '',
    '| path | n | p50 | p99 | max | target | result |',
    '|---|---:|---:|---:|---:|---|---|',
    `| schedule (at() a minute early, fired within its minute as modeled, expire waits for the second; poll ${e.pollMs / 1000} s) | ${distCells(sch.latency)} | p99 ≤ ${t.scheduleP99Ms / 1000} s | ${verdict(
      sch.terminated === sch.annexes && sch.latency.p99 <= t.scheduleP99Ms,
    )} |`,
    `| sweep-only (rate(1 minute)) | ${distCells(sw.latency, 1)} | p99 ≤ ${t.sweepP99Ms / 1000} s | ${verdict(
      sw.terminated === sw.annexes && sw.latency.p99 <= t.sweepP99Ms,
    )} |`,
    `| ↳ of which measured end to end (on-cadence ticks) | ${distCells(sw.endToEndLatency, 1)} | | |`,
    `| anchor: condor_annex, lease check every ${CONDOR_ANNEX_PERIOD_S} s (derived, not measured) | — | ~${CONDOR_ANNEX_PERIOD_S / 2} s | ~${
      CONDOR_ANNEX_PERIOD_S * 0.99
    } s | ${CONDOR_ANNEX_PERIOD_S} s + the check | | |`,
    '',
    `Every annex ended: schedule path ${sch.terminated}/${sch.annexes}, sweep-only ${sw.terminated}/${sw.annexes}` +
      `${sch.terminated < sch.annexes || sw.terminated < sw.annexes ? ' — **some were not ended within the section**' : ''}.`,
    `Creating an annex took p50 ${msText(e.createMs.p50)}, max ${msText(e.createMs.max)}.`,
    '',
    '### Schedule path, decomposed',
    '',
    '| part | how | n | p50 | p99 | max |',
    '|---|---|---:|---:|---:|---:|',
    `| the minute \`at()\` names → expiry (how early the schedule is) | arithmetic: latest minute that ends by the expiry | ${distCells(
      sch.early,
    )} |`,
    `| that minute → the point the Scheduler fires at | modeled: uniform in [0, ${e.precisionMs / 1000} s), seeded | ${distCells(sch.inMinute)} |`,
    `| that point → expire target invoked | measured: poll wait + ListSchedules + GetSchedule of each pending schedule | ${distCells(
      sch.detection,
    )} |`,
    `| target invoked → expiry | measured: the handler’s wait for the exact second | ${distCells(sch.wait)} |`,
    `| expiry → TerminateInstances sent (the latency) | measured: re-read (GetItem), TERMINATING transaction, instance Query ∥ DescribeInstances | ${distCells(
      sch.latency,
    )} |`,
    `| TerminateInstances round trip (not in the latency) | measured | ${distCells(sch.terminateCall)} |`,
    '',
    `Targets invoked after their expiry: ${sch.firedLate} of ${sch.terminated}. The dev runner invokes due schedules`,
    `concurrently, as EventBridge Scheduler and Lambda do, so one waiting expire does not hold up another.`,
    '',
    `**On AWS.** The EventBridge Scheduler user guide (“Schedule types on EventBridge Scheduler”,`,
    `https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html) says all schedule types “invoke`,
    `their targets with 60 second precision”: a schedule set for 1:00 invokes its target between 1:00:00 and`,
    `1:00:59 (flexible time window OFF, as here). That is what the runner models, so the schedule always fires`,
    `before the expiry and the overshoot is what happens after the exact second: a re-read and the end path, as`,
    `measured here, plus AWS's own call latencies. A Lambda cold start falls in the wait, not after it. Not`,
    `modeled: Scheduler retries after a failed invocation (those come later than the minute) and a lease shorter`,
    `than two minutes, whose schedule can only name the next minute (up to a minute late; the sweep is the bound).`,
    '',
    `Dev runner messages: ${sch.fired} “fired”; ${sch.runnerFailures.length} “failed … retrying”.` +
      (sch.runnerFailures.length > 0
        ? ` They come after the target returned: \`expireAnnex\` cancels its own schedule, so the runner’s` +
          ` ActionAfterCompletion delete finds it gone (${code(sch.runnerFailures[0]?.replace(/^schedule \S+: /, '') ?? '')}).` +
          ' They do not affect the latency; the runner could treat ResourceNotFound on that delete as done.'
        : ''),
    '',
    '### Sweep-only path, decomposed',
    '',
    '| part | how | n | p50 | p99 | max |',
    '|---|---|---:|---:|---:|---:|',
    `| expiry → start of the tick that ends it | measured (on-cadence ticks), arithmetic (catch-up) | ${distCells(sw.wait, 1)} |`,
    `| tick start → TerminateInstances sent | measured | ${distCells(sw.inSweep)} |`,
    '',
    'Ticks that ran (times from the first create):',
    '',
    '| tick | kind | scheduled | started | took | live leases | ended | errors |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  const origin = Math.min(...e.annexes.map((a) => a.createdAt));
  for (const tk of sw.ticks) {
    lines.push(
      `| ${tk.index} | ${tk.kind} | ${sec(tk.scheduledAt - origin, 1)} | ${sec(tk.startedAt - origin, 1)} | ${sec(
        tk.endedAt - tk.startedAt,
      )} | ${tk.liveAnnexes} | ${tk.ended} | ${tk.errors} |`,
    );
  }
  lines.push(
    '',
    `The wait is at most one period (60 s) because the expiries span ≥ 60 s and the sweep runs every 60 s; the`,
    `part inside the sweep grows with the number of leases ending in the same tick (ended ${sw.sweepConcurrency} at a time) and with`,
    `the size of the listings (section 5).`,
    `A negative wait means the annex expired after its tick had started (the tick listed it as live and ended`,
    `it when its turn came).`,
    '',
    `Anchor (derived): condor_annex checked leases every ${CONDOR_ANNEX_PERIOD_S} s, so an expiry waited uniformly`,
    `in [0, ${CONDOR_ANNEX_PERIOD_S} s) for the next check: p50 ~${CONDOR_ANNEX_PERIOD_S / 2} s, max ~${CONDOR_ANNEX_PERIOD_S} s plus the check’s own duration.`,
    '',
    `Handler and runner logs: ${code(rel(e.logFile))} (${e.logLines} lines).`,
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Section 5

const PHASES = [
  'EC2 listing',
  'live listings (leases ∥ instances)',
  'lease checks and orphans',
  'parameter listing and leaks',
  'schedule listing',
  'schedule reconcile',
] as const;

const phaseOf = (r: SweepRun, name: string) => r.phases.find((p) => p.name === name);

const phaseRow = (v: VariantResult, r: SweepRun): string => {
  const cells = PHASES.map((name) => {
    const p = phaseOf(r, name);
    return p === undefined ? 'n/a' : `${sec(p.wallMs)} (${sec(p.cpuMs)})`;
  });
  return `| ${v.variant} | ${r.label} | ${sec(r.wallMs)} (${sec(r.cpuMs)}) | ${cells.join(' | ')} |`;
};

const runRow = (v: VariantResult, r: SweepRun): string => {
  const b = r.dynamo.byCommand;
  const actions = Object.entries(r.actions)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const other = Object.entries(r.otherCalls)
    .map(([k, n]) => `${k.replace(/Command$/, '')} ${n}`)
    .join(', ');
  return `| ${v.variant} | ${int(r.leases)} / ${int(r.taggedInstances)} | ${r.label} | ${r.concurrency} | ${sec(
    r.wallMs,
  )} | ${sec(r.cpuMs)} | ${int(r.dynamo.requests)} | ${int(r.dynamo.itemsRead)} (Query ${int(
    b.QueryCommand?.items ?? 0,
  )}, GetItem ${int(b.GetItemCommand?.items ?? 0)}) | ${r.dynamo.scans} | ${
    r.dynamo.withCapacity > 0 ? int(Math.round(r.dynamo.capacityUnits)) : 'not returned'
  } | ${r.pages.describeInstances} | ${r.pages.describeParameters} | ${r.pages.listSchedules} | ${
    actions === '' ? 'none' : actions
  }${other === '' ? '' : `; ${other}`} | ${r.errors} |`;
};

/** The CPU profile of the variant's profiled run, as report lines. */
function profileLines(v: VariantResult): string[] {
  const run = v.runs.find((x) => x.profile !== undefined);
  const p = run?.profile;
  if (run === undefined || p === undefined || p.busyMs <= 0) return [];
  const cats = p.categories
    .filter((c) => c.ms >= 0.01 * p.busyMs)
    .map((c) => `${c.name} ${pct(c.ms, p.busyMs)}`)
    .join(', ');
  const fns = p.topFunctions
    .slice(0, 5)
    .map((f) => `${code(f.name)} ${pct(f.ms, p.busyMs)}`)
    .join(', ');
  return [
    `  Where that CPU goes — V8 sampling profile of the “${run.label}” run (the only profiled run: the`,
    `  steady-state work plus ${run.expired} endings), share of ${sec(p.busyMs, 1)} busy samples: ${cats}.`,
    `  Top functions (self time): ${fns}.`,
  ];
}

/** Verdict, where the time goes and suggestions, each computed from the measured run. */
function analysis(mem: VariantResult, steady: SweepRun[], r: SweepRun, cores: number): string[] {
  const t = ENFORCEMENT_TARGETS;
  const b = r.dynamo.byCommand;
  const worst = Math.max(...steady.map((x) => x.wallMs));
  const full = mem.leases >= t.sweepLeases;
  const met = full && worst <= t.sweepWallMs;
  const leases = r.liveAnnexes;
  const perLease = r.dynamo.requests / Math.max(1, leases);
  const gets = b.GetItemCommand?.count ?? 0;
  const queries = b.QueryCommand?.count ?? 0;
  const perLeaseQueries = r.methods.find((m) => m.name === 'store.listInstances')?.calls ?? 0;
  const phases = [...r.phases].sort((x, y) => y.wallMs - x.wallMs);
  const top = phases[0];
  const live = phaseOf(r, 'live listings (leases ∥ instances)');
  // Eventually consistent reads: 0.5 capacity unit per 4 KB read, so 8 KB per unit.
  const mbRead = r.dynamo.withCapacity > 0 ? ((b.QueryCommand?.capacityUnits ?? 0) * 8) / 1024 : Number.NaN;
  const diag = mem.runs.find((x) => /diagnostic/.test(x.label));
  const lambdaFactor = ONE_VCPU_MB / 512;
  const maxCpu = Math.max(...steady.map((x) => x.cpuMs));
  const lambdaCpuMs = maxCpu * lambdaFactor;
  const lines: string[] = [
    `**Verdict: ${met ? 'met' : 'missed'}** — the steady-state sweep over ${int(mem.leases)} leases took ${steady
      .map((x) => sec(x.wallMs, 1))
      .join(
        ' and ',
      )} (target ≤ ${t.sweepWallMs / 1000} s${full ? '' : ` at ${int(t.sweepLeases)} leases; this run had fewer`}).`,
    `Reads: ${int(r.dynamo.itemsRead)} items in ${int(r.dynamo.requests)} requests for ${int(leases)} leases and ${int(
      r.taggedInstances,
    )} instances (Query ${int(b.QueryCommand?.items ?? 0)} items in ${int(queries)} requests, GetItem ${int(
      b.GetItemCommand?.items ?? 0,
    )} in ${int(gets)}), ${perLease < 0.1 ? `i.e. paged: ${perLease.toFixed(3)}` : perLease.toFixed(1)} requests per lease; Scan ${r.dynamo.scans}.`,
    '',
    'Where the time goes (the warm steady run, “' + r.label + '”):',
    '',
    `- Largest phases: ${phases
      .slice(0, 3)
      .map((p) => `${p.name} ${sec(p.wallMs)} (${pct(p.wallMs, r.wallMs)}; Node CPU ${sec(p.cpuMs)})`)
      .join(', ')}.`,
    `- Node used ${sec(r.cpuMs, 1)} of CPU in ${sec(r.wallMs, 1)} (${pct(r.cpuMs, r.wallMs)}). JavaScript runs on one thread, so that is a`,
    `  floor whatever the concurrency; the rest is waiting for the emulators and for a core (${cores} cores shared).` +
      (diag === undefined
        ? ''
        : ` With concurrency ${diag.concurrency} instead of ${r.concurrency}: ${sec(diag.wallMs, 1)} (vs ${sec(r.wallMs, 1)}).`),
    ...profileLines(mem),
  ];
  if (live !== undefined && top?.name === live.name) {
    lines.push(
      `- The live listings dominate: ${int(queries - perLeaseQueries)} Query pages returning ${int(
        (b.QueryCommand?.items ?? 0) - 0,
      )} items${Number.isFinite(mbRead) ? ` (~${mbRead.toFixed(1)} MB by the capacity units: 8 KB per eventually consistent unit)` : ''},`,
      `  ${sec(live.wallMs)} of wall for ${sec(live.cpuMs)} of Node CPU: most of it is DynamoDB Local serving the GSI pages (≤ 1 MB each) on`,
      `  this machine, which says little about DynamoDB’s own page latency (not measured here).`,
    );
  }
  if (perLeaseQueries > 0.5 * leases || gets > 0.5 * leases) {
    lines.push(
      `- Per-lease requests: ${int(gets)} GetItem and ${int(perLeaseQueries)} instance Queries, ~${(
        r.cpuMs / Math.max(1, r.dynamo.requests)
      ).toFixed(1)} ms of Node CPU per request, almost all in the SDK’s per-request work.`,
    );
  }
  lines.push(
    `- The other listings: ${r.pages.describeInstances} DescribeInstances pages (${sec(phaseOf(r, 'EC2 listing')?.wallMs ?? Number.NaN)}), ${
      r.pages.describeParameters
    } DescribeParameters pages (${sec(phaseOf(r, 'parameter listing and leaks')?.wallMs ?? Number.NaN)}), ${
      r.pages.listSchedules
    } ListSchedules pages (${sec(phaseOf(r, 'schedule listing')?.wallMs ?? Number.NaN)}) — answered from memory`,
    `  here, so this is the SDK’s and the adapters’ own work; on AWS each page adds a round trip (not measured).`,
    `- On Lambda the reaper has 512 MB (serverless.yml); Lambda gives one vCPU at ${ONE_VCPU_MB} MB`,
    `  (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html), so ~${(512 / ONE_VCPU_MB).toFixed(2)} vCPU: the ${sec(
      maxCpu,
      1,
    )} of CPU of the`,
    `  slower steady run would take ~${sec(lambdaCpuMs, 0)} of CPU time there (×${lambdaFactor.toFixed(
      1,
    )}; derived, not measured, and a Graviton core is not this core), before any waiting, against the`,
    `  reaper’s 55 s timeout${lambdaCpuMs > 55_000 ? ': **the sweep would time out at this size**' : ''}.`,
    '',
    'The calls the sweep made to its deps (“' +
      r.label +
      '”; concurrent calls overlap, so times do not add up to the wall time):',
    '',
    '| method | calls | total | p50 | p99 |',
    '|---|---:|---:|---:|---:|',
    ...r.methods.map(
      (m) =>
        `| ${code(m.name)} | ${int(m.calls)} | ${sec(m.totalMs)} | ${msText(m.p50)} | ${msText(m.p99)} |`,
    ),
    '',
    'Suggestions (for the owners of shared/; nothing in shared/ was changed by this benchmark):',
    '',
  );
  const suggestions: string[] = [];
  if (gets > 0.5 * leases) {
    suggestions.push(
      `**Do not re-read every lease.** Decide from the listed item whether anything is to be done and take the consistent GetItem only before acting: that removes ${int(gets)} of the ${int(r.dynamo.requests)} requests.`,
    );
  }
  if (perLeaseQueries > 0.5 * leases) {
    suggestions.push(
      `**Read instance items in bulk** (a sparse index of live instances paged like the live leases) instead of ${int(perLeaseQueries)} per-lease Queries.`,
    );
  }
  if (live !== undefined && live.wallMs > 0.3 * r.wallMs) {
    suggestions.push(
      `**Shrink what the live listings carry.** Both live indexes project ALL attributes (serverless.yml), so every sweep pages whole annex items (launch spec, tags, user data) and whole instance records${
        Number.isFinite(mbRead) ? ` — ~${mbRead.toFixed(1)} MB here` : ''
      }. An INCLUDE projection of the fields the checks read (state, expiresAt, updatedAt, launching, idleSeconds; instance state, launchedAt, heartbeat and idle fields) cuts the pages, the read units (${int(
        Math.round(b.QueryCommand?.capacityUnits ?? 0),
      )} per sweep here, ${int(Math.round((b.QueryCommand?.capacityUnits ?? 0) * 1440))} a day at one sweep a minute) and the unmarshalling.`,
    );
  }
  if (r.pages.describeParameters + r.pages.listSchedules > 50) {
    suggestions.push(
      `**List parameters and schedules less often.** ${r.pages.describeParameters} DescribeParameters and ${r.pages.listSchedules} ListSchedules pages every minute grow with the leases and, on AWS, each is a rate-limited API call; leaked parameters and schedules are rare and harmless for minutes, so a slower cadence (or the annex’s own cleanup record) would do.`,
    );
  }
  if (lambdaCpuMs > 0.5 * 55_000 || r.cpuMs > t.sweepWallMs) {
    suggestions.push(
      `**Give the reaper more CPU**: memory ≥ ${ONE_VCPU_MB} MB (one vCPU) instead of 512 MB; raising \`ANNEX_SWEEP_CONCURRENCY\` cannot take the sweep below its CPU time.`,
    );
  }
  if (!met) {
    suggestions.push(
      `**Split the work** if leases grow further: one invocation per live-index shard (LIVE_SHARDS = ${LIVE_SHARDS} in shared/aws/keys.ts) lists and checks a quarter of the leases each.`,
    );
  }
  if (suggestions.length === 0) suggestions.push('None: the sweep meets its target with room to spare.');
  lines.push(...suggestions.map((x, i) => `${i + 1}. ${x}`), '');
  return lines;
}

export function sweepSection(outcome: Outcome<SweepSection>, command: string, cores: number): string {
  // The heading and the method (## 5) are in the template.
  const failed = failedOrSkipped(outcome);
  if (failed !== undefined) return failed;
  if (!outcome.ok) return '';
  const s = outcome.value;
  const lines = [
    `Command: ${command}; this section alone: \`npm run bench -- --only=sweep\`. Sweep concurrency from`,
    `\`sweepSettings()\`: ${s.defaultConcurrency} (\`ANNEX_SWEEP_CONCURRENCY\` ${
      s.concurrencyEnv === undefined ? 'unset: the default' : `= ${s.concurrencyEnv}`
    }). Section time budget ${sec(s.budgetMs, 0)} (it decides only the optional runs), took ${sec(s.elapsedMs, 0)}.`,
    `1-minute load average ${s.load.start.toFixed(2)} at its start, ${s.load.end.toFixed(2)} at its end, on ${cores} cores shared by this`,
    `process, DynamoDB Local and moto (and whatever else runs on the machine): the absolute times scale with it.`,
    '',
    '### Seeding',
    '',
    '| variant | leases / instances | EC2 | DynamoDB | SSM | Scheduler | total |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...s.variants.map(
      (v) =>
        `| ${v.variant} | ${int(v.leases)} / ${int(v.instances)}${v.leases < v.wantedLeases ? ` (wanted ${int(v.wantedLeases)}: budget)` : ''} | ${sec(
          v.seeding.ec2Ms,
          1,
        )} | ${sec(v.seeding.dynamoMs, 1)} | ${sec(v.seeding.ssmMs, 1)} | ${sec(v.seeding.schedulerMs, 1)} | ${sec(
          v.seeding.totalMs,
          1,
        )} |`,
    ),
    '',
  ];
  const moto = s.variants.find((v) => v.variant === 'moto');
  if (moto !== undefined && moto.motoListing.length >= 2) {
    const [a, b] = moto.motoListing as [{ instances: number; ms: number }, { instances: number; ms: number }];
    const exponent = Math.log(b.ms / a.ms) / Math.log(b.instances / a.instances);
    const atMeasured = b.ms * (20_000 / b.instances) ** exponent;
    const atSquare = b.ms * (20_000 / b.instances) ** 2;
    const perRun = moto.seeding.ec2Ms / moto.leases;
    lines.push(
      `moto’s DescribeInstances of the stage (the sweep’s EC2 listing): ${int(a.instances)} instances ${sec(a.ms)},`,
      `${int(b.instances)} instances ${sec(b.ms)}: growth exponent ${exponent.toFixed(1)} over this range (fixed costs still weigh at`,
      `this size; the code is O(N²)). Extrapolated to 20,000 instances (not measured): ~${sec(atMeasured, 0)} per listing at the`,
      `measured exponent, ~${(atSquare / 3_600_000).toFixed(1)} h at O(N²). Seeding them: one RunInstances (2 instances) took ${msText(
        perRun,
      )} on average here, so`,
      `10,000 of them would take ~${((perRun * 10_000) / 60_000).toFixed(0)} min.`,
      '',
    );
  }
  lines.push(
    '### Runs',
    '',
    '| variant | leases / instances | run | concurrency | wall | Node CPU | DynamoDB requests | items read | Scan | capacity units | DescribeInstances pages | DescribeParameters pages | ListSchedules pages | actions; other calls | errors |',
    '|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|',
  );
  for (const v of s.variants) for (const r of v.runs) lines.push(runRow(v, r));
  for (const v of s.variants)
    for (const k of v.skipped)
      lines.push(`| ${v.variant} | | ${k}: not run (time budget) | | | | | | | | | | | | |`);
  lines.push(
    '',
    '### Where the time goes',
    '',
    'Wall time of each phase, and in parentheses the CPU this Node process used over the same interval (the',
    'rest is waiting: for DynamoDB Local or moto, and for a core). Phases follow `sweep()`: EC2 listing, then',
    'the live listings, the per-lease checks (and orphans), the parameter listing (and leak deletions), the',
    'schedule listing, and the schedule reconciliation.',
    '',
    `| variant | run | whole sweep | ${PHASES.join(' | ')} |`,
    `|---|---|---:|${PHASES.map(() => '---:').join('|')}|`,
  );
  for (const v of s.variants) for (const r of v.runs) lines.push(phaseRow(v, r));
  lines.push('');

  const mem = s.variants.find((v) => v.variant === 'memory');
  const steady = mem === undefined ? [] : steadyRuns(mem);
  // The warmest steady run (the last) for the analysis; the worst for the verdict.
  const r = steady[steady.length - 1];
  if (mem !== undefined && r !== undefined) {
    lines.push(...analysis(mem, steady, r, cores));
  }
  if (s.failures.length > 0) {
    lines.push('Variants that failed:', '', '```', ...s.failures, '```', '');
  }
  lines.push(`Handler logs: ${code(rel(s.logFile))} (${s.logLines} lines).`, '');
  return lines.join('\n');
}
