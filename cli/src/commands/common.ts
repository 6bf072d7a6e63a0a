/** Pieces several commands share: reading an annex, hints, prompts, progress, files. */
import { readFileSync } from 'node:fs';
import { splitList } from '../args.ts';
import type { Context } from '../context.ts';
import { withHint } from '../context.ts';
import { usageError, type CliError } from '../errors.ts';
import { stateColour } from '../render.ts';
import { formatSpan, parseDuration } from '../time.ts';
import type { AnnexDetail } from '../types.ts';
import { waitForInstances, type WaitProgress, type WaitResult } from '../wait.ts';

export const annexPath = (name: string, suffix = ''): string =>
  `/v1/annexes/${encodeURIComponent(name)}${suffix}`;

/** Which option to look at when the server refuses a field. */
const FIELD_OPTIONS: Record<string, string> = {
  name: 'the NAME argument',
  pool: '--pool',
  count: '--count',
  instanceTypes: '--type',
  market: '--spot',
  imageId: '--image',
  subnetIds: '--subnet',
  securityGroupIds: '--security-group',
  keyName: '--key-name',
  durationSeconds: '--duration',
  expiresAt: '--until or --by',
  idleSeconds: '--idle',
  userData: '--user-data or --user-data-file',
  tags: '--tag',
  collectorHost: '--collector',
  collectorPort: '--collector',
  credential: '--password-file or --token-key-file',
  scope: '--scope',
  owner: '--owner-arn',
  'Idempotency-Key': '--idempotency-key',
};

/** For a ValidationError: the option that sets the refused field. */
export const fieldHint = (e: CliError): string | undefined => {
  if (e.code !== 'ValidationError' || e.field === undefined) return undefined;
  const option = FIELD_OPTIONS[e.field.split('.')[0] ?? ''];
  return option === undefined ? undefined : `check ${option}`;
};

/** Hints that name the annex and the option at fault. */
export const annexHint =
  (name: string) =>
  (e: CliError): string | undefined => {
    if (e.code === 'ValidationError') return fieldHint(e);
    if (e.code === 'NotFound') return `no live or ended annex named ${name} is yours: see annex list`;
    if (e.code === 'Conflict') return `see its current state with annex status ${name}`;
    return undefined;
  };

export const getDetail = async (ctx: Context, name: string): Promise<AnnexDetail> => {
  const api = await ctx.api();
  return api
    .request<AnnexDetail>('GET', annexPath(name), { query: ctx.ownerQuery })
    .catch((e: unknown) => withHint(e, annexHint(name)));
};

/** A duration option, or its default. */
export const durationOption = (ctx: Context, name: string, fallbackSeconds?: number): number | undefined => {
  const text = ctx.string(name);
  return text === undefined ? fallbackSeconds : parseDuration(text, `--${name}`);
};

export const countOption = (ctx: Context): number => {
  const text = ctx.string('count');
  if (text === undefined) throw usageError(`annex ${ctx.command.name} needs --count N`);
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw usageError(`--count ${JSON.stringify(text)} must be a whole number of at least 1`);
  return Number(text);
};

const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;

/** A repeatable option whose values may also be comma-separated (`--type a --type b,c`). */
export const listOption = (ctx: Context, name: string): string[] => ctx.list(name).flatMap(splitList);

export const typesOption = (ctx: Context): string[] => {
  const types = listOption(ctx, 'type');
  for (const t of types) {
    if (!INSTANCE_TYPE.test(t))
      throw usageError(
        `--type ${JSON.stringify(t)} is not an EC2 instance type`,
        'for example m5.large or p2.xlarge',
      );
  }
  return types;
};

/** An idempotency key: --idempotency-key, else a new one for this run (reused by every retry). */
export const idempotencyKey = (ctx: Context): string => {
  const given = ctx.string('idempotency-key');
  if (given !== undefined) {
    if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(given)) {
      throw usageError('--idempotency-key must be 1-128 characters of A-Z a-z 0-9 _ . : -');
    }
    return given;
  }
  return `annex-cli-${crypto.randomUUID()}`;
};

