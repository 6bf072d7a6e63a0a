// Section 6: how fast the `annex` CLI starts (`annex --help`), side by side with `node -e ''`.
// The measurement itself lives with the CLI (cli/bench/help-startup.ts); this renders it.
import { measureHelpStartup, type HelpStartup } from '../../cli/bench/help-startup.ts';
import type { Outcome } from './report.ts';

export const runCliSection = (): Promise<HelpStartup> => measureHelpStartup({ runs: 20 });

export const renderCliSection = (outcome: Outcome<HelpStartup>): { summary: string; section: string } => {
  if (!outcome.ok) {
    const why = 'skipped' in outcome ? 'not run' : `failed: ${outcome.error.split('\n')[0] ?? ''}`;
    return {
      summary: `| \`annex --help\` ≤ 150 ms, side by side with \`node -e ''\` | ${why} | — |`,
      section: `${why}\n`,
    };
  }
  const h = outcome.value;
  const met = h.annexHelp.medianMs <= h.budgetMs;
  return {
    summary:
      `| \`annex --help\` ≤ ${h.budgetMs} ms, side by side with \`node -e ''\` | median ${h.annexHelp.medianMs} ms ` +
      `(p90 ${h.annexHelp.p90Ms} ms); \`node -e ''\` median ${h.nodeBaseline.medianMs} ms; annex adds ` +
      `${h.overheadMedianMs} ms (p90 ${h.overheadP90Ms} ms) | ${met ? 'met' : '**missed**'} |`,
    // The heading (## 6) is in the template.
    section: [
      `\`node cli/bin/annex.js --help\` (what npm links as \`annex\`) and \`node -e ''\` (Node's own start-up, the`,
      `floor), spawned alternately ${h.annexHelp.runs} times each; wall time of the whole process, spawn to exit`,
      '(cli/bench/help-startup.ts). `--help` loads no AWS SDK code (an e2e test guards it).',
      '',
      '| command | runs | median | p90 | min | max |',
      '|---|---:|---:|---:|---:|---:|',
      `| \`annex --help\` | ${h.annexHelp.runs} | ${h.annexHelp.medianMs} ms | ${h.annexHelp.p90Ms} ms | ${h.annexHelp.minMs} ms | ${h.annexHelp.maxMs} ms |`,
      `| \`node -e ''\` | ${h.nodeBaseline.runs} | ${h.nodeBaseline.medianMs} ms | ${h.nodeBaseline.p90Ms} ms | ${h.nodeBaseline.minMs} ms | ${h.nodeBaseline.maxMs} ms |`,
      '',
      `Paired difference (what annex adds to Node): median ${h.overheadMedianMs} ms, p90 ${h.overheadP90Ms} ms.`,
      `Verdict on the median against the ${h.budgetMs} ms budget: ${met ? 'met' : 'missed'}.`,
      '',
    ].join('\n'),
  };
};
