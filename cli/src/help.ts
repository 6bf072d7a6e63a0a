/** Help text, generated from the command table. Kept free of anything slow: `annex --help` must start fast. */
import { COMMANDS, GLOBAL_OPTIONS, findCommand, type OptionSpec } from './args.ts';
import { condorOptionRows } from './condor.ts';

const optionLines = (options: Record<string, OptionSpec>): string[] => {
  const entries = Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short === undefined ? '    ' : `-${spec.short}, `}--${name}${spec.value === undefined ? '' : ` ${spec.value}`}`;
    return [flag, spec.help] as const;
  });
  const width = Math.max(...entries.map(([flag]) => flag.length)) + 2;
  return entries.map(([flag, help]) => `  ${flag.padEnd(width)}${help}`);
};

const GLOBAL_SHOWN = Object.fromEntries(
  Object.entries(GLOBAL_OPTIONS).filter(([name]) => !name.endsWith('key-file')),
) as Record<string, OptionSpec>;

export const topHelp = (version: string): string => {
  const rows = COMMANDS.map((c) => [c.brief ?? c.synopsis, c.summary] as const);
  const width = Math.max(...rows.map(([s]) => s.length)) + 2;
  return `annex ${version}: add cloud machines to your HTCondor pool for a fixed lease

Usage: annex <command> [options]

Commands:
${rows.map(([s, summary]) => `  ${s.padEnd(width)}${summary}`).join('\n')}

Options for every command:
${optionLines(GLOBAL_SHOWN).join('\n')}

Durations: 90m, 2h, 1h30m, 1d, or ISO 8601 (PT1H30M). Times: ISO 8601 (2025-06-01T18:00Z;
without a zone, local), 18:00 (the next one), +2h, "in 90m", now+1h.

condor_annex's options work too and map onto the commands above, for example
  annex -count 1 -annex-name ToddsGPU -aws-on-demand-instance-type p2.xlarge
  annex -annex-name ToddsGPU -duration 2        (reset the lease to end in 2 hours)
  annex -status · annex -check-setup · annex -annex-name ToddsGPU off
annex help condor_annex lists every condor_annex option and what it becomes.

Setup: annex configure --endpoint URL (or ANNEX_API_URL); credentials come from the AWS default chain
(environment, --profile/AWS_PROFILE, SSO, instance role). Requests are SigV4-signed.
Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 conflict. annex help COMMAND for more.
`;
};

const condorHelp = (): string => {
  const rows = condorOptionRows();
  const width = Math.max(...rows.map(([option]) => option.length)) + 2;
  return `condor_annex's command line works with annex in its place:
  annex -count 1 -annex-name ToddsGPU -aws-on-demand-instance-type p2.xlarge

${rows.map(([option, does]) => `  ${option.padEnd(width)}${does}`).join('\n')}

annex's own --options may be mixed in; annex's commands (create, status, …) may not.
`;
};

export const commandHelp = (topic: string): string | undefined => {
  if (topic === 'condor_annex') return condorHelp();
  if (topic === 'pools') {
    return `Usage: annex pools list | set POOL … | check POOL

${COMMANDS.filter((c) => c.name.startsWith('pools '))
  .map((c) => `  annex ${c.synopsis}\n      ${c.summary}`)
  .join('\n')}

annex pools <subcommand> --help for its options.
`;
  }
  const command = findCommand(topic);
  if (command === undefined) return undefined;
  return `Usage: annex ${command.synopsis}

${command.summary[0]?.toUpperCase()}${command.summary.slice(1)}.${command.description === undefined ? '' : `\n\n${command.description}`}
${Object.keys(command.options).length === 0 ? '' : `\nOptions:\n${optionLines(command.options).join('\n')}\n`}
Options for every command:
${optionLines(GLOBAL_SHOWN).join('\n')}
`;
};