/** Reads a file argument as UTF-8; `-` is stdin. */
export const readTextFile = async (ctx: Context, path: string, option: string): Promise<string> => {
  let bytes: Buffer;
  try {
    if (path === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of ctx.io.stdin)
        chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
      bytes = Buffer.concat(chunks);
    } else {
      bytes = readFileSync(path);
    }
  } catch (e) {
    throw usageError(`${option} ${path}: ${(e as Error).message}`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw usageError(`${option} ${path} is not UTF-8 text`);
  }
};

/** Asks on the terminal; true for yes. */
export const confirm = async (ctx: Context, question: string): Promise<boolean> => {
  const answer = (await ctx.ask(`${question} (Type 'yes' or 'no'): `)).trim().toLowerCase();
  return answer === 'yes' || answer === 'y';
};

export const interactive = (ctx: Context): boolean =>
  ctx.io.stdin.isTTY === true && ctx.io.stderr.isTTY === true;

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

const progressLine = (p: WaitProgress, ctx: Context): string => {
  const state = stateColour(p.detail.annex.state, ctx.out.errPaint);
  const counts =
    p.phase === 'launching'
      ? `${p.running}/${p.wanted} running`
      : `${p.running}/${p.wanted} running, ${p.joined}/${p.running} joined the pool`;
  return `${p.detail.annex.name}: ${state}, ${counts} (${formatSpan(p.elapsedMs / 1000)})`;
};

/**
 * Waits for the instances of a create or add, showing progress on stderr: one line redrawn in
 * place on a terminal, one line per change elsewhere; nothing with --json or --quiet.
 */
export const waitWithProgress = async (
  ctx: Context,
  name: string,
  wanted: number,
  before: ReadonlySet<string>,
): Promise<WaitResult> => {
  const timeoutMs = (durationOption(ctx, 'wait-timeout', 600) ?? 600) * 1000;
  const showing = !ctx.out.json && !ctx.out.quiet;
  const tty = showing && ctx.out.stderrIsTty;
  let latest: WaitProgress | undefined;
  let printed = '';
  let frame = 0;
  const draw = () => {
    if (latest === undefined) return;
    frame = (frame + 1) % SPINNER.length;
    ctx.out.raw(`\r\x1b[2K${ctx.out.errPaint.cyan(SPINNER[frame] ?? '')} ${progressLine(latest, ctx)}`);
  };
  const ticker = tty ? setInterval(draw, 120) : undefined;
  ticker?.unref();
  const onInterrupt = () => {
    if (tty) ctx.out.raw('\r\x1b[2K');
    ctx.io.stderr.write(
      `annex: stopped waiting; ${name} goes on (annex status ${name}, annex terminate ${name})\n`,
    );
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  try {
    return await waitForInstances(() => getDetail(ctx, name), {
      wanted,
      before,
      timeoutMs,
      onProgress: (p) => {
        latest = p;
        if (tty) draw();
        else if (showing) {
          const line = progressLine({ ...p, elapsedMs: 0 }, ctx).replace(/ \(0s\)$/, '');
          if (line !== printed) ctx.out.note(line);
          printed = line;
        }
      },
    });
  } finally {
    if (ticker !== undefined) clearInterval(ticker);
    if (tty) ctx.out.raw('\r\x1b[2K');
    process.removeListener('SIGINT', onInterrupt);
  }
};

export const HEARTBEAT_NOTE =
  'joining the pool is confirmed by heartbeats once the instance agent reports them (annex status shows them)';

/** The line printed after a wait. */
export const waitSummary = (result: WaitResult, wanted: number, verb: string): string => {
  const { annex } = result.detail;
  const count = result.given === undefined ? `${wanted}` : `${result.given} of ${wanted}`;
  const short =
    result.given === undefined
      ? ''
      : ` EC2 had no capacity for the rest (annex events ${annex.name} says why); the annex keeps what it got.`;
  return result.outcome === 'joined'
    ? `${annex.name}: ${count} instance(s) ${verb}, running, and joined the pool.${short}`
    : `${annex.name}: ${count} instance(s) ${verb} and running; ${HEARTBEAT_NOTE}.${short}`;
};
