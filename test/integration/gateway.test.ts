import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { APIGatewayProxyEventV2WithIAMAuthorizer, Context } from 'aws-lambda';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defaultDevUsers, type DevUser } from '../../scripts/devstack/dev-users.ts';
import {
  readHttpRoutes,
  signedFetch,
  startGateway,
  type Gateway,
  type GatewayEvent,
  type GatewayHandler,
} from '../../scripts/devstack/gateway.ts';

const region = 'us-east-1';
const users = defaultDevUsers();
const alice = users.find((user) => user.name === 'alice') as DevUser;
const admin = users.find((user) => user.name === 'admin') as DevUser;

interface Invocation {
  handlerPath: string;
  event: APIGatewayProxyEventV2WithIAMAuthorizer;
  context: Context;
}

let gateway: Gateway;
let invocations: Invocation[];
let logLines: string[];
let respond: (event: GatewayEvent) => unknown;

beforeAll(async () => {
  gateway = await startGateway({
    users,
    region,
    log: (line) => logLines.push(line),
    // A fake for every route, so the gateway is tested alone: it records what a handler would see.
    loadHandler: async (handlerPath) => {
      const handler: GatewayHandler = async (event, context) => {
        invocations.push({ handlerPath, event: event as APIGatewayProxyEventV2WithIAMAuthorizer, context });
        return respond(event);
      };
      return handler;
    },
  });
});

afterAll(async () => {
  await gateway.stop();
});

beforeEach(() => {
  invocations = [];
  logLines = [];
  respond = () => ({
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ok: true }),
  });
});

const sign = (
  user: Pick<DevUser, 'accessKeyId' | 'secretAccessKey'>,
  request: { method: string; path: string; query?: Record<string, string>; body?: string },
  options: { applyChecksum?: boolean; service?: string; region?: string; signingDate?: Date } = {},
) => {
  const url = new URL(gateway.url);
  return new SignatureV4({
    service: options.service ?? 'execute-api',
    region: options.region ?? region,
    credentials: { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey },
    sha256: Sha256,
    applyChecksum: options.applyChecksum ?? true,
  }).sign(
    new HttpRequest({
      method: request.method,
      hostname: url.hostname,
      port: Number(url.port),
      path: request.path,
      query: request.query ?? {},
      headers: { host: url.host, 'content-type': 'application/json' },
      body: request.body,
    }),
    options.signingDate === undefined ? {} : { signingDate: options.signingDate },
  );
};

const sendSigned = (signed: Awaited<ReturnType<typeof sign>>, body?: string) => {
  const { host: _host, ...headers } = signed.headers;
  const query = new URLSearchParams(signed.query as Record<string, string>).toString();
  return fetch(`${gateway.url}${signed.path}${query === '' ? '' : `?${query}`}`, {
    method: signed.method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
};

const get = (path: string, user: DevUser = alice, extra: { signingDate?: Date } = {}) =>
  signedFetch(`${gateway.url}${path}`, { ...user, region, ...extra });

async function expectForbidden(response: Response): Promise<void> {
  expect(response.status).toBe(403);
  expect(await response.json()).toEqual({ message: 'Forbidden' });
  expect(invocations).toEqual([]);
}

describe('routes', () => {
  it('come from serverless.yml functions and their httpApi events', () => {
    const routes = readHttpRoutes();
    expect(routes.map((route) => route.routeKey)).toContain('GET /v1/pools');
    expect(routes.find((route) => route.routeKey === 'PUT /v1/pools/{pool}')).toMatchObject({
      functionName: 'poolsPut',
      handler: 'handlers/pools-put.handler',
      authorizer: 'aws_iam',
      timeoutSeconds: 28,
      memorySize: 512,
    });
    expect(gateway.routes).toEqual(routes);
  });

  it('answers an unknown route with API Gateway’s 404 {"message":"Not Found"} and invokes nothing', async () => {
    const response = await get('/v1/nowhere');

    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ message: 'Not Found' });
    expect(invocations).toEqual([]);
  });

  it('matches a path template and URL-decodes its parameters', async () => {
    const response = await signedFetch(`${gateway.url}/v1/pools/my%20pool%2Fx`, {
      ...alice,
      region,
      method: 'PUT',
      body: '{}',
    });

    expect(response.status).toBe(200);
    expect(invocations[0]?.event.routeKey).toBe('PUT /v1/pools/{pool}');
    expect(invocations[0]?.event.pathParameters).toEqual({ pool: 'my pool/x' });
    expect(invocations[0]?.event.rawPath).toBe('/v1/pools/my%20pool%2Fx');
  });
});

