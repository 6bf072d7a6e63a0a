// The whole command line through run(), with fake streams: help, usage errors, exit codes, --json
// errors and the create confirmation. Nothing here reaches a network: every case stops before a
// request (no endpoint is configured).
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Io } from '../../../cli/src/io.ts';
import { run } from '../../../cli/src/main.ts';

interface FakeIo extends Io {
  out: () => string;
  err: () => string;
}

const fakeIo = (options: { tty?: boolean; input?: string; env?: Record<string, string> } = {}): FakeIo => {
  let out = '';
  let err = '';
  const stdin = Readable.from(options.input === undefined ? [] : [options.input]) as Readable & {
    isTTY?: boolean;
  };
  stdin.isTTY = options.tty ?? false;
  return {
    stdout: { write: (s: string) => (out += s), isTTY: options.tty ?? false, columns: 100 },
    stderr: { write: (s: string) => (err += s), isTTY: options.tty ?? false },
    stdin,
    env: { HOME: '/nonexistent', ANNEX_CONFIG_FILE: '/nonexistent/annex.json', ...options.env },
    now: () => new Date('2025-06-01T12:00:00Z'),
    out: () => out,
    err: () => err,
  };
};

describe('annex (run)', () => {
  it('prints help for --help, help COMMAND and condor_annex’s -help, exit 0', async () => {
    for (const argv of [['--help'], ['-h'], [], ['-help']]) {
      const io = fakeIo();
      expect(await run(argv, io)).toBe(0);
      expect(io.out()).toContain('Usage: annex <command> [options]');
      expect(io.out()).toContain(
        'annex -count 1 -annex-name ToddsGPU -aws-on-demand-instance-type p2.xlarge',
      );
    }
    const io = fakeIo();
    expect(await run(['help', 'extend'], io)).toBe(0);
    expect(io.out()).toContain(
      'Usage: annex extend NAME (--by DURATION | --until TIME | --duration DURATION)',
    );
  });

  it('prints its version', async () => {
    const io = fakeIo();
    expect(await run(['--version'], io)).toBe(0);
    expect(io.out()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('reports a usage error as one line with a hint, exit 2', async () => {
    const io = fakeIo();
    expect(await run(['create', 'demo', '--count', 'two', '--type', 'm5.large', '--yes'], io)).toBe(2);
    expect(io.err()).toBe('annex: Usage: --count "two" must be a whole number of at least 1\n');
    expect(io.out()).toBe('');
  });

  it('with --json also prints the error as an object on stdout', async () => {
    const io = fakeIo();
    expect(await run(['create', 'demo', '--count', '1', '--json'], io)).toBe(2);
    expect(JSON.parse(io.out())).toEqual({
      error: {
        code: 'Usage',
        message: 'annex create needs --type TYPE',
        exitCode: 2,
        hint: 'for example --type p2.xlarge (condor_annex: -aws-on-demand-instance-type), or --spot --vcpus 4 --memory-gib 16',
      },
    });
  });

  it('refuses contradictory spot and owner options with exit 2 and a message that names them', async () => {
    const spot = fakeIo();
    expect(await run(['create', 'demo', '-n', '1', '-t', 'm5.large', '--on-demand-base', '1'], spot)).toBe(2);
    expect(spot.err()).toContain('--on-demand-base goes with --spot');
    const needs = fakeIo();
    expect(await run(['create', 'demo', '-n', '1', '--vcpus', '4'], needs)).toBe(2);
    expect(needs.err()).toContain('hardware needs take --vcpus and --memory-gib');
    const both = fakeIo();
    expect(
      await run(
        [
          '-count',
          '1',
          '-annex-name',
          'x',
          '-aws-on-demand-instance-type',
          'm5.large',
          '-owner',
          'a,b',
          '-no-owner',
        ],
        both,
      ),
    ).toBe(2);
    expect(both.err()).toContain('give --owner or --no-owner, not both');
  });

  it('without an endpoint says how to configure one, exit 2', async () => {
    const io = fakeIo();
    expect(await run(['list'], io)).toBe(2);
    expect(io.err()).toContain(
      'annex: NoEndpoint: no Annex API endpoint is configured (hint: run annex configure',
    );
  });

  it('on a terminal, asks before creating, with condor_annex’s summary; "no" launches nothing', async () => {
    const io = fakeIo({ tty: true, input: 'no\n' });
    const code = await run(
      ['-count', '1', '-annex-name', 'ToddsGPU', '-aws-on-demand-instance-type', 'p2.xlarge'],
      io,
    );
    expect(code).toBe(1);
    expect(io.err()).toContain(
      "Will request 1 p2.xlarge on-demand instance(s) for 0.83 hours. Each instance will terminate after being idle for 0.25 hours. Estimated cost: at most $0.90 per hour, $0.75 for the whole lease, at us-east-1 on-demand list prices of 2026-11-25.\nIs that OK? (Type 'yes' or 'no'): ",
    );
    expect(io.err()).toContain('annex: Cancelled: not creating the annex (hint: nothing was launched)');
  });

  it('on a terminal, "yes" goes on to the request (which fails here for want of an endpoint)', async () => {
    const io = fakeIo({ tty: true, input: 'yes\n' });
    expect(
      await run(['create', 'demo', '-n', '2', '-t', 'm5.large', '--duration', '2h', '--idle', '30m'], io),
    ).toBe(2);
    expect(io.err()).toContain(
      'Will request 2 m5.large on-demand instance(s) for 2.00 hours. Each instance will terminate after being idle for 0.50 hours.',
    );
    expect(io.err()).toContain('NoEndpoint');
  });

  it('does not ask with --yes, -yes or when not on a terminal', async () => {
    for (const [argv, tty] of [
      [['create', 'demo', '-n', '1', '-t', 'm5.large', '--yes'], true],
      [['-count', '1', '-annex-name', 'x', '-aws-on-demand-instance-type', 'm5.large', '-yes'], true],
      [['create', 'demo', '-n', '1', '-t', 'm5.large'], false],
    ] as const) {
      const io = fakeIo({ tty });
      expect(await run([...argv], io)).toBe(2);
      expect(io.err()).not.toContain('Is that OK?');
    }
  });

  it('terminate needs --yes when it cannot ask', async () => {
    const io = fakeIo();
    expect(await run(['terminate', 'demo'], io)).toBe(2);
    expect(io.err()).toContain('annex terminate needs --yes when it cannot ask');
  });

  it('colours an error only on a terminal without NO_COLOR', async () => {
    const tty = fakeIo({ tty: true });
    await run(['frob'], tty);
    expect(tty.err()).toContain('\x1b[31m');
    const noColor = fakeIo({ tty: true, env: { NO_COLOR: '1' } });
    await run(['frob'], noColor);
    expect(noColor.err()).not.toContain('\x1b[');
    const flag = fakeIo({ tty: true });
    await run(['frob', '--no-color'], flag);
    expect(flag.err()).not.toContain('\x1b[');
  });
});
