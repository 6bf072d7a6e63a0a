import { describe, expect, it } from 'vitest';
import { CliError } from '../../../cli/src/errors.ts';
import { ApiClient } from '../../../cli/src/http.ts';

interface Seen {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
}

/** A fetch double: answers from a script, records what was sent. */
const scripted = (answers: (Response | Error)[]) => {
  const seen: Seen[] = [];
  const fake = (async (input: URL | string, init?: RequestInit) => {
    seen.push({
      url: String(input),
      method: String(init?.method),
      headers: init?.headers as Record<string, string>,
      ...(typeof init?.body === 'string' ? { body: init.body } : {}),
    });
    const next = answers.shift();
    if (next === undefined) throw new Error('no more answers');
    if (next instanceof Error) throw next;
    return next;
  }) as typeof fetch;
  return { fake, seen };
};

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

const networkError = (code: string) => Object.assign(new TypeError('fetch failed'), { cause: { code } });

const client = (fake: typeof fetch, endpoint = 'http://127.0.0.1:8787') =>
  new ApiClient({
    endpoint: new URL(endpoint),
    region: 'us-east-1',
    credentials: async () => ({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' }),
    fetch: fake,
    sleep: async () => undefined,
  });

const failure = async (p: Promise<unknown>): Promise<CliError> => {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    return e as CliError;
  }
  throw new Error('expected a failure');
};

describe('ApiClient', () => {
  it('sends a SigV4-signed JSON request for execute-api, without a host header of its own', async () => {
    const { fake, seen } = scripted([json(201, { annex: { name: 'a' } })]);
    await client(fake, 'http://127.0.0.1:8787/base/').request('POST', '/v1/annexes', {
      body: { name: 'a' },
      idempotencyKey: 'k-1',
      query: { owner: 'arn:aws:iam::123456789012:user/x', skip: undefined },
    });
    const [sent] = seen;
    expect(sent?.url).toBe(
      'http://127.0.0.1:8787/base/v1/annexes?owner=arn%3Aaws%3Aiam%3A%3A123456789012%3Auser%2Fx',
    );
    expect(sent?.body).toBe('{"name":"a"}');
    expect(sent?.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/execute-api\/aws4_request, SignedHeaders=.*host.*idempotency-key.*x-amz-date/,
    );
    expect(sent?.headers['idempotency-key']).toBe('k-1');
    expect(sent?.headers['x-amz-content-sha256']).toMatch(/^[0-9a-f]{64}$/);
    expect(sent?.headers.host).toBeUndefined();
  });

  it('retries a network failure with the same body and Idempotency-Key, so a create is never sent twice as two', async () => {
    const { fake, seen } = scripted([
      networkError('ECONNRESET'),
      json(503, { error: { code: 'UpstreamUnavailable', message: 'x' } }),
      json(201, {}),
    ]);
    await client(fake).request('POST', '/v1/annexes', { body: { name: 'a' }, idempotencyKey: 'same' });
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((s) => s.headers['idempotency-key']))).toEqual(new Set(['same']));
    expect(new Set(seen.map((s) => s.body))).toEqual(new Set(['{"name":"a"}']));
  });

  it('retries a 409 only after an attempt whose outcome was unknown', async () => {
    const conflict = () => json(409, { error: { code: 'Conflict', message: 'being written' } });
    const retried = scripted([networkError('ETIMEDOUT'), conflict(), json(201, { ok: true })]);
    expect(await client(retried.fake).request('POST', '/v1/annexes', { idempotencyKey: 'k' })).toEqual({
      ok: true,
    });
    const plain = scripted([conflict()]);
    expect((await failure(client(plain.fake).request('POST', '/v1/annexes'))).exitCode).toBe(4);
    expect(plain.seen).toHaveLength(1);
  });

  it('gives up after four attempts with one line that names the endpoint', async () => {
    const { fake, seen } = scripted([1, 2, 3, 4].map(() => networkError('ECONNREFUSED')));
    const e = await failure(client(fake).request('GET', '/v1/annexes'));
    expect(seen).toHaveLength(4);
    expect(e).toMatchObject({ code: 'Unreachable', exitCode: 1 });
    expect(e.message).toBe('cannot reach the Annex API at http://127.0.0.1:8787/ (ECONNREFUSED)');
  });

  it.each([
    [
      400,
      { error: { code: 'ValidationError', message: 'count: too big', field: 'count' } },
      2,
      'ValidationError',
    ],
    [404, { error: { code: 'NotFound', message: 'no annex named x' } }, 3, 'NotFound'],
    [409, { error: { code: 'Conflict', message: 'name taken' } }, 4, 'Conflict'],
    [422, { error: { code: 'LimitExceeded', message: 'too many' } }, 1, 'LimitExceeded'],
    [403, { message: 'Forbidden' }, 1, 'Forbidden'],
    [500, { error: { code: 'Internal', message: 'internal error', requestId: 'r-1' } }, 1, 'Internal'],
  ])('maps HTTP %i to exit code %i with the server’s code', async (status, body, exitCode, code) => {
    const { fake } = scripted([json(status, body)]);
    const e = await failure(client(fake).request('GET', '/v1/annexes/x'));
    expect(e).toMatchObject({ exitCode, code, status });
    if (status === 403) expect(e.hint).toContain('us-east-1');
    if (status === 500) expect(e.hint).toContain('r-1');
    if (status === 400) expect(e.field).toBe('count');
  });

  it('tells a refusal by the control plane from a refusal by API Gateway', async () => {
    const domain = scripted([
      json(403, {
        error: { code: 'Forbidden', message: 'only an administrator may register a shared pool' },
      }),
    ]);
    const e = await failure(client(domain.fake).request('PUT', '/v1/pools/p'));
    expect(e.message).toBe('only an administrator may register a shared pool');
    expect(e.hint).toBeUndefined();
    const gateway = scripted([json(403, { message: 'The request signature we calculated does not match' })]);
    const g = await failure(client(gateway.fake).request('GET', '/v1/pools'));
    expect(g.message).toBe(
      'the request was refused (HTTP 403: The request signature we calculated does not match)',
    );
    expect(g.hint).toContain('signing region (us-east-1)');
  });

  it('says so when the endpoint is not the Annex API', async () => {
    const html = scripted([new Response('<html>hi</html>', { status: 200 })]);
    expect((await failure(client(html.fake).request('GET', '/v1/annexes'))).code).toBe('BadResponse');
    const noRoute = scripted([json(404, { message: 'Not Found' })]);
    const e = await failure(client(noRoute.fake).request('GET', '/v1/annexes'));
    expect(e).toMatchObject({ code: 'NoSuchRoute', exitCode: 1 });
  });
});
