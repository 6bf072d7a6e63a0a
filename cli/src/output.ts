/**
 * Where things are printed. Results go to stdout (a table, or JSON with --json); progress and
 * prompts go to stderr; --quiet leaves only errors. Colours only on a terminal, never with
 * NO_COLOR or --no-color.
 */
import type { Io, OutStream } from './io.ts';
import type { Env } from './settings.ts';

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  noColor: boolean;
}

export interface Paint {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

const ansi = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;

const COLOURS: Paint = {
  bold: ansi(1, 22),
  dim: ansi(2, 22),
  red: ansi(31, 39),
  green: ansi(32, 39),
  yellow: ansi(33, 39),
  cyan: ansi(36, 39),
};

const identity = (s: string) => s;
const PLAIN: Paint = {
  bold: identity,
  dim: identity,
  red: identity,
  green: identity,
  yellow: identity,
  cyan: identity,
};

export const colourAllowed = (stream: OutStream, env: Env, noColor: boolean): boolean =>
  !noColor && stream.isTTY === true && (env.NO_COLOR ?? '') === '' && env.TERM !== 'dumb';

export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  /** Paint for stdout and for stderr (each is coloured only when it is a terminal). */
  readonly paint: Paint;
  readonly errPaint: Paint;
  /** Whether a --json result was printed (an error then adds no second document). */
  wroteData = false;
  private readonly io: Io;

  constructor(io: Io, options: OutputOptions) {
    this.io = io;
    this.json = options.json;
    this.quiet = options.quiet;
    this.paint = colourAllowed(io.stdout, io.env, options.noColor) ? COLOURS : PLAIN;
    this.errPaint = colourAllowed(io.stderr, io.env, options.noColor) ? COLOURS : PLAIN;
  }

  /** Human output on stdout (not with --json or --quiet). */
  print(text = ''): void {
    if (!this.json && !this.quiet) this.io.stdout.write(`${text}\n`);
  }

  /** The --json result on stdout (only with --json). */
  data(value: unknown): void {
    if (!this.json) return;
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    this.wroteData = true;
  }

  /** One JSON document per line, for --watch --json. */
  dataLine(value: unknown): void {
    if (!this.json) return;
    this.io.stdout.write(`${JSON.stringify(value)}\n`);
    this.wroteData = true;
  }

  /** Progress and notes on stderr (not with --json or --quiet). */
  note(text: string): void {
    if (!this.json && !this.quiet) this.io.stderr.write(`${text}\n`);
  }

  get stdoutIsTty(): boolean {
    return this.io.stdout.isTTY === true;
  }

  get stderrIsTty(): boolean {
    return this.io.stderr.isTTY === true;
  }

  get columns(): number | undefined {
    return this.io.stdout.isTTY === true ? this.io.stdout.columns : undefined;
  }

  /** Writes to stderr as is (spinner frames, prompts). */
  raw(text: string): void {
    this.io.stderr.write(text);
  }
}
