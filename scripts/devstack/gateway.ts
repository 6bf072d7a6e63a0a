// A thin local stand-in for API Gateway (HTTP API, payload 2.0, AWS_IAM auth) in front of the real
// handlers. Routes come from serverless.yml. For aws_iam routes it verifies the SigV4 signature as
// API Gateway does, against the dev users' keys, before any handler runs; then it builds the
// Lambda event and context, invokes the handler and writes its result back.
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import type {
  APIGatewayEventRequestContextIAMAuthorizer,
  APIGatewayEventRequestContextV2,
  APIGatewayProxyEventV2,
  APIGatewayProxyEventV2WithIAMAuthorizer,
  APIGatewayProxyResultV2,
  Context,
  Handler,
} from 'aws-lambda';
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { NodeSha256 } from '../../cli/src/sha256.ts';
import type { DevUser } from './dev-users.ts';
import { asInvocationOf } from './invocation.ts';
import { defaultServerlessYmlPath, readServerlessYml, repoRoot } from './serverless-config.ts';

export type { DevUser } from './dev-users.ts';

/** What a route's handler receives: with `requestContext.authorizer.iam` on aws_iam routes. */
export type GatewayEvent = APIGatewayProxyEventV2WithIAMAuthorizer | APIGatewayProxyEventV2;
export type GatewayHandler = Handler<GatewayEvent, APIGatewayProxyResultV2<unknown>>;
/** Loads a serverless.yml `handler` string such as `handlers/pools-put.handler`. */
export type HandlerLoader = (handlerPath: string) => Promise<GatewayHandler>;

export interface HttpRoute {
  /** The function's key under `functions` in serverless.yml. */
  functionName: string;
  /** The serverless.yml handler string, e.g. `handlers/pools-put.handler`. */
  handler: string;
  /** Upper-case method, or `*` for any. */
  method: string;
  /** Path template, e.g. `/v1/annexes/{name}`. */
  path: string;
  routeKey: string;
  authorizer: 'aws_iam' | 'none';
  timeoutSeconds: number;
  memorySize: number;
}

export interface GatewayOptions {
  port?: number;
  host?: '127.0.0.1';
  users: readonly DevUser[];
  region: string;
  /** Defaults to importing `<repo>/<module>.ts` and taking the named export. */
  loadHandler?: HandlerLoader;
  log?: (line: string) => void;
  /** Stage used in function names in the Lambda context; default `dev`. */
  stage?: string;
  serverlessYmlPath?: string;
}

export interface Gateway {
  url: string;
  routes: readonly HttpRoute[];
  /** Makes another caller known from now on (say, an instance's temporary credentials). */
  addUser(user: DevUser): void;
  stop(): Promise<void>;
}

const accountId = '123456789012';
const service = 'execute-api';
const maxClockSkewMs = 15 * 60 * 1000;
const maxBodyBytes = 10 * 1024 * 1024; // API Gateway's payload limit

// ---------------------------------------------------------------------------------------------
// Routes

const httpApiEvent = z.union([
  z.string(),
  z.object({
    method: z.string(),
    path: z.string(),
    authorizer: z.union([z.string(), z.object({ type: z.string().optional() }).passthrough()]).optional(),
  }),
]);
const serverlessFunctions = z.object({
  service: z.string(),
  provider: z
    .object({ timeout: z.coerce.number().optional(), memorySize: z.coerce.number().optional() })
    .passthrough(),
  functions: z.record(
    z.string(),
    z
      .object({
        handler: z.string(),
        timeout: z.coerce.number().optional(),
        memorySize: z.coerce.number().optional(),
        events: z.array(z.record(z.string(), z.unknown())).optional(),
      })
      .passthrough(),
  ),
});

