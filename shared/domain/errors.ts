/**
 * The closed set of domain errors. Adapters translate AWS errors into these at the edge; the HTTP
 * layer maps them to status codes in exactly one place (shared/http/errors.ts).
 */
export type AnnexErrorCode =
  | 'ValidationError'
  | 'Forbidden'
  | 'NotFound'
  | 'Conflict'
  | 'LimitExceeded'
  | 'UpstreamUnavailable'
  | 'Internal';

export class AnnexError extends Error {
  readonly code: AnnexErrorCode;
  /** The request field the error is about (dotted path), when there is one. */
  readonly field?: string;

  constructor(code: AnnexErrorCode, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AnnexError';
    this.code = code;
    if (options?.field !== undefined) this.field = options.field;
  }
}

export const validationError = (field: string, message: string): AnnexError =>
  new AnnexError('ValidationError', `${field}: ${message}`, { field });

/** `field`: the request field that names what is missing (e.g. a pool named in a body). */
export const notFound = (message: string, field?: string): AnnexError =>
  new AnnexError('NotFound', message, field === undefined ? undefined : { field });

export const conflict = (message: string): AnnexError => new AnnexError('Conflict', message);

/** `field`: the request field a policy refuses, when there is one. */
export const forbidden = (message: string, field?: string): AnnexError =>
  new AnnexError('Forbidden', message, field === undefined ? undefined : { field });

/** `field`: the request field a configured limit refuses, when there is one. */
export const limitExceeded = (message: string, field?: string): AnnexError =>
  new AnnexError('LimitExceeded', message, field === undefined ? undefined : { field });

export const upstreamUnavailable = (message: string, cause?: unknown): AnnexError =>
  new AnnexError('UpstreamUnavailable', message, { cause });

export const isAnnexError = (e: unknown, code?: AnnexErrorCode): e is AnnexError =>
  e instanceof AnnexError && (code === undefined || e.code === code);
