/**
 * The Annex API client: SigV4-signed JSON requests, retried after a network failure, a timeout or
 * a 429/502/503/504 with the same body and the same Idempotency-Key (so a retried create never
 * launches twice), and the server's `{ error: { code, message } }` turned into a CliError with
 * the matching exit code.
 */
import { signRequest, type CredentialSource } from './aws.ts';
import { CliError, EXIT, type ExitCode } from './errors.ts';

export interface ApiClientOptions {
  endpoint: URL;
  region: string;
  credentials: CredentialSource;
  /** Attempts per request (default 4). */
  maxAttempts?: number;
  /** Per attempt; API Gateway gives up after 30 s. */
  timeoutMs?: number;
  debug?: (line: string) => void;
  sleep?: (ms: number) => Promise<void>;
  fetch?: typeof fetch;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | undefined>;
  idempotencyKey?: string;
}

const RETRY_STATUS = new Set([429, 502, 503, 504]);
const EXIT_BY_STATUS: Record<number, ExitCode> = { 400: EXIT.usage, 404: EXIT.notFound, 409: EXIT.conflict };

const networkCode = (e: unknown): string => {
  const cause = (e as { cause?: { code?: unknown; name?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  const name = (e as { name?: unknown }).name;
  if (name === 'TimeoutError' || name === 'AbortError') return 'timeout';
  return typeof cause?.name === 'string' ? cause.name : 'network error';
};

interface ErrorBody {
  error?: { code?: unknown; message?: unknown; field?: unknown; requestId?: unknown };
  message?: unknown;
}

export class ApiClient {
  readonly endpoint: URL;
  readonly region: string;
  private readonly options: ApiClientOptions;

  constructor(options: ApiClientOptions) {
    this.options = options;
    this.endpoint = options.endpoint;
    this.region = options.region;
  }

  private url(path: string, query: RequestOptions['query']): URL {
    const url = new URL(this.endpoint.href);
    url.pathname = `${this.endpoint.pathname.replace(/\/+$/, '')}${path}`;
    for (const [key, value] of Object.entries(query ?? {}))
      if (value !== undefined) url.searchParams.set(key, value);
    return url;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const { maxAttempts = 4, timeoutMs = 35_000, debug, sleep = defaultSleep } = this.options;
    const doFetch = this.options.fetch ?? fetch;
    const url = this.url(path, options.query);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    const credentials = await this.options.credentials();

    // After an attempt whose outcome is unknown, a 409 may be the first attempt still finishing.
    let outcomeUnknown = false;
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= maxAttempts;
      const signed = await signRequest(
        { method, url, headers, ...(body === undefined ? {} : { body }) },
        credentials,
        this.region,
      );
      const started = Date.now();
      let response: Response;
      try {
        response = await doFetch(url, {
          method,
          headers: signed,
          ...(body === undefined ? {} : { body }),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (e) {
        const code = networkCode(e);
        debug?.(`${method} ${url.href} → ${code} (attempt ${attempt}/${maxAttempts})`);
        if (code === 'ENOTFOUND' || last) {
          throw new CliError(`cannot reach the Annex API at ${this.endpoint.href} (${code})`, {
            code: 'Unreachable',
            hint: 'check --endpoint, ANNEX_API_URL or the endpoint in annex configure',
            cause: e,
          });
        }
        outcomeUnknown = true;
        await sleep(backoff(attempt));
        continue;
      }
      const text = await response.text();
      debug?.(
        `${method} ${url.href} → ${response.status} in ${Date.now() - started} ms (attempt ${attempt}/${maxAttempts})`,
      );
      if (response.ok) return parseJson<T>(text, response, this.endpoint);

      const retry =
        !last && (RETRY_STATUS.has(response.status) || (response.status === 409 && outcomeUnknown));
      if (retry) {
        if (response.status !== 409) outcomeUnknown = true;
        await sleep(retryAfter(response) ?? backoff(attempt));
        continue;
      }
      throw errorFrom(response, text, this);
    }
  }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** 0.4 s, 0.8 s, 1.6 s … with jitter, capped at 5 s. */
const backoff = (attempt: number): number => Math.min(5000, 200 * 2 ** attempt) * (0.75 + Math.random() / 2);

const retryAfter = (response: Response): number | undefined => {
  const value = Number(response.headers.get('retry-after'));
  return Number.isFinite(value) && value > 0 ? Math.min(value, 5) * 1000 : undefined;
};

const parseJson = <T>(text: string, response: Response, endpoint: URL): T => {
  try {
    return (text === '' ? {} : JSON.parse(text)) as T;
  } catch {
    throw new CliError(
      `the endpoint ${endpoint.href} did not answer like the Annex API (HTTP ${response.status}, not JSON)`,
      {
        code: 'BadResponse',
        status: response.status,
        hint: 'check --endpoint, ANNEX_API_URL or the endpoint in annex configure',
      },
    );
  }
};

const HINTS: Record<string, string> = {
  NotFound: 'see your annexes with annex list',
  Conflict: 'see the annex’s current state with annex status',
  LimitExceeded: 'ask for fewer instances or a shorter lease, or ask an administrator to raise the limit',
  UpstreamUnavailable: 'AWS did not answer; run the same command again (it is safe to repeat)',
};

const errorFrom = (response: Response, text: string, client: ApiClient): CliError => {
  let body: ErrorBody = {};
  try {
    body = JSON.parse(text) as ErrorBody;
  } catch {
    // not JSON: described by the status below
  }
  const status = response.status;
  const error = body.error;
  const requestId = typeof error?.requestId === 'string' ? error.requestId : undefined;
  const field = typeof error?.field === 'string' ? error.field : undefined;
  if (status === 403 && typeof error?.code !== 'string') {
    // Refused by API Gateway before any handler ran: the signature or the IAM policy.
    const detail = typeof body.message === 'string' ? body.message : undefined;
    return new CliError(`the request was refused (HTTP 403${detail === undefined ? '' : `: ${detail}`})`, {
      code: 'Forbidden',
      status,
      hint: `check your AWS credentials and the signing region (${client.region}); your IAM identity needs execute-api:Invoke on the Annex API`,
    });
  }
  if (typeof error?.code !== 'string' || typeof error.message !== 'string') {
    const message = typeof body.message === 'string' ? body.message : response.statusText || 'no explanation';
    return new CliError(`the endpoint answered HTTP ${status}: ${message}`, {
      code: status === 404 ? 'NoSuchRoute' : `Http${status}`,
      status,
      hint:
        status === 404
          ? `is ${client.endpoint.href} the Annex API? check --endpoint, ANNEX_API_URL or annex configure`
          : 'run the same command again (it is safe to repeat)',
    });
  }
  const hint =
    error.code === 'Internal'
      ? `run the same command again; if it keeps failing, report request id ${requestId ?? 'unknown'}`
      : error.code === 'ValidationError'
        ? undefined
        : HINTS[error.code];
  return new CliError(error.message, {
    exitCode: EXIT_BY_STATUS[status] ?? EXIT.failure,
    code: error.code,
    status,
    ...(hint === undefined ? {} : { hint }),
    ...(field === undefined ? {} : { field }),
    ...(requestId === undefined ? {} : { requestId }),
  });
};