/** The HTTP routes declared in serverless.yml (`functions.*.events[].httpApi`). */
export function readHttpRoutes(serverlessYmlPath: string = defaultServerlessYmlPath): HttpRoute[] {
  const config = serverlessFunctions.parse(readServerlessYml(serverlessYmlPath));
  const routes: HttpRoute[] = [];
  for (const [functionName, fn] of Object.entries(config.functions)) {
    for (const event of fn.events ?? []) {
      if (!('httpApi' in event)) continue;
      const httpApi = httpApiEvent.parse(event.httpApi);
      const [method, path] =
        typeof httpApi === 'string' ? httpApi.split(/\s+/, 2) : [httpApi.method, httpApi.path];
      if (method === undefined || path === undefined || !path.startsWith('/') || path.includes('+}')) {
        throw new Error(`${functionName}: httpApi route ${JSON.stringify(httpApi)} is not supported locally`);
      }
      const authorizer = typeof httpApi === 'string' ? undefined : httpApi.authorizer;
      if (authorizer !== undefined && (typeof authorizer === 'string' || authorizer.type !== 'aws_iam')) {
        throw new Error(`${functionName}: only the aws_iam authorizer is supported locally`);
      }
      const upperMethod = method.toUpperCase();
      routes.push({
        functionName,
        handler: fn.handler,
        method: upperMethod === 'ANY' ? '*' : upperMethod,
        path,
        routeKey: `${upperMethod === '*' ? 'ANY' : upperMethod} ${path}`,
        authorizer: authorizer === undefined ? 'none' : 'aws_iam',
        timeoutSeconds: fn.timeout ?? config.provider.timeout ?? 6,
        memorySize: fn.memorySize ?? config.provider.memorySize ?? 1024,
      });
    }
  }
  return routes;
}

interface RouteMatch {
  route: HttpRoute;
  pathParameters: Record<string, string>;
  /** Per segment: 0 literal, 1 parameter; API Gateway prefers literal segments, left to right. */
  rank: number[];
}

function matchRoute(routes: readonly HttpRoute[], method: string, rawPath: string): RouteMatch | undefined {
  const segments = rawPath.split('/');
  let best: RouteMatch | undefined;
  for (const route of routes) {
    if (route.method !== '*' && route.method !== method) continue;
    const template = route.path.split('/');
    if (template.length !== segments.length) continue;
    const pathParameters: Record<string, string> = {};
    const rank: number[] = [];
    const matches = template.every((part, i) => {
      const segment = segments[i] ?? '';
      const parameter = /^\{(\w+)\}$/.exec(part)?.[1];
      if (parameter === undefined) {
        rank.push(0);
        return part === segment;
      }
      const value = decodeComponent(segment);
      if (value === undefined || value === '') return false;
      pathParameters[parameter] = value;
      rank.push(1);
      return true;
    });
    if (matches && (best === undefined || compareRank(rank, best.rank) < 0)) {
      best = { route, pathParameters, rank };
    }
  }
  return best;
}

function compareRank(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

function decodeComponent(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Query strings and signing, shared by the gateway and signedFetch so both read a query alike

/** Decoded query parameters, values in order of appearance. `+` is kept literally, as in SigV4. */
function parseQuery(rawQuery: string): Map<string, string[]> {
  const parameters = new Map<string, string[]>();
  for (const pair of rawQuery.split('&')) {
    if (pair === '') continue;
    const equals = pair.indexOf('=');
    const rawKey = equals === -1 ? pair : pair.slice(0, equals);
    const rawValue = equals === -1 ? '' : pair.slice(equals + 1);
    const key = decodeComponent(rawKey) ?? rawKey;
    const value = decodeComponent(rawValue) ?? rawValue;
    parameters.set(key, [...(parameters.get(key) ?? []), value]);
  }
  return parameters;
}

function signingQuery(parameters: Map<string, string[]>): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const [key, values] of parameters) query[key] = values.length === 1 ? (values[0] ?? '') : values;
  return query;
}

