/**
 * A fake of the control plane's instance routes (`/v1/instances/self/*`) on 127.0.0.1, for the
 * image scripts' tests. Like API Gateway with AWS_IAM auth it verifies each request's SigV4
 * signature (service execute-api) against the temporary credentials the fake IMDS handed out, and
 * requires the session token to be sent as a *signed* `x-amz-security-token` header. A request
 * that fails the check gets 403 and is recorded with the reason; the answers to good requests come
 * from the test.
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseAmzDate, parseAuthorization } from '../../scripts/devstack/gateway.ts';
import type { RoleCredentials } from '../../scripts/devstack/fake-imds.ts';

export interface ApiCall {
  method: string;
  path: string;
  body: string;
  /** The parsed JSON body, or undefined when empty or not JSON. */
  json: unknown;
  accessKeyId: string | undefined;
  sessionToken: string | undefined;
  signedHeaders: string[];
  /** `ok`, or why the signature was refused. */
  verdict: string;
  status: number;
}

export interface ApiAnswer {
  status: number;
  body?: unknown;
}

export type ApiResponder = (call: ApiCall) => ApiAnswer | 'hang';

export interface FakeAnnexApi {
  url: string;
  calls: ApiCall[];
  /** Answers a correctly signed call; default 404. `hang` never answers (an unresponsive API). */
  respond: ApiResponder;
  stop(): Promise<void>;
}

const service = 'execute-api';
const maxClockSkewMs = 15 * 60 * 1000;

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

async function verify(
  req: IncomingMessage,
  body: Buffer,
  region: string,
  credentialsFor: (accessKeyId: string) => RoleCredentials | undefined,
): Promise<string> {
  const auth = parseAuthorization(headerValue(req, 'authorization'));
  if (auth === undefined) return 'no AWS4-HMAC-SHA256 Authorization header';
  const credentials = credentialsFor(auth.accessKeyId);
  if (credentials === undefined) return `unknown access key ${auth.accessKeyId}`;
  if (auth.region !== region || auth.service !== service || auth.terminator !== 'aws4_request') {
    return `credential scope ${auth.region}/${auth.service} is not ${region}/${service}`;
  }
  const amzDate = headerValue(req, 'x-amz-date');
  const signingDate = parseAmzDate(amzDate);
  if (signingDate === undefined || amzDate?.slice(0, 8) !== auth.date) return 'bad X-Amz-Date';
  if (Math.abs(Date.now() - signingDate.getTime()) > maxClockSkewMs) return 'X-Amz-Date out of range';
  for (const required of ['host', 'x-amz-date', 'x-amz-security-token']) {
    if (!auth.signedHeaders.includes(required)) return `${required} is not signed`;
  }
  if (headerValue(req, 'x-amz-security-token') !== credentials.sessionToken) {
    return 'x-amz-security-token is not the session token of these credentials';
  }
  if (credentials.expiration.getTime() < Date.now()) return 'the credentials have expired';
  const claimedHash = headerValue(req, 'x-amz-content-sha256');
  if (claimedHash !== undefined && claimedHash !== createHash('sha256').update(body).digest('hex')) {
    return 'x-amz-content-sha256 is not the body hash';
  }
  const signed: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    const value = headerValue(req, name);
    if (value === undefined) return `signed header ${name} is missing`;
    signed[name] = value;
  }
  const url = new URL(req.url ?? '/', 'http://localhost');
  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) query[key] = value;
  const expected = await new SignatureV4({
    service,
    region,
    credentials: {
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      sessionToken: credentials.sessionToken,
    },
    sha256: Sha256,
    uriEscapePath: true,
    applyChecksum: false,
  }).sign(
    new HttpRequest({
      method: req.method ?? 'GET',
      protocol: 'http:',
      hostname: 'localhost',
      path: url.pathname,
      query,
      headers: signed,
      body,
    }),
    { signingDate, signableHeaders: new Set(auth.signedHeaders) },
  );
  const expectedSignature = /Signature=([0-9a-f]+)/.exec(expected.headers.authorization ?? '')?.[1] ?? '';
  const a = Buffer.from(expectedSignature);
  const b = Buffer.from(auth.signature);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return 'signature mismatch';
  return 'ok';
}

export async function startFakeAnnexApi(options: {
  region: string;
  credentialsFor: (accessKeyId: string) => RoleCredentials | undefined;
  respond?: ApiResponder;
}): Promise<FakeAnnexApi> {
  const api: FakeAnnexApi = {
    url: '',
    calls: [],
    respond: options.respond ?? (() => ({ status: 404, body: { error: { code: 'NotFound', message: '' } } })),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> => {
    const text = body.toString('utf8');
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    const auth = parseAuthorization(headerValue(req, 'authorization'));
    const call: ApiCall = {
      method: req.method ?? '',
      path: new URL(req.url ?? '/', 'http://localhost').pathname,
      body: text,
      json,
      accessKeyId: auth?.accessKeyId,
      sessionToken: headerValue(req, 'x-amz-security-token'),
      signedHeaders: auth?.signedHeaders ?? [],
      verdict: await verify(req, body, options.region, options.credentialsFor),
      status: 0,
    };
    api.calls.push(call);
    const answer: ApiAnswer | 'hang' =
      call.verdict === 'ok'
        ? api.respond(call)
        : { status: 403, body: { message: 'The request signature we calculated does not match' } };
    if (answer === 'hang') return;
    call.status = answer.status;
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks)).catch((error: unknown) => {
        res.writeHead(500);
        res.end(String(error));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}
