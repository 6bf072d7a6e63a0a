// `npm run dev:instances`: the EC2 instances of the local stack's annexes, as the emulator has
// them (tags and state), read with the real SDK from the endpoint in .annex/dev.env, and what each
// instance itself reported to the control plane (bootstrap, heartbeats, agent state, slots), read
// through the API as the dev admin (GET /v1/annexes/{name}?owner=…), and, for an IDTOKENS pool,
// the token the instance has installed (its root's etc/condor/tokens.d/annex): jti and expiry.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { loadDevUsers } from './devstack/dev-users.ts';
import { repoRoot } from './devstack/serverless-config.ts';
import { apiClient } from './devstack/stack.ts';
import { decodeToken } from '../shared/domain/idtokens.ts';

const env = Object.fromEntries(
  readFileSync(join(repoRoot, '.annex', 'dev.env'), 'utf8')
    .split('\n')
    .flatMap((line) => {
      const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
      return m === null ? [] : [[m[1], m[2]]];
    }),
) as Record<string, string>;

const endpoint = env.AWS_ENDPOINT_URL;
if (endpoint === undefined || !/^http:\/\/127\.0\.0\.1:/.test(endpoint)) {
  console.error('no local stack found: run `npm run dev` first');
  process.exit(1);
}

// Lambda runs Node 22; this may run on Node 20, where the SDK warns at every start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const ec2 = new EC2Client({
  endpoint,
  region: env.AWS_REGION ?? 'us-east-1',
  credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  maxAttempts: 1,
});
const out = await ec2.send(
  new DescribeInstancesCommand({ Filters: [{ Name: 'tag-key', Values: ['annex:id'] }] }),
);
const rows = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
if (rows.length === 0) console.log('no annex instances yet');

interface Reported {
  instanceId: string;
  bootstrappedAt?: string;
  lastHeartbeatAt?: string;
  agentState?: string;
  claimedSlots?: number;
  totalSlots?: number;
}

// What the instances reported, one API call per live annex (an ended annex's name is free: '-').
const admin = loadDevUsers(join(repoRoot, '.annex', 'dev-users.json')).find((u) => u.admin === true);
const reported = new Map<string, Reported>();
const annexes = new Map<string, string>(); // name + owner -> query
for (const i of rows) {
  const tag = (k: string) => i.Tags?.find((t) => t.Key === k)?.Value;
  const name = tag('annex:name');
  const owner = tag('annex:owner');
  if (name !== undefined && owner !== undefined)
    annexes.set(
      `${name}\n${owner}`,
      `/v1/annexes/${encodeURIComponent(name)}?owner=${encodeURIComponent(owner)}`,
    );
}
if (admin !== undefined && env.ANNEX_API_URL !== undefined) {
  const api = apiClient(env.ANNEX_API_URL, admin);
  for (const path of annexes.values()) {
    try {
      const res = await api.request<{ instances?: Reported[] }>('GET', path);
      for (const r of res.body.instances ?? []) reported.set(r.instanceId, r);
    } catch {
      // The API is not up: EC2's view alone.
    }
  }
}

const ago = (iso: string | undefined): string => {
  if (iso === undefined) return 'never';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return `${s} s ago`;
};

/** The token an instance of the local stack has installed, where HTCondor reads it. */
const installedToken = (instanceId: string | undefined): string => {
  const dir = env.ANNEX_DEV_INSTANCES_DIR;
  if (dir === undefined || instanceId === undefined) return '';
  const file = join(dir, instanceId, 'root', 'etc', 'condor', 'tokens.d', 'annex');
  if (!existsSync(file)) return 'no token';
  const claims = decodeToken(readFileSync(file, 'utf8'))?.claims;
  const exp = claims?.exp;
  return typeof exp === 'number'
    ? `token exp ${new Date(exp * 1000).toISOString()} (jti ${String(claims?.jti).slice(0, 8)}…)`
    : 'unreadable token';
};

for (const i of rows) {
  const tag = (k: string) => i.Tags?.find((t) => t.Key === k)?.Value ?? '-';
  const r = i.InstanceId === undefined ? undefined : reported.get(i.InstanceId);
  console.log(
    [
      i.InstanceId,
      i.State?.Name,
      i.InstanceType,
      tag('annex:name'),
      tag('annex:id'),
      `expires ${tag('annex:expires-at')}`,
      r === undefined
        ? 'reported -'
        : [
            r.bootstrappedAt === undefined ? 'not bootstrapped' : `bootstrapped ${r.bootstrappedAt}`,
            `heartbeat ${ago(r.lastHeartbeatAt)}`,
            r.agentState ?? '-',
            r.totalSlots === undefined ? '' : `${r.claimedSlots ?? 0}/${r.totalSlots} claimed`,
          ]
            .filter((s) => s !== '')
            .join(', '),
      installedToken(i.InstanceId),
    ]
      .filter((s) => s !== '')
      .join('  '),
  );
}