function signer(
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
  region: string,
  applyChecksum: boolean,
) {
  return new SignatureV4({
    service,
    region,
    credentials,
    sha256: NodeSha256,
    uriEscapePath: true,
    applyChecksum,
  });
}

export interface SignedFetchOptions {
  method?: string;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials: sent (and signed) as X-Amz-Security-Token. */
  sessionToken?: string;
  region: string;
  /** Sign as of this time instead of now (to test clock skew). */
  signingDate?: Date;
}

/** A request signed for API Gateway (service `execute-api`) as an SDK would sign it: what to send. */
export async function signRequest(
  url: string | URL,
  options: SignedFetchOptions,
): Promise<{ url: URL; method: string; headers: Record<string, string> }> {
  const target = new URL(url);
  const method = (options.method ?? 'GET').toUpperCase();
  const headers: Record<string, string> = { host: target.host };
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
  const request = new HttpRequest({
    method,
    protocol: target.protocol,
    hostname: target.hostname,
    ...(target.port === '' ? {} : { port: Number(target.port) }),
    path: target.pathname,
    query: signingQuery(parseQuery(target.search.slice(1))),
    headers,
    body: options.body,
  });
  const credentials = {
    accessKeyId: options.accessKeyId,
    secretAccessKey: options.secretAccessKey,
    ...(options.sessionToken === undefined ? {} : { sessionToken: options.sessionToken }),
  };
  const signed = await signer(credentials, options.region, true).sign(
    request,
    options.signingDate === undefined ? {} : { signingDate: options.signingDate },
  );
  const { host: _host, ...sendHeaders } = signed.headers;
  return { url: target, method, headers: sendHeaders };
}

/** `fetch` with a SigV4 signature for API Gateway (service `execute-api`), as an SDK would send it. */
export async function signedFetch(url: string | URL, options: SignedFetchOptions): Promise<Response> {
  const signed = await signRequest(url, options);
  return fetch(signed.url, {
    method: signed.method,
    headers: signed.headers,
    ...(options.body === undefined ? {} : { body: options.body }),
  });
}

// ---------------------------------------------------------------------------------------------
// Signature verification

interface IncomingSigned {
  method: string;
  rawPath: string;
  rawQueryString: string;
  /** Lower-case names; repeated headers joined with commas. */
  headers: Record<string, string>;
  body: Buffer;
}

type Verdict = { ok: true; user: DevUser } | { ok: false; reason: string };

/** The fields of an `AWS4-HMAC-SHA256` Authorization header, or undefined when it is malformed. */
export function parseAuthorization(header: string | undefined) {
  const match = /^AWS4-HMAC-SHA256\s+(.+)$/.exec(header ?? '');
  if (match === null) return undefined;
  const fields = new Map<string, string>();
  for (const part of (match[1] ?? '').split(',')) {
    const equals = part.indexOf('=');
    if (equals > 0) fields.set(part.slice(0, equals).trim(), part.slice(equals + 1).trim());
  }
  const credential = fields.get('Credential')?.split('/');
  const signedHeaders = fields.get('SignedHeaders')?.split(';');
  const signature = fields.get('Signature');
  if (credential?.length !== 5 || signedHeaders === undefined || signature === undefined) return undefined;
  const [accessKeyId = '', date = '', region = '', scopeService = '', terminator = ''] = credential;
  return { accessKeyId, date, region, service: scopeService, terminator, signedHeaders, signature };
}