describe('AWS_IAM authorization', () => {
  it('passes a signed request to the handler with the caller’s identity', async () => {
    const response = await get('/v1/pools');

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
    expect(invocations).toHaveLength(1);
    const { handlerPath, event } = invocations[0] as Invocation;
    expect(handlerPath).toBe('handlers/pools-list.handler');
    expect(event.requestContext.authorizer.iam).toEqual({
      accessKey: alice.accessKeyId,
      accountId: '123456789012',
      callerId: expect.stringMatching(/^AIDA/),
      cognitoIdentity: null,
      principalOrgId: null,
      userArn: 'arn:aws:iam::123456789012:user/alice',
      userId: expect.stringMatching(/^AIDA/),
    });
  });

  it('tells users apart by their keys', async () => {
    await get('/v1/pools', admin);

    expect(invocations[0]?.event.requestContext.authorizer.iam.userArn).toBe(admin.principalArn);
  });

  it('rejects an unsigned request', async () => {
    await expectForbidden(await fetch(`${gateway.url}/v1/pools`));
  });

  it('rejects a request signed with the wrong secret', async () => {
    await expectForbidden(await get('/v1/pools', { ...alice, secretAccessKey: `${alice.secretAccessKey}x` }));
  });

  it('rejects an unknown access key', async () => {
    await expectForbidden(await get('/v1/pools', { ...alice, accessKeyId: 'AKIAUNKNOWN000000000' }));
  });

  it('rejects a signature older than 15 minutes', async () => {
    const stale = new Date(Date.now() - 16 * 60 * 1000);
    await expectForbidden(await get('/v1/pools', alice, { signingDate: stale }));
  });

  it('rejects a signature dated more than 15 minutes ahead', async () => {
    const ahead = new Date(Date.now() + 16 * 60 * 1000);
    await expectForbidden(await get('/v1/pools', alice, { signingDate: ahead }));
  });

  it('accepts a clock 14 minutes behind', async () => {
    const response = await get('/v1/pools', alice, { signingDate: new Date(Date.now() - 14 * 60 * 1000) });

    expect(response.status).toBe(200);
  });

  it('rejects a signature scoped to another region or service', async () => {
    const path = '/v1/pools';
    await expectForbidden(
      await sendSigned(await sign(alice, { method: 'GET', path }, { region: 'eu-west-1' })),
    );
    await expectForbidden(await sendSigned(await sign(alice, { method: 'GET', path }, { service: 'ec2' })));
  });

  it('rejects a tampered body when the payload hash header is signed', async () => {
    const path = '/v1/pools/gpu';
    const signed = await sign(alice, { method: 'PUT', path, body: '{"count":1}' });
    expect(signed.headers['x-amz-content-sha256']).toBeDefined();

    await expectForbidden(await sendSigned(signed, '{"count":9}'));
  });

  it('rejects a tampered body when only the signature covers it (as curl signs)', async () => {
    const path = '/v1/pools/gpu';
    const signed = await sign(alice, { method: 'PUT', path, body: '{"count":1}' }, { applyChecksum: false });
    expect(signed.headers['x-amz-content-sha256']).toBeUndefined();

    await expectForbidden(await sendSigned(signed, '{"count":9}'));
  });

  it('rejects a tampered query string', async () => {
    const signed = await sign(alice, { method: 'GET', path: '/v1/annexes', query: { owner: 'alice' } });
    signed.query = { owner: 'bob' };

    await expectForbidden(await sendSigned(signed));
  });

  it('says nothing about why it refused, but logs it', async () => {
    const response = await get('/v1/pools', { ...alice, secretAccessKey: 'wrong' });

    expect(await response.text()).toBe('{"message":"Forbidden"}');
    expect(logLines.join('\n')).toContain('signature mismatch');
    expect(logLines.join('\n')).not.toContain(alice.secretAccessKey);
  });

  it('accepts a request signed by curl --aws-sigv4 with a JSON body and a query string', async () => {
    const body = JSON.stringify({ name: 'gpu', count: 2 });
    const { stdout } = await promisify(execFile)('curl', [
      '--silent',
      '--show-error',
      '--write-out',
      '\n%{http_code}',
      '--aws-sigv4',
      `aws:amz:${region}:execute-api`,
      '--user',
      `${alice.accessKeyId}:${alice.secretAccessKey}`,
      '--request',
      'PUT',
      '--header',
      'content-type: application/json',
      '--data-binary',
      body,
      // curl 7.88 signs the query string as written: it must already be in SigV4 canonical form
      // (keys sorted, RFC 3986 encoding), as it must for API Gateway itself.
      `${gateway.url}/v1/pools/gpu?dryRun=true&region=us-east-1`,
    ]);

    expect(stdout.split('\n').at(-1)).toBe('200');
    const { event } = invocations[0] as Invocation;
    expect(event.routeKey).toBe('PUT /v1/pools/{pool}');
    expect(event.body).toBe(body);
    expect(event.isBase64Encoded).toBe(false);
    expect(event.queryStringParameters).toEqual({ dryRun: 'true', region: 'us-east-1' });
    expect(event.rawQueryString).toBe('dryRun=true&region=us-east-1');
    expect(event.pathParameters).toEqual({ pool: 'gpu' });
    expect(event.requestContext.authorizer.iam.userArn).toBe(alice.principalArn);
  });
});

