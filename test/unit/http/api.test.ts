import type { Context } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AnnexError } from '../../../shared/domain/errors.ts';
import {
  callerFrom,
  route,
  type ApiRequest,
  type ApiResponse,
  type Event,
} from '../../../shared/http/api.ts';
import { CreateAnnexBody, NamePath } from '../../../shared/http/schemas.ts';

const ALICE = 'arn:aws:iam::123456789012:user/alice';
const ADMIN = 'arn:aws:iam::123456789012:role/annex-admin';
// Admins sign as a session of the admin role; no role's sessions are owned one by one here.
const ADMIN_SESSION = 'arn:aws:sts::123456789012:assumed-role/annex-admin/carol';
const ADMINS = { adminArns: [ADMIN], sessionOwnedRoles: [] };

const VALID_BODY = { name: 'burst', count: 2, instanceTypes: ['m5.large'] };

interface EventOptions {
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
  userArn?: string | null;
  pathParameters?: Record<string, string>;
}

const eventFor = ({
  body = VALID_BODY,
  rawBody,
  headers = {},
  userArn = ALICE,
  pathParameters,
}: EventOptions = {}): Event => {
  const event = {
    version: '2.0',
    routeKey: 'POST /annexes',
    rawPath: '/annexes',
    rawQueryString: '',
    headers: { 'content-type': 'application/json', ...headers },
    body: rawBody ?? JSON.stringify(body),
    isBase64Encoded: false,
    ...(pathParameters === undefined ? {} : { pathParameters }),
    requestContext: {
      accountId: '123456789012',
      apiId: 'api0123456',
      domainName: 'api0123456.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'api0123456',
      http: {
        method: 'POST',
        path: '/annexes',
        protocol: 'HTTP/1.1',
        sourceIp: '192.0.2.1',
        userAgent: 'test',
      },
      requestId: 'apigw-request-1',
      routeKey: 'POST /annexes',
      stage: '$default',
      time: '01/Jan/2030:00:00:00 +0000',
      timeEpoch: 1893456000000,
      ...(userArn === null
        ? {}
        : {
            authorizer: {
              iam: {
                accessKey: 'AKIDEXAMPLE',
                accountId: '123456789012',
                callerId: 'AIDAEXAMPLE',
                cognitoIdentity: null,
                principalOrgId: 'o-example',
                userArn,
                userId: 'AIDAEXAMPLE',
              },
            },
          }),
    },
  };
  return event as Event;
};

const context = (): Context => ({
  callbackWaitsForEmptyEventLoop: false,
  functionName: 'annex-test-annex-create',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:annex-test-annex-create',
  memoryLimitInMB: '256',
  awsRequestId: 'lambda-request-1',
  logGroupName: '/aws/lambda/annex-test-annex-create',
  logStreamName: '2030/01/01/[$LATEST]0123',
  getRemainingTimeInMillis: () => 30_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
});

type CreateRequest = ApiRequest<ReturnType<typeof CreateAnnexBody.parse>, undefined, undefined>;

const bodyOf = (result: { body?: string }) => JSON.parse(result.body ?? 'null') as Record<string, never>;