/** An `X-Amz-Date` (yyyymmddThhmmssZ) as a Date, or undefined when it is not one. */
export function parseAmzDate(value: string | undefined): Date | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? '');
  if (match === null) return undefined;
  const [, year, month, day, hour, minute, second] = match;
  const date = new Date(`${year}-${month}-${day}T${hour}:${minute}:${second}Z`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Checks a request's SigV4 header signature the way API Gateway does for AWS_IAM routes. */
async function verifySignature(
  request: IncomingSigned,
  users: ReadonlyMap<string, DevUser>,
  region: string,
  nowMs: number,
): Promise<Verdict> {
  const auth = parseAuthorization(request.headers.authorization);
  if (auth === undefined) return { ok: false, reason: 'no AWS4-HMAC-SHA256 Authorization header' };
  const user = users.get(auth.accessKeyId);
  if (user === undefined) return { ok: false, reason: `unknown access key ${auth.accessKeyId}` };
  if (auth.region !== region || auth.service !== service || auth.terminator !== 'aws4_request') {
    return {
      ok: false,
      reason: `credential scope ${auth.region}/${auth.service} is not ${region}/${service}`,
    };
  }
  const amzDate = request.headers['x-amz-date'];
  const signingDate = parseAmzDate(amzDate);
  if (signingDate === undefined || amzDate?.slice(0, 8) !== auth.date) {
    return { ok: false, reason: 'missing or malformed X-Amz-Date, or not the date of the credential scope' };
  }
  if (Math.abs(nowMs - signingDate.getTime()) > maxClockSkewMs) {
    return { ok: false, reason: `X-Amz-Date ${amzDate} is more than 15 minutes from now` };
  }
  if (!auth.signedHeaders.includes('host') || !auth.signedHeaders.includes('x-amz-date')) {
    return { ok: false, reason: 'host and x-amz-date must be signed' };
  }
  // Temporary credentials are valid only with their session token, and it must be signed (a token
  // added after signing could be swapped); long-term keys never carry one.
  const token = request.headers['x-amz-security-token'];
  if (user.sessionToken === undefined) {
    if (token !== undefined) {
      return {
        ok: false,
        reason: `access key ${auth.accessKeyId} has no session: X-Amz-Security-Token is not valid`,
      };
    }
  } else {
    if (token === undefined) {
      return { ok: false, reason: `temporary access key ${auth.accessKeyId} needs X-Amz-Security-Token` };
    }
    if (!auth.signedHeaders.includes('x-amz-security-token')) {
      return { ok: false, reason: 'x-amz-security-token must be signed' };
    }
    const sent = Buffer.from(token, 'utf8');
    const known = Buffer.from(user.sessionToken, 'utf8');
    if (sent.length !== known.length || !timingSafeEqual(sent, known)) {
      return { ok: false, reason: `the session token of ${auth.accessKeyId} does not match` };
    }
  }
  // The signer trusts this header as the payload hash, so it must be the body's real hash.
  const claimedHash = request.headers['x-amz-content-sha256'];
  if (claimedHash !== undefined) {
    if (claimedHash !== createHash('sha256').update(request.body).digest('hex'))
      return { ok: false, reason: 'x-amz-content-sha256 is not the body hash' };
  }
  const signedHeaderValues: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    const value = request.headers[name];
    if (value === undefined) return { ok: false, reason: `signed header ${name} is missing` };
    signedHeaderValues[name] = value;
  }

  const expected = await signer(
    { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey },
    region,
    false,
  ).sign(
    new HttpRequest({
      method: request.method,
      protocol: 'http:',
      hostname: 'localhost',
      path: request.rawPath,
      query: signingQuery(parseQuery(request.rawQueryString)),
      headers: signedHeaderValues,
      body: request.body,
    }),
    { signingDate, signableHeaders: new Set(auth.signedHeaders) },
  );
  const expectedSignature = /Signature=([0-9a-f]+)/.exec(expected.headers.authorization ?? '')?.[1] ?? '';
  const a = Buffer.from(expectedSignature, 'utf8');
  const b = Buffer.from(auth.signature, 'utf8');
  if (a.length !== b.length || !timingSafeEqual(a, b)) return { ok: false, reason: 'signature mismatch' };
  return { ok: true, user };
}

// ---------------------------------------------------------------------------------------------
// Lambda event, context and result

