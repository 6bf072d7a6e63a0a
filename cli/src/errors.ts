/**
 * The CLI's one error type and its exit codes. Every failure ends as one line on stderr:
 * `annex: <Code>: <message> (hint: <what to do>)`, and with --json also as an object on stdout.
 */

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface CliErrorOptions {
  exitCode?: ExitCode;
  /** The server's error code (`Conflict`, `NotFound`, …) or the CLI's own (`Usage`, `NoCredentials`, …). */
  code?: string;
  hint?: string;
  status?: number;
  requestId?: string;
  field?: string;
  cause?: unknown;
}

export class CliError extends Error {
  readonly exitCode: ExitCode;
  readonly code: string;
  readonly hint?: string;
  readonly status?: number;
  readonly requestId?: string;
  readonly field?: string;

  constructor(message: string, options: CliErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = options.exitCode ?? EXIT.failure;
    this.code = options.code ?? 'Error';
    if (options.hint !== undefined) this.hint = options.hint;
    if (options.status !== undefined) this.status = options.status;
    if (options.requestId !== undefined) this.requestId = options.requestId;
    if (options.field !== undefined) this.field = options.field;
  }
}

/** A mistake on the command line: exit 2, nothing was sent. */
export const usageError = (message: string, hint?: string): CliError =>
  new CliError(message, { exitCode: EXIT.usage, code: 'Usage', ...(hint === undefined ? {} : { hint }) });

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ').trim();

/** The single stderr line for an error. */
export const errorLine = (e: CliError): string =>
  `annex: ${e.code}: ${oneLine(e.message)}${e.hint === undefined ? '' : ` (hint: ${oneLine(e.hint)})`}`;

/** The --json form of an error (printed on stdout; the line still goes to stderr). */
export const errorJson = (e: CliError) => ({
  error: {
    code: e.code,
    message: oneLine(e.message),
    exitCode: e.exitCode,
    ...(e.hint === undefined ? {} : { hint: oneLine(e.hint) }),
    ...(e.status === undefined ? {} : { status: e.status }),
    ...(e.field === undefined ? {} : { field: e.field }),
    ...(e.requestId === undefined ? {} : { requestId: e.requestId }),
  },
});

/** Anything thrown that is not a CliError is a bug or an unexpected failure: exit 1, message kept. */
export const asCliError = (e: unknown): CliError =>
  e instanceof CliError
    ? e
    : new CliError(e instanceof Error ? e.message : String(e), { code: 'Unexpected', cause: e });
