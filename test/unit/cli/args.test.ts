import { describe, expect, it } from 'vitest';
import { COMMANDS, parseCommandLine, type Invocation } from '../../../cli/src/args.ts';
import { CliError } from '../../../cli/src/errors.ts';

const command = (argv: string[]) => {
  const parsed = parseCommandLine(argv);
  if (parsed.kind !== 'command') throw new Error(`expected a command, got ${parsed.kind}`);
  return parsed;
};

const usage = (argv: string[]): CliError => {
  try {
    parseCommandLine(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    expect((e as CliError).exitCode).toBe(2);
    return e as CliError;
  }
  throw new Error('expected a usage error');
};

describe('parseCommandLine', () => {
  it('parses a create with repeated types and tags, short options and --opt=value', () => {
    const {
      command: spec,
      positionals,
      options,
    } = command([
      'create',
      'demo',
      '-n',
      '2',
      '-t',
      'm5.large',
      '--type=c5.large',
      '--tag',
      'a=1',
      '--tag',
      'b=2',
      '--duration',
      '2h',
      '--no-wait',
      '-y',
    ]);
    expect(spec.name).toBe('create');
    expect(positionals).toEqual(['demo']);
    expect(options).toMatchObject({
      count: '2',
      type: ['m5.large', 'c5.large'],
      tag: ['a=1', 'b=2'],
      duration: '2h',
      'no-wait': true,
      yes: true,
    });
  });

  it('takes global options before or after the command', () => {
    expect(command(['--json', '--endpoint', 'http://x', 'list']).options).toMatchObject({
      json: true,
      endpoint: 'http://x',
    });
    expect(command(['list', '--json', '-q']).options).toMatchObject({ json: true, quiet: true });
  });

  it('parses the pools subcommands', () => {
    expect(command(['pools', 'list']).command.name).toBe('pools list');
    const set = command(['pools', 'set', 'lab', '--collector', 'cm:9618', '--password-file', '-']);
    expect(set.command.name).toBe('pools set');
    expect(set.positionals).toEqual(['lab']);
    expect(usage(['pools']).message).toContain('needs a subcommand');
    expect(usage(['pools', 'frob']).message).toContain('unknown command "pools frob"');
  });

  it('answers help and version without a command', () => {
    expect(parseCommandLine([])).toEqual<Invocation>({ kind: 'help' });
    expect(parseCommandLine(['--help'])).toEqual<Invocation>({ kind: 'help' });
    expect(parseCommandLine(['--version'])).toEqual<Invocation>({ kind: 'version' });
    expect(parseCommandLine(['help', 'create'])).toEqual<Invocation>({ kind: 'help', topic: 'create' });
    expect(parseCommandLine(['create', '--help'])).toEqual<Invocation>({ kind: 'help', topic: 'create' });
    expect(parseCommandLine(['pools', 'set', '-h'])).toEqual<Invocation>({
      kind: 'help',
      topic: 'pools set',
    });
  });

  it.each([
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['create'], 'annex create needs NAME'],
    [['create', 'a', 'b'], 'unexpected argument "b" for annex create'],
    [['create', 'a', '--bogus'], 'unknown option --bogus for annex create'],
    [['create', 'a', '--count'], '--count needs a value'],
    [['list', '--yes'], 'unknown option --yes for annex list'],
    [['--bogus'], 'unknown option --bogus'],
    [['create', 'a', '--spot=yes'], '--spot takes no value'],
  ])('refuses %j', (argv, message) => {
    expect(usage(argv).message).toContain(message);
  });

  it('gives every command a summary and a synopsis that starts with its name', () => {
    for (const c of COMMANDS) {
      expect(c.summary.length).toBeGreaterThan(5);
      expect(c.synopsis.startsWith(c.name)).toBe(true);
    }
  });
});