describe('Lambda event and context', () => {
  it('is a payload 2.0 event with lower-case headers and joined repeated query parameters', async () => {
    await signedFetch(`${gateway.url}/v1/annexes?state=live&limit=5&state=ended`, {
      ...alice,
      region,
      headers: { 'X-Custom': 'Yes' },
    });

    const { event } = invocations[0] as Invocation;
    expect(event).toMatchObject({
      version: '2.0',
      routeKey: 'GET /v1/annexes',
      rawPath: '/v1/annexes',
      rawQueryString: 'state=live&limit=5&state=ended',
      queryStringParameters: { state: 'live,ended', limit: '5' },
      isBase64Encoded: false,
      requestContext: {
        accountId: '123456789012',
        http: { method: 'GET', path: '/v1/annexes', sourceIp: '127.0.0.1' },
        routeKey: 'GET /v1/annexes',
        stage: '$default',
      },
    });
    expect(event.headers['x-custom']).toBe('Yes');
    expect(event.body).toBeUndefined();
    expect(event.pathParameters).toBeUndefined();
    expect(event.requestContext.requestId).not.toBe('');
    expect(Math.abs(event.requestContext.timeEpoch - Date.now())).toBeLessThan(10_000);
  });

  it('base64-encodes a body that is not UTF-8 text', async () => {
    const bytes = new Uint8Array([0xff, 0xfe, 0x00, 0x80]);
    await signedFetch(`${gateway.url}/v1/annexes`, { ...alice, region, method: 'POST', body: bytes });

    const { event } = invocations[0] as Invocation;
    expect(event.isBase64Encoded).toBe(true);
    expect(Buffer.from(event.body ?? '', 'base64')).toEqual(Buffer.from(bytes));
  });

  it('gives the handler a Lambda context named after the function and its timeout', async () => {
    await get('/v1/pools');

    const { context } = invocations[0] as Invocation;
    expect(context.functionName).toBe('annex-dev-poolsList');
    expect(context.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(context.memoryLimitInMB).toBe('512');
    expect(context.getRemainingTimeInMillis()).toBeGreaterThan(27_000);
    expect(context.getRemainingTimeInMillis()).toBeLessThanOrEqual(28_000);
  });
});

describe('handler results', () => {
  it('writes status, headers, cookies and a base64 body back', async () => {
    respond = () => ({
      statusCode: 201,
      headers: { 'Content-Type': 'application/octet-stream', 'x-count': 3 },
      cookies: ['a=1', 'b=2'],
      body: Buffer.from([1, 2, 3]).toString('base64'),
      isBase64Encoded: true,
    });

    const response = await get('/v1/pools');

    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toBe('application/octet-stream');
    expect(response.headers.get('x-count')).toBe('3');
    expect(response.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
  });

  it('sends a result without statusCode as a 200 JSON body, as API Gateway does', async () => {
    respond = () => ({ items: [] });

    const response = await get('/v1/pools');

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual({ items: [] });
  });

  it('refuses a body over API Gateway’s 10 MB limit with 413, without invoking the handler', async () => {
    const response = await signedFetch(`${gateway.url}/v1/annexes`, {
      ...alice,
      region,
      method: 'POST',
      body: 'x'.repeat(10 * 1024 * 1024 + 1),
    });

    expect(response.status).toBe(413);
    expect(invocations).toEqual([]);
  });

  it('answers 500 without detail when the handler throws, and logs the error', async () => {
    respond = () => {
      throw new Error('secret internals');
    };

    const response = await get('/v1/pools');

    expect(response.status).toBe(500);
    expect(await response.text()).toBe('{"message":"Internal Server Error"}');
    expect(logLines.join('\n')).toContain('secret internals');
  });
});
