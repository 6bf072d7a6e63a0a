// BENCHMARKS.md is rendered from the benchmark's measurements (scripts/bench/results.json, committed
// with it) and a template that holds the report's prose. Rendering the committed results must give the
// committed report byte for byte. The fixture marks some sections not run or failed, so rendering it
// must still give those sections the committed report's method prose and keep every section heading
// in the same order.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../../scripts/devstack/serverless-config.ts';
import { fillTemplate, renderBenchmarks, templateFile } from '../../../scripts/bench/render.ts';
import { readResults, resultsFile, type BenchResults } from '../../../scripts/bench/results.ts';

const fixture = (): BenchResults => readResults(join(import.meta.dirname, 'fixtures', 'bench-results.json'));
const template = (): string => readFileSync(templateFile, 'utf8');
const committed = (): string => readFileSync(join(repoRoot, 'BENCHMARKS.md'), 'utf8');

/** The text of the `## ` section whose heading starts with `heading`, up to the next `## `. */
function section(report: string, heading: string): string {
  const start = report.indexOf(`\n## ${heading}`);
  if (start < 0) throw new Error(`no section ${heading}`);
  const end = report.indexOf('\n## ', start + 1);
  return report.slice(start, end < 0 ? undefined : end);
}

const headings = (report: string, level: string): string[] =>
  report.split('\n').filter((line) => line.startsWith(`${level} `));

describe('rendering BENCHMARKS.md from results', () => {
  it('renders the committed BENCHMARKS.md, byte for byte, from the committed results', () => {
    // Prepare
    const results = readResults(resultsFile);

    // Act
    const report = renderBenchmarks(results, template());

    // Assess
    expect(report).toBe(committed());
  });

  it('keeps every top-level section of the committed report, in order, whether measured or not', () => {
    // Prepare
    const results = fixture();

    // Act
    const report = renderBenchmarks(results, template());

    // Assess
    expect(headings(report, '##')).toEqual(headings(committed(), '##'));
    expect(section(report, '1. Bundle size')).toContain('_Not run in this invocation (`--only`)._');
    expect(section(report, '5. Sweep cost')).toContain('**This section failed**');
    expect(section(report, '5. Sweep cost')).toContain('Error: emulator gone');
  });

  it('gives the sections it has no numbers for the committed report’s method prose, word for word', () => {
    // Prepare
    const results = fixture();
    const notRun = '_Not run in this invocation (`--only`)._\n';

    // Act
    const report = renderBenchmarks(results, template());

    // Assess
    for (const name of ['1. Bundle size', '4. Enforcement latency']) {
      const method = section(report, name).replace(notRun, '');
      expect(section(committed(), name).startsWith(method)).toBe(true);
    }
    const sweep = section(report, '5. Sweep cost');
    const sweepMethod = sweep.slice(0, sweep.indexOf('**This section failed**'));
    expect(section(committed(), '5. Sweep cost').startsWith(sweepMethod)).toBe(true);
  });

  it('keeps the cost method prose when the cost section was not run, without the prices it was not given', () => {
    // Prepare
    const results: BenchResults = { ...fixture(), cost: { ok: false, skipped: true } };
    const method = (text: string): string =>
      text
        .slice(
          text.indexOf('\nMeasured ('),
          text.indexOf('\nCommand: ') < 0 ? undefined : text.indexOf('\nCommand: '),
        )
        .trimEnd();

    // Act
    const cost = section(renderBenchmarks(results, template()), '7. What it costs');

    // Assess
    expect(cost).toContain('## 7. What it costs\n\nnot run\n\nMeasured (');
    expect(method(cost)).toBe(
      method(section(committed(), '7. What it costs')).replace('$0.25/GB-month', 'priced per GB-month'),
    );
  });

  it('puts the CLI’s and the cost’s rows into the summary table, before the notes under it', () => {
    // Prepare
    const results = fixture();

    // Act
    const summary = section(renderBenchmarks(results, template()), 'Summary');

    // Assess
    const lines = summary.split('\n');
    const cliRow = lines.findIndex((l) => l.startsWith('| `annex --help` ≤ 150 ms'));
    const costRow = lines.findIndex((l) => l.startsWith('| Control plane at rest'));
    const note = lines.findIndex((l) => l.startsWith('✗ marks'));
    expect(cliRow).toBeGreaterThan(0);
    expect(costRow).toBe(cliRow + 1);
    expect(lines[costRow + 1]).toBe('');
    expect(note).toBe(costRow + 2);
    expect(lines[cliRow]).toContain('median 106.8 ms (p90 146.3 ms)');
  });
});

describe('the report template', () => {
  it('replaces each {{name}} once, leaving text that merely looks like a placeholder in a value alone', () => {
    // Prepare
    const text = 'a {{x}} b {{y}}\n';

    // Act
    const filled = fillTemplate(text, { x: '{{y}}', y: '2' });

    // Assess
    expect(filled).toBe('a {{y}} b 2');
  });

  it('refuses a name the renderer does not compute', () => {
    expect(() => fillTemplate('{{missing}}', {})).toThrow(/\{\{missing\}\}/);
  });

  it('refuses to drop a computed section the template does not place', () => {
    expect(() => fillTemplate('{{a}}', { a: '1', b: '2' })).toThrow(/\{\{b\}\}/);
  });
});
