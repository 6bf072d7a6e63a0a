/**
 * A fake EC2 instance metadata service (IMDSv2 only) on 127.0.0.1: one per emulated instance of
 * the local stack (scripts/devstack/instance-runner.ts) and in the image scripts' tests. It requires a
 * session token from `PUT /latest/api/token` (with a TTL header, honoured) on every GET, and
 * serves the instance id, the region, the public IPv4 address when there is one, the role name and
 * its temporary credentials (its own random ones, optionally fresh on every read to test rotation,
 * or those a provider hands out), instance tags and, when set, a spot `instance-action` notice.
 * Every request is recorded.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RoleCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

export interface ImdsRequest {
  method: string;
  path: string;
  status: number;
}

export interface FakeImdsOptions {
  instanceId?: string;
  region?: string;
  roleName?: string;
  /** Instance tags served under meta-data/tags/instance/ (metadata tags enabled). */
  tags?: Record<string, string>;
  /** Lifetime of issued credentials; default 6 hours. */
  credentialLifetimeSeconds?: number;
  /** Hand out new credentials on every read (as if they had rotated). */
  rotateCredentials?: boolean;
  /**
   * Where the role's credentials come from (asked on every read; return the same set until it
   * should rotate), e.g. the local stack's instance-role sessions. Default: random ones.
   */
  credentials?: () => RoleCredentials;
  /** Served as meta-data/public-ipv4 (404 without, as for an instance with no public address). */
  publicIpv4?: string;
}

export interface FakeImds {
  url: string;
  instanceId: string;
  region: string;
  roleName: string;
  /** Every credential set handed out, oldest first. */
  issued: RoleCredentials[];
  requests: ImdsRequest[];
  /** Instance tags served under meta-data/tags/instance/; change them at will. */
  tags: Record<string, string>;
  /** Every IMDSv2 session token handed out. */
  tokens: string[];
  /** Set to serve meta-data/spot/instance-action (200); undefined serves 404 as EC2 does. */
  spotAction: { action: string; time: string } | undefined;
  /** Look up issued credentials by access key id (for the fake API's signature check). */
  credentialsFor(accessKeyId: string): RoleCredentials | undefined;
  stop(): Promise<void>;
}

function newCredentials(lifetimeSeconds: number): RoleCredentials {
  return {
    accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
    // Real secrets and tokens contain '/', '+' and '='.
    secretAccessKey: `${randomBytes(30).toString('base64')}/+=`,
    sessionToken: `IQoJb3JpZ2luX2Vj${randomBytes(96).toString('base64')}`,
    expiration: new Date(Date.now() + lifetimeSeconds * 1000),
  };
}

export async function startFakeImds(options: FakeImdsOptions = {}): Promise<FakeImds> {
  const instanceId = options.instanceId ?? 'i-0123456789abcdef0';
  const region = options.region ?? 'us-east-1';
  const roleName = options.roleName ?? 'annex-dev-instance';
  const lifetime = options.credentialLifetimeSeconds ?? 6 * 3600;
  const tokens = new Map<string, number>(); // token -> expiry (ms)
  const provided = options.credentials;
  let current = provided === undefined ? newCredentials(lifetime) : provided();

  const imds: FakeImds = {
    url: '',
    instanceId,
    region,
    roleName,
    issued: [current],
    requests: [],
    tags: { ...options.tags },
    tokens: [],
    spotAction: undefined,
    credentialsFor: (accessKeyId) => imds.issued.find((c) => c.accessKeyId === accessKeyId),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const answer = (req: IncomingMessage, res: ServerResponse, status: number, body: string): void => {
    imds.requests.push({ method: req.method ?? '', path: req.url ?? '', status });
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(body);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = req.url ?? '';
    if (req.method === 'PUT' && path === '/latest/api/token') {
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return answer(req, res, 400, '');
      const token = randomBytes(24).toString('base64');
      tokens.set(token, Date.now() + ttl * 1000);
      imds.tokens.push(token);
      return answer(req, res, 200, token);
    }
    if (req.method !== 'GET') return answer(req, res, 405, '');
    const token = req.headers['x-aws-ec2-metadata-token'];
    const expiry = typeof token === 'string' ? tokens.get(token) : undefined;
    if (expiry === undefined || expiry < Date.now()) return answer(req, res, 401, '');

    const credentialsPath = `/latest/meta-data/iam/security-credentials/${roleName}`;
    const tagPrefix = '/latest/meta-data/tags/instance/';
    if (path === '/latest/meta-data/instance-id') return answer(req, res, 200, instanceId);
    if (path === '/latest/meta-data/placement/region') return answer(req, res, 200, region);
    if (path === '/latest/meta-data/iam/security-credentials/') return answer(req, res, 200, roleName);
    if (path === '/latest/meta-data/public-ipv4') {
      return options.publicIpv4 === undefined
        ? answer(req, res, 404, '')
        : answer(req, res, 200, options.publicIpv4);
    }
    if (path === credentialsPath) {
      if (provided !== undefined) {
        const next = provided();
        if (next.accessKeyId !== current.accessKeyId) imds.issued.push(next);
        current = next;
      } else if (options.rotateCredentials === true) {
        current = newCredentials(lifetime);
        imds.issued.push(current);
      }
      return answer(
        req,
        res,
        200,
        JSON.stringify(
          {
            Code: 'Success',
            LastUpdated: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
            Type: 'AWS-HMAC',
            AccessKeyId: current.accessKeyId,
            SecretAccessKey: current.secretAccessKey,
            Token: current.sessionToken,
            Expiration: current.expiration.toISOString().replace(/\.\d+Z$/, 'Z'),
          },
          null,
          2,
        ),
      );
    }
    if (path.startsWith(tagPrefix)) {
      const value = imds.tags[decodeURIComponent(path.slice(tagPrefix.length))];
      return value === undefined ? answer(req, res, 404, '') : answer(req, res, 200, value);
    }
    if (path === '/latest/meta-data/spot/instance-action') {
      return imds.spotAction === undefined
        ? answer(req, res, 404, '')
        : answer(req, res, 200, JSON.stringify(imds.spotAction));
    }
    return answer(req, res, 404, '');
  };

  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => handle(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  imds.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return imds;
}