function iamAuthorizer(user: DevUser): APIGatewayEventRequestContextIAMAuthorizer {
  // arn:aws:iam::<account>:user/<name> or arn:aws:sts::<account>:assumed-role/<role>/<session>
  const arn = user.principalArn.split(':');
  const resource = arn.slice(5).join(':');
  const session = /^assumed-role\/[^/]+\/(.+)$/.exec(resource)?.[1];
  const uniqueId = `${session === undefined ? 'AIDA' : 'AROA'}${user.accessKeyId.slice(4)}`;
  const userId = session === undefined ? uniqueId : `${uniqueId}:${session}`;
  return {
    iam: {
      accessKey: user.accessKeyId,
      accountId: arn[4] || accountId,
      callerId: userId,
      cognitoIdentity: null,
      // API Gateway sends null when the caller is in no AWS Organization; the type says string.
      principalOrgId: null as unknown as string,
      userArn: user.principalArn,
      userId,
    },
  };
}

function apiGatewayTime(date: Date): string {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${pad(date.getUTCDate())}/${months[date.getUTCMonth()]}/${date.getUTCFullYear()}:` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`
  );
}

function eventBody(body: Buffer, contentType = ''): { body?: string; isBase64Encoded: boolean } {
  if (body.length === 0) return { isBase64Encoded: false };
  // HTTP APIs hand form posts (Slack's) to Lambda base64-encoded; handlers must decode them.
  if (/^application\/x-www-form-urlencoded/i.test(contentType)) {
    return { body: body.toString('base64'), isBase64Encoded: true };
  }
  try {
    return { body: new TextDecoder('utf-8', { fatal: true }).decode(body), isBase64Encoded: false };
  } catch {
    return { body: body.toString('base64'), isBase64Encoded: true };
  }
}

interface LambdaInvocation {
  context: Context;
  deadlineMs: number;
  timeoutSeconds: number;
}

function lambdaContext(functionName: string, route: HttpRoute, region: string): LambdaInvocation {
  const deadlineMs = Date.now() + route.timeoutSeconds * 1000;
  const unsupported = (name: string) => () => {
    throw new Error(`context.${name}() is not supported: return a promise from the handler`);
  };
  const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
  return {
    deadlineMs,
    timeoutSeconds: route.timeoutSeconds,
    context: {
      callbackWaitsForEmptyEventLoop: true,
      functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: `arn:aws:lambda:${region}:${accountId}:function:${functionName}`,
      memoryLimitInMB: String(route.memorySize),
      awsRequestId: randomUUID(),
      logGroupName: `/aws/lambda/${functionName}`,
      logStreamName: `${day}/[$LATEST]${randomBytes(16).toString('hex')}`,
      getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
      done: unsupported('done'),
      fail: unsupported('fail'),
      succeed: unsupported('succeed'),
    },
  };
}

