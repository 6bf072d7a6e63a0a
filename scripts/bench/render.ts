// Renders BENCHMARKS.md from the measurements (scripts/bench/results.json) and the report's template
// (scripts/bench/BENCHMARKS.template.md). The template holds the report's fixed prose; each
// `{{name}}` in it is replaced by one value or one computed section below. A name the template uses
// that is not computed here, or one computed that the template does not use, is an error: a report
// never silently loses a section. Run alone: `npm run bench:render [-- <results.json>]`.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../devstack/serverless-config.ts';
import { renderCliSection } from './cli.ts';
import { renderCostSection } from './cost.ts';
import { reportFragments } from './report.ts';
import { readResults, resultsFile, type BenchResults } from './results.ts';

export const templateFile = join(repoRoot, 'scripts', 'bench', 'BENCHMARKS.template.md');
export const reportFile = join(repoRoot, 'BENCHMARKS.md');

export function fillTemplate(template: string, values: Record<string, string>): string {
  const used = new Set<string>();
  // The template file ends with a newline as every text file does; the report ends where the last
  // section ends.
  const body = template.endsWith('\n') ? template.slice(0, -1) : template;
  const filled = body.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined)
      throw new Error(`template names {{${name}}}, which the renderer does not compute`);
    used.add(name);
    return value;
  });
  const unused = Object.keys(values).filter((name) => !used.has(name));
  if (unused.length > 0)
    throw new Error(`template does not place ${unused.map((n) => `{{${n}}}`).join(', ')}`);
  return filled;
}

export function renderBenchmarks(results: BenchResults, template: string): string {
  const cli = renderCliSection(results.cli);
  const cost = renderCostSection(results.cost);
  return fillTemplate(template, {
    ...reportFragments(results, [cli.summary, cost.summary]),
    cli: cli.section,
    cost: cost.section,
    costPrices: cost.prices,
    costStoragePrice: cost.storagePrice,
  });
}

export function writeBenchmarks(results: BenchResults, file: string = reportFile): void {
  writeFileSync(file, renderBenchmarks(results, readFileSync(templateFile, 'utf8')));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const from = process.argv[2] ?? resultsFile;
  writeBenchmarks(readResults(from));
  process.stderr.write(`rendered ${reportFile} from ${from}\n`);
}
