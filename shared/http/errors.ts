/** The one place domain errors become HTTP responses. 5xx bodies never carry internals. */
import { AnnexError, type AnnexErrorCode } from '../domain/errors.ts';

const STATUS: Record<AnnexErrorCode, number> = {
  ValidationError: 400,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  LimitExceeded: 422,
  UpstreamUnavailable: 503,
  Internal: 500,
};

export interface ErrorBody {
  error: { code: string; message: string; field?: string; requestId?: string };
}

export const json = (statusCode: number, body: unknown, headers: Record<string, string> = {}) => ({
  statusCode,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

export const errorResponse = (e: unknown, requestId: string) => {
  if (e instanceof AnnexError) {
    const status = STATUS[e.code];
    if (status < 500) {
      const body: ErrorBody = {
        error: { code: e.code, message: e.message, ...(e.field === undefined ? {} : { field: e.field }) },
      };
      return json(status, body);
    }
    if (e.code === 'UpstreamUnavailable') {
      return json(
        status,
        {
          error: {
            code: e.code,
            message: 'a dependency is unavailable; retry with the same Idempotency-Key',
            requestId,
          },
        },
        { 'retry-after': '2' },
      );
    }
  }
  return json(500, { error: { code: 'Internal', message: 'internal error', requestId } } satisfies ErrorBody);
};