function invoke(
  handler: GatewayHandler,
  event: GatewayEvent,
  invocation: LambdaInvocation,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Task timed out after ${invocation.timeoutSeconds} seconds`)),
      Math.max(0, invocation.deadlineMs - Date.now()),
    );
    timer.unref();
    const settle = (error: unknown, result?: unknown) => {
      clearTimeout(timer);
      if (error) reject(error instanceof Error ? error : new Error(String(error)));
      else resolve(result);
    };
    try {
      const returned: unknown = handler(event, invocation.context, (error, result) => settle(error, result));
      if (isPromiseLike(returned)) returned.then((result) => settle(undefined, result), settle);
    } catch (error) {
      settle(error);
    }
  });
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && 'then' in value && typeof value.then === 'function';
}

interface HttpResult {
  statusCode: number;
  headers: Record<string, string>;
  cookies: string[];
  body: Buffer;
}

const structuredResult = z.object({
  statusCode: z.number().int().min(100).max(599),
  headers: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  body: z.string().optional(),
  isBase64Encoded: z.boolean().optional(),
  cookies: z.array(z.string()).optional(),
});

/** Maps a payload 2.0 result to HTTP as API Gateway does (a result without statusCode is a 200 JSON body). */
function httpResult(result: unknown): HttpResult {
  if (typeof result === 'object' && result !== null && 'statusCode' in result) {
    const structured = structuredResult.parse(result);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(structured.headers ?? {}))
      headers[name.toLowerCase()] = String(value);
    const body = structured.body ?? '';
    return {
      statusCode: structured.statusCode,
      headers,
      cookies: structured.cookies ?? [],
      body: Buffer.from(body, structured.isBase64Encoded === true ? 'base64' : 'utf8'),
    };
  }
  const body = typeof result === 'string' ? result : (JSON.stringify(result) ?? '');
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    cookies: [],
    body: Buffer.from(body),
  };
}

// ---------------------------------------------------------------------------------------------
// Server

/**
 * Loads handlers as `<rootDir>/<module>.ts`, export `<name>` (needs tsx or vitest to import .ts),
 * each invocation running as its function (`context.functionName`, see invocation.ts).
 */
export function moduleHandlerLoader(rootDir: string = repoRoot): HandlerLoader {
  return async (handlerPath) => {
    const dot = handlerPath.lastIndexOf('.');
    const modulePath = join(rootDir, `${handlerPath.slice(0, dot)}.ts`);
    const exportName = handlerPath.slice(dot + 1);
    const module = (await import(pathToFileURL(modulePath).href)) as Record<string, unknown>;
    const handler = module[exportName];
    if (typeof handler !== 'function') throw new Error(`${modulePath} has no function export ${exportName}`);
    const invoke = handler as GatewayHandler;
    return (event, context, callback) =>
      asInvocationOf(context?.functionName, () => invoke(event, context, callback));
  };
}

/** The whole request body, or undefined when it is larger than API Gateway accepts (read and dropped). */
function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBodyBytes) chunks.push(chunk);
    });
    request.once('end', () => resolve(size <= maxBodyBytes ? Buffer.concat(chunks) : undefined));
    request.once('error', reject);
  });
}

function describeError(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

function sendJson(response: ServerResponse, statusCode: number, body: unknown, requestId: string): void {
  response.writeHead(statusCode, { 'content-type': 'application/json', 'apigw-requestid': requestId });
  response.end(JSON.stringify(body));
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const log = options.log ?? (() => {});
  const host = options.host ?? '127.0.0.1';
  const serverlessYmlPath = options.serverlessYmlPath ?? defaultServerlessYmlPath;
  const routes = readHttpRoutes(serverlessYmlPath);
  const serviceName = z.object({ service: z.string() }).parse(readServerlessYml(serverlessYmlPath)).service;
  const stage = options.stage ?? 'dev';
  const users = new Map(options.users.map((user) => [user.accessKeyId, user]));
  const loadHandler = options.loadHandler ?? moduleHandlerLoader();
  const handlers = new Map<string, Promise<GatewayHandler>>();
  const handlerFor = (handlerPath: string): Promise<GatewayHandler> => {
    let loading = handlers.get(handlerPath);
    if (loading === undefined) {
      loading = loadHandler(handlerPath);
      handlers.set(handlerPath, loading);
      // A module that failed to load (say, mid-edit) is tried again on the next request.
      loading.catch(() => handlers.delete(handlerPath));
    }
    return loading;
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const started = Date.now();
    const requestId = randomBytes(10).toString('base64');
    const method = (request.method ?? 'GET').toUpperCase();
    const rawUrl = request.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const rawPath = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
    const rawQueryString = queryAt === -1 ? '' : rawUrl.slice(queryAt + 1);
    const done = (status: number, who = '-') =>
      log(`${method} ${rawPath} ${status} ${Date.now() - started}ms ${who}`);

    const match = matchRoute(routes, method, rawPath);
    if (match === undefined) {
      request.resume();
      // API Gateway's own answer when no route matches (any method it has no route for, too).
      sendJson(response, 404, { message: 'Not Found' }, requestId);
      return done(404);
    }
    const body = await readBody(request);
    if (body === undefined) {
      sendJson(response, 413, { message: 'Request Entity Too Large' }, requestId);
      return done(413);
    }
    const headers: Record<string, string> = {};
    for (const [name, values] of Object.entries(request.headersDistinct)) {
      if (values !== undefined) headers[name] = values.join(',');
    }

    let user: DevUser | undefined;
    if (match.route.authorizer === 'aws_iam') {
      const verdict = await verifySignature(
        { method, rawPath, rawQueryString, headers, body },
        users,
        options.region,
        Date.now(),
      );
      if (!verdict.ok) {
        log(`forbidden: ${verdict.reason}`);
        sendJson(response, 403, { message: 'Forbidden' }, requestId);
        return done(403);
      }
      user = verdict.user;
    }

    const now = new Date();
    const sourceIp = (request.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
    const { cookie, ...eventHeaders } = headers;
    eventHeaders['x-forwarded-for'] = sourceIp;
    eventHeaders['x-forwarded-proto'] = 'http';
    eventHeaders['x-forwarded-port'] = String(request.socket.localPort ?? '');
    eventHeaders['x-amzn-trace-id'] =
      `Root=1-${Math.floor(now.getTime() / 1000).toString(16)}-${randomBytes(12).toString('hex')}`;
    const query = parseQuery(rawQueryString);
    const domainName = (headers.host ?? host).replace(/:\d+$/, '');
    const requestContext: APIGatewayEventRequestContextV2 = {
      accountId,
      apiId: 'local',
      domainName,
      domainPrefix: domainName.split('.')[0] ?? domainName,
      http: {
        method,
        path: rawPath,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: match.route.routeKey,
      stage: '$default',
      time: apiGatewayTime(now),
      timeEpoch: now.getTime(),
    };
    const eventWithoutContext = {
      version: '2.0',
      routeKey: match.route.routeKey,
      rawPath,
      rawQueryString,
      ...(cookie === undefined ? {} : { cookies: cookie.split(/;\s*/) }),
      headers: eventHeaders,
      ...(query.size === 0
        ? {}
        : {
            queryStringParameters: Object.fromEntries(
              [...query].map(([key, values]) => [key, values.join(',')]),
            ),
          }),
      ...(Object.keys(match.pathParameters).length === 0 ? {} : { pathParameters: match.pathParameters }),
      ...eventBody(body, headers['content-type']),
    };
    const event: GatewayEvent =
      user === undefined
        ? { ...eventWithoutContext, requestContext }
        : { ...eventWithoutContext, requestContext: { ...requestContext, authorizer: iamAuthorizer(user) } };

    const functionName = `${serviceName}-${stage}-${match.route.functionName}`;
    let result: HttpResult;
    try {
      const handler = await handlerFor(match.route.handler);
      result = httpResult(
        await invoke(handler, event, lambdaContext(functionName, match.route, options.region)),
      );
    } catch (error) {
      log(`${functionName} failed: ${describeError(error)}`);
      sendJson(response, 500, { message: 'Internal Server Error' }, requestId);
      return done(500, user?.name);
    }
    response.writeHead(result.statusCode, {
      ...result.headers,
      ...(result.cookies.length === 0 ? {} : { 'set-cookie': result.cookies }),
      'apigw-requestid': requestId,
    });
    response.end(result.body);
    done(result.statusCode, user?.name);
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      log(`gateway error: ${describeError(error)}`);
      if (!response.headersSent) sendJson(response, 500, { message: 'Internal Server Error' }, 'gateway');
      else response.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    routes,
    addUser: (user) => {
      if (users.has(user.accessKeyId)) throw new Error(`access key ${user.accessKeyId} is already known`);
      users.set(user.accessKeyId, user);
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
