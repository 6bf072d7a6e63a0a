/**
 * The `annex` command. This module stays small and loads nothing heavy: help and usage errors are
 * answered from here; a command's own module (and, for requests, the AWS credential chain and
 * signer) is imported only when that command runs.
 */
import { parseCommandLine, type CommandSpec, type Invocation } from './args.ts';
import { isCondorStyle, translateCondorArgs } from './condor.ts';
import { asCliError, errorJson, errorLine, EXIT, usageError, type CliError } from './errors.ts';
import { commandHelp, topHelp } from './help.ts';
import type { Context } from './context.ts';
import type { Io } from './io.ts';
import { colourAllowed } from './output.ts';

declare const ANNEX_VERSION: string;
const version = typeof ANNEX_VERSION === 'string' ? ANNEX_VERSION : '0.0.0-dev';

type CommandModule = { run(ctx: Context): Promise<number> };

const loaders: Record<string, () => Promise<CommandModule>> = {
  create: () => import('./commands/create.ts'),
  list: () => import('./commands/list.ts'),
  status: () => import('./commands/status.ts'),
  extend: () => import('./commands/extend.ts'),
  add: () => import('./commands/add.ts'),
  terminate: () => import('./commands/terminate.ts'),
  events: () => import('./commands/events.ts'),
  off: () => import('./commands/off.ts'),
  'pools list': () => import('./commands/pools.ts'),
  'pools set': () => import('./commands/pools.ts'),
  'pools check': () => import('./commands/pools.ts'),
  'check-setup': () => import('./commands/check-setup.ts'),
  configure: () => import('./commands/configure.ts'),
};

const wantsJson = (argv: readonly string[]) => argv.includes('--json') || argv.includes('-classad');

/** Runs one command line; returns the exit code. Never throws. */
export const run = async (argv: readonly string[], io: Io): Promise<number> => {
  let invocation: Invocation;
  try {
    invocation = parseCommandLine(isCondorStyle(argv) ? translateCondorArgs(argv) : argv);
  } catch (e) {
    return fail(asCliError(e), io, wantsJson(argv), false, argv.includes('--no-color'));
  }
  if (invocation.kind === 'version') {
    io.stdout.write(`${version}\n`);
    return EXIT.ok;
  }
  if (invocation.kind === 'help') {
    const text = invocation.topic === undefined ? topHelp(version) : commandHelp(invocation.topic);
    if (text === undefined) {
      return fail(
        usageError(`no help for ${JSON.stringify(invocation.topic)}`, 'see annex --help'),
        io,
        false,
        false,
        false,
      );
    }
    io.stdout.write(text);
    return EXIT.ok;
  }
  return runCommand(invocation.command, invocation.positionals, invocation.options, io);
};

const runCommand = async (
  command: CommandSpec,
  positionals: string[],
  options: Extract<Invocation, { kind: 'command' }>['options'],
  io: Io,
): Promise<number> => {
  const { Context } = await import('./context.ts');
  const ctx = new Context(io, command, positionals, options);
  try {
    const load = loaders[command.name];
    if (load === undefined) throw new Error(`no implementation for ${command.name}`);
    return await (await load()).run(ctx);
  } catch (e) {
    return fail(asCliError(e), io, ctx.out.json, ctx.out.wroteData, options['no-color'] === true);
  } finally {
    ctx.close();
  }
};

/** One line on stderr (red on a terminal); with --json also the error object on stdout, unless a result was printed. */
const fail = (error: CliError, io: Io, json: boolean, wroteData: boolean, noColor: boolean): number => {
  if (json && !wroteData) io.stdout.write(`${JSON.stringify(errorJson(error), null, 2)}\n`);
  const line = errorLine(error);
  io.stderr.write(`${colourAllowed(io.stderr, io.env, noColor) ? `\x1b[31m${line}\x1b[39m` : line}\n`);
  return error.exitCode;
};