describe('route', () => {
  let logged: string[];

  beforeEach(() => {
    logged = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(String(chunk));
      return true;
    });
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  const createHandler = (fn: (req: CreateRequest) => Promise<ApiResponse>) =>
    route({ body: CreateAnnexBody }, () => ADMINS, fn);

  const accepted = async (req: CreateRequest): Promise<ApiResponse> => ({
    status: 201,
    body: { name: req.body.name },
  });

  const failingWith = (error: unknown) => createHandler(async () => Promise.reject(error));

  it('passes validated input, the caller and the request id to the function and returns its JSON', async () => {
    // Prepare
    const fn = vi.fn(accepted);
    const handler = createHandler(fn);

    // Act
    const result = await handler(eventFor({ headers: { 'idempotency-key': 'retry-1' } }), context());

    // Assess
    expect(result).toMatchObject({
      statusCode: 201,
      headers: { 'content-type': 'application/json' },
    });
    expect(bodyOf(result)).toEqual({ name: 'burst' });
    expect(fn).toHaveBeenCalledOnce();
    expect(fn.mock.calls[0]?.[0]).toMatchObject({
      caller: { principalArn: ALICE, sessionArn: ALICE, admin: false },
      body: VALID_BODY,
      idempotencyKey: 'retry-1',
      requestId: 'lambda-request-1',
    });
  });

  it('decodes a base64-encoded body', async () => {
    // Prepare
    const fn = vi.fn(accepted);
    const event = {
      ...eventFor(),
      body: Buffer.from(JSON.stringify(VALID_BODY)).toString('base64'),
      isBase64Encoded: true,
    };

    // Act
    const result = await createHandler(fn)(event, context());

    // Assess
    expect(result.statusCode).toBe(201);
    expect(fn.mock.calls[0]?.[0].body).toEqual(VALID_BODY);
  });

  it('refuses a request without an IAM identity with 403 and never calls the function', async () => {
    // Prepare
    const fn = vi.fn(accepted);

    // Act
    const result = await createHandler(fn)(eventFor({ userArn: null }), context());

    // Assess
    expect(result.statusCode).toBe(403);
    expect(bodyOf(result)).toMatchObject({ error: { code: 'Forbidden' } });
    expect(fn).not.toHaveBeenCalled();
  });

  it('refuses a request whose IAM identity has an empty ARN with 403', async () => {
    // Act
    const result = await createHandler(accepted)(eventFor({ userArn: '' }), context());

    // Assess
    expect(result.statusCode).toBe(403);
    expect(bodyOf(result)).toMatchObject({ error: { code: 'Forbidden' } });
  });

  it('refuses a body that is not JSON with 400 on field body', async () => {
    // Prepare
    const fn = vi.fn(accepted);

    // Act
    const result = await createHandler(fn)(eventFor({ rawBody: '{"name": "burst",' }), context());

    // Assess
    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ error: { code: 'ValidationError', field: 'body' } });
    expect(fn).not.toHaveBeenCalled();
  });

  it('refuses a JSON body that is not an object with 400 on field body', async () => {
    // Act
    const result = await createHandler(accepted)(eventFor({ body: [VALID_BODY] }), context());

    // Assess
    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ error: { field: 'body' } });
  });

  it('refuses an unknown field with 400 naming it', async () => {
    // Act
    const result = await createHandler(accepted)(
      eventFor({ body: { ...VALID_BODY, spotPrice: '0.10' } }),
      context(),
    );

    // Assess
    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ error: { code: 'ValidationError', field: 'spotPrice' } });
  });

  it.each([0, 1001, 1.5, '2', null])('refuses count %j with 400 on field count', async (count) => {
    // Act
    const result = await createHandler(accepted)(eventFor({ body: { ...VALID_BODY, count } }), context());

    // Assess
    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ error: { code: 'ValidationError', field: 'count' } });
  });

  it('names the nested field of a bad value', async () => {
    // Act
    const result = await createHandler(accepted)(
      eventFor({ body: { ...VALID_BODY, instanceTypes: ['m5.large', 'M5 LARGE'] } }),
      context(),
    );

    // Assess
    expect(bodyOf(result)).toMatchObject({ error: { field: 'instanceTypes.1' } });
  });

  it.each(['has space', 'x'.repeat(129), 'semi;colon', 'ünïcode'])(
    'refuses Idempotency-Key %j with 400 on field Idempotency-Key',
    async (key) => {
      // Prepare
      const fn = vi.fn(accepted);

      // Act
      const result = await createHandler(fn)(eventFor({ headers: { 'Idempotency-Key': key } }), context());

      // Assess
      expect(result.statusCode).toBe(400);
      expect(bodyOf(result)).toMatchObject({ error: { code: 'ValidationError', field: 'Idempotency-Key' } });
      expect(fn).not.toHaveBeenCalled();
    },
  );

  it('reads the Idempotency-Key header whatever its case', async () => {
    // Prepare
    const fn = vi.fn(accepted);

    // Act
    await createHandler(fn)(eventFor({ headers: { 'IDEMPOTENCY-KEY': 'a.b:c-d_e' } }), context());

    // Assess
    expect(fn.mock.calls[0]?.[0].idempotencyKey).toBe('a.b:c-d_e');
  });

  it('validates path parameters and names the bad one', async () => {
    // Prepare
    const handler = route(
      { path: NamePath },
      () => ADMINS,
      async (req) => ({ status: 200, body: req.path }),
    );

    // Act
    const good = await handler(eventFor({ pathParameters: { name: 'burst' } }), context());
    const bad = await handler(eventFor({ pathParameters: { name: '.hidden' } }), context());

    // Assess
    expect(good.statusCode).toBe(200);
    expect(bodyOf(good)).toEqual({ name: 'burst' });
    expect(bad.statusCode).toBe(400);
    expect(bodyOf(bad)).toMatchObject({ error: { field: 'name' } });
  });

  it.each([
    ['NotFound', 404],
    ['Conflict', 409],
    ['LimitExceeded', 422],
    ['Forbidden', 403],
  ] as const)('maps a %s from the function to %i with its message', async (code, status) => {
    // Act
    const result = await failingWith(new AnnexError(code, `annex burst: ${code}`))(eventFor(), context());

    // Assess
    expect(result.statusCode).toBe(status);
    expect(bodyOf(result)).toEqual({ error: { code, message: `annex burst: ${code}` } });
  });

  it('maps a ValidationError from the function to 400 with its field', async () => {
    // Act
    const result = await failingWith(new AnnexError('ValidationError', 'too long', { field: 'expiresAt' }))(
      eventFor(),
      context(),
    );

    // Assess
    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ error: { code: 'ValidationError', field: 'expiresAt' } });
  });

  it('maps UpstreamUnavailable to 503 with a retry hint and without the original message', async () => {
    // Prepare
    const error = new AnnexError(
      'UpstreamUnavailable',
      'the lease table is unavailable (arn:aws:dynamodb:...)',
      {
        cause: new Error('ProvisionedThroughputExceededException'),
      },
    );

    // Act
    const result = await failingWith(error)(eventFor(), context());

    // Assess
    expect(result.statusCode).toBe(503);
    expect(result.headers).toMatchObject({ 'retry-after': expect.any(String) });
    expect(bodyOf(result)).toMatchObject({
      error: { code: 'UpstreamUnavailable', requestId: 'lambda-request-1' },
    });
    expect(result.body).not.toContain('lease table');
    expect(result.body).not.toContain('ProvisionedThroughput');
  });

  it('maps an unexpected error to 500 without its message', async () => {
    // Act
    const result = await failingWith(new Error('secret internals'))(eventFor(), context());

    // Assess
    expect(result.statusCode).toBe(500);
    expect(bodyOf(result)).toMatchObject({ error: { code: 'Internal', requestId: 'lambda-request-1' } });
    expect(result.body).not.toContain('secret internals');
  });

  it('maps an AnnexError Internal to 500 without its message', async () => {
    // Act
    const result = await failingWith(new AnnexError('Internal', 'secret internals'))(eventFor(), context());

    // Assess
    expect(result.statusCode).toBe(500);
    expect(result.body).not.toContain('secret internals');
  });

  it('logs one JSON line for a refused request', async () => {
    // Act
    await createHandler(accepted)(eventFor({ userArn: null }), context());

    // Assess
    const lines = logged.join('').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      level: 'info',
      requestId: 'lambda-request-1',
      status: 403,
    });
  });

  it('marks the caller admin only when its owner identity is in the admin list', async () => {
    // Prepare
    const fn = vi.fn(accepted);
    const handler = createHandler(fn);
    const notAdmin = 'arn:aws:sts::123456789012:assumed-role/annex-admin-not/carol';

    // Act
    await handler(eventFor({ userArn: ADMIN_SESSION }), context());
    await handler(eventFor({ userArn: notAdmin }), context());
    await handler(eventFor({ userArn: ALICE }), context());

    // Assess
    expect(fn.mock.calls.map(([req]) => req.caller)).toEqual([
      { principalArn: ADMIN, sessionArn: ADMIN_SESSION, admin: true },
      { principalArn: 'arn:aws:iam::123456789012:role/annex-admin-not', sessionArn: notAdmin, admin: false },
      { principalArn: ALICE, sessionArn: ALICE, admin: false },
    ]);
  });

  it('refuses a federated user with 403 before the function runs', async () => {
    // Prepare
    const fn = vi.fn(accepted);
    const handler = createHandler(fn);

    // Act
    const result = await handler(
      eventFor({ userArn: 'arn:aws:sts::123456789012:federated-user/alice' }),
      context(),
    );

    // Assess
    expect(result.statusCode).toBe(403);
    expect(bodyOf(result)).toMatchObject({ error: { code: 'Forbidden' } });
    expect(fn).not.toHaveBeenCalled();
  });
});

describe('callerFrom', () => {
  it('is never admin when the admin list is empty', () => {
    // Act
    const caller = callerFrom(eventFor({ userArn: ADMIN_SESSION }), { adminArns: [], sessionOwnedRoles: [] });

    // Assess
    expect(caller).toEqual({ principalArn: ADMIN, sessionArn: ADMIN_SESSION, admin: false });
  });

  it('throws Forbidden without an identity', () => {
    // Act
    const act = () => callerFrom(eventFor({ userArn: null }), ADMINS);

    // Assess
    expect(act).toThrow(expect.objectContaining({ code: 'Forbidden' }));
  });
});
