// The instance side on the local stack: an instance signs with instance-profile credentials
// (temporary keys and a session token, principal assumed-role/annex-<stage>-instance/<instance id>),
// which the local gateway verifies as API Gateway does, and the real handlers answer from DynamoDB
// Local and moto's SSM. Assertions also read the lease table directly.
import { randomBytes } from 'node:crypto';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../shared/aws/keys.ts';
import { verifyToken } from '../../shared/domain/idtokens.ts';
import type { DevUser } from '../../scripts/devstack/dev-users.ts';
import type { Enforcer } from '../../scripts/devstack/enforcer.ts';
import { signedFetch } from '../../scripts/devstack/gateway.ts';
import type { ApiClient, LocalStack } from '../../scripts/devstack/stack.ts';
import { integrationStack, stackEnforcer } from '../support/integration-stack.ts';

let stack: LocalStack;
let enforcer: Enforcer;
let alice: ApiClient;
let bob: ApiClient;
let dynamo: DynamoDBClient;
let ec2: EC2Client;

const ALICE_SECRET = `alice-pool-password-${randomBytes(6).toString('hex')}`;
const BOB_SECRET = `bob-signing-key-${randomBytes(6).toString('hex')}`;

interface AnnexDetail {
  annex: {
    id: string;
    name: string;
    state: string;
    expiresAt: string;
    idleSeconds: number;
    allowedUsers?: string[];
  };
  instances: { instanceId: string; state: string; publicIpAddress?: string; [field: string]: unknown }[];
  events: { type: string; message: string; detail?: Record<string, unknown> }[];
}

interface Bootstrap {
  annexId: string;
  annexName: string;
  instanceId: string;
  expiresAt: string;
  idleSeconds: number;
  heartbeatIntervalSeconds: number;
  collector: { host: string; port: number };
  credential: { type: string; value: string };
  condorConfig: string;
}

beforeAll(async () => {
  stack = await integrationStack('in');
  enforcer = stackEnforcer(stack);
  alice = stack.as('alice');
  bob = stack.as('bob');
  dynamo = new DynamoDBClient(stack.clientConfig('dynamodb'));
  ec2 = new EC2Client(stack.clientConfig('moto'));
  const put = await alice.request('PUT', '/v1/pools/lab', {
    collectorHost: 'cm.lab.example.org',
    credential: { type: 'password', value: ALICE_SECRET },
    condorUser: 'alice',
  });
  expect(put.status).toBe(200);
  const bobs = await bob.request('PUT', '/v1/pools/bobs', {
    collectorHost: 'cm.bob.example.org',
    collectorPort: 9619,
    credential: { type: 'idtokens-signing-key', value: BOB_SECRET },
  });
  expect(bobs.status).toBe(200);
});

afterAll(async () => {
  await enforcer?.stop();
  await stack?.stop();
});

/** Creates an annex as `who` and returns its id and instance ids. */
const createAnnex = async (who: ApiClient, body: Record<string, unknown>) => {
  const created = await who.request<{ annex: { id: string } }>('POST', '/v1/annexes', {
    count: 1,
    instanceTypes: ['m5.large'],
    ...body,
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const detail = await who.request<AnnexDetail>('GET', `/v1/annexes/${String(body.name)}`);
  return { annexId: created.body.annex.id, instanceIds: detail.body.instances.map((i) => i.instanceId) };
};

const detailOf = async (who: ApiClient, name: string) =>
  (await who.request<AnnexDetail>('GET', `/v1/annexes/${name}`)).body;

const instanceItem = async (annexId: string, instanceId: string) => {
  const out = await dynamo.send(
    new GetItemCommand({
      TableName: stack.tableName,
      Key: {
        PK: { S: keys.instance(annexId, instanceId).PK },
        SK: { S: keys.instance(annexId, instanceId).SK },
      },
      ConsistentRead: true,
    }),
  );
  return out.Item === undefined ? undefined : unmarshall(out.Item);
};

const ec2State = async (instanceId: string) =>
  (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }))).Reservations?.[0]
    ?.Instances?.[0]?.State?.Name;

const bootstrap = (user: DevUser) =>
  stack.as(user).request<Bootstrap>('POST', '/v1/instances/self/bootstrap');

describe('bootstrap', () => {
  let annexId: string;
  let instanceId: string;
  let instance: DevUser;

  beforeAll(async () => {
    ({
      annexId,
      instanceIds: [instanceId = ''],
    } = await createAnnex(alice, { name: 'gpu', pool: 'lab' }));
    instance = stack.instanceCredentials(instanceId);
  });

  it('gives the instance its annex, the pool credential and its HTCondor configuration', async () => {
    // Act
    const res = await bootstrap(instance);

    // Assess
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({
      annexId,
      annexName: 'gpu',
      instanceId,
      idleSeconds: 900,
      heartbeatIntervalSeconds: 60,
      collector: { host: 'cm.lab.example.org', port: 9618 },
      credential: { type: 'password', value: ALICE_SECRET },
    });
    expect(res.body.condorConfig).toContain('AnnexName = "gpu"');
    expect(res.body.condorConfig).toContain(`EC2InstanceID = "${instanceId}"`);
    expect(res.body.condorConfig).toContain('TARGET.Owner =?= "alice"');
    expect(res.body.condorConfig).not.toContain(ALICE_SECRET);
    const publicIp = (await detailOf(alice, 'gpu')).instances[0]?.publicIpAddress;
    if (publicIp !== undefined) expect(res.body.condorConfig).toContain(`TCP_FORWARDING_HOST = ${publicIp}`);
    expect((await instanceItem(annexId, instanceId))?.bootstrappedAt).toEqual(expect.any(String));
  });

  it('refuses a second bootstrap with 403 and records it on the annex', async () => {
    // Act
    const res = await bootstrap(instance);

    // Assess
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error: { code: 'Forbidden' } });
    expect(JSON.stringify(res.body)).not.toContain(ALICE_SECRET);
    const { events } = await detailOf(alice, 'gpu');
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'bootstrap-refused',
        detail: { instanceId, why: 'already-bootstrapped' },
      }),
    );
  });

  it('refuses a user who is not an instance (alice, the owner) with 403', async () => {
    const res = await alice.request('POST', '/v1/instances/self/bootstrap');
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error: { code: 'Forbidden' } });
  });

  it('refuses an instance id no annex launched, even signed as the instance role', async () => {
    const res = await bootstrap(stack.instanceCredentials('i-0fedcba9876543210'));
    expect(res.status).toBe(403);
  });

  it('gives an instance of another annex its own annex and credential, never this one', async () => {
    // Prepare
    const bobs = await createAnnex(bob, {
      name: 'gpu',
      pool: 'bobs',
      allowedUsers: ['bob@submit.example.org'],
    });
    const bobInstance = stack.instanceCredentials(bobs.instanceIds[0] ?? '');

    // Act
    const res = await bootstrap(bobInstance);

    // Assess
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({
      annexId: bobs.annexId,
      collector: { host: 'cm.bob.example.org', port: 9619 },
      credential: { type: 'idtoken' },
    });
    // Bob's pool is an IDTOKENS pool: his instance gets its own token, never the signing key.
    expect(verifyToken(res.body.credential.value, Buffer.from(BOB_SECRET))?.claims).toMatchObject({
      sub: `annex-${bobs.instanceIds[0] ?? ''}@cm.bob.example.org`,
    });
    expect(JSON.stringify(res.body)).not.toContain(BOB_SECRET);
    expect(res.body.annexId).not.toBe(annexId);
    expect(JSON.stringify(res.body)).not.toContain(ALICE_SECRET);
    expect(res.body.condorConfig).toContain('TARGET.User =?= "bob@submit.example.org"');
    expect(res.body.condorConfig).toContain('SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS');
  });

  it('refuses an instance of an ended annex with 403 and records the refusal', async () => {
    // Prepare
    const ended = await createAnnex(alice, { name: 'short', pool: 'lab' });
    expect((await alice.request('DELETE', '/v1/annexes/short')).status).toBe(202);

    // Act
    const res = await bootstrap(stack.instanceCredentials(ended.instanceIds[0] ?? ''));

    // Assess
    expect(res.status).toBe(403);
    expect((await detailOf(alice, 'short')).events).toContainEqual(
      expect.objectContaining({
        type: 'bootstrap-refused',
        detail: expect.objectContaining({ why: 'annex-not-live' }),
      }),
    );
  });
});

describe('the gateway and temporary credentials', () => {
  let instance: DevUser;

  beforeAll(async () => {
    const { instanceIds } = await createAnnex(alice, { name: 'signing', pool: 'lab' });
    instance = stack.instanceCredentials(instanceIds[0] ?? '');
  });

  const heartbeatWith = (credentials: Partial<DevUser>) =>
    signedFetch(`${stack.apiUrl}/v1/instances/self/heartbeat`, {
      method: 'POST',
      body: JSON.stringify({ claimedSlots: 0, totalSlots: 1, idleSeconds: 0, state: 'booting' }),
      headers: { 'content-type': 'application/json' },
      accessKeyId: credentials.accessKeyId ?? '',
      secretAccessKey: credentials.secretAccessKey ?? '',
      ...(credentials.sessionToken === undefined ? {} : { sessionToken: credentials.sessionToken }),
      region: stack.region,
    });

  it('accepts the temporary keys with their signed session token', async () => {
    const res = await heartbeatWith(instance);
    expect(res.status).toBe(200);
  });

  it('refuses the temporary keys without their session token (403 before any handler)', async () => {
    const { sessionToken: _dropped, ...keysOnly } = instance;
    const res = await heartbeatWith(keysOnly);
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ message: 'Forbidden' });
  });

  it('refuses another session token', async () => {
    const res = await heartbeatWith({ ...instance, sessionToken: `${instance.sessionToken ?? ''}x` });
    expect(res.status).toBe(403);
  });

  it('refuses the right session token when it was added after signing', async () => {
    const { sessionToken, ...keysOnly } = instance;
    expect(await fetchWithUnsignedToken(keysOnly, sessionToken ?? '')).toBe(403);
  });

  it('refuses a session token sent with a user’s long-term keys', async () => {
    const user = stack.users.find((u) => u.name === 'alice');
    const res = await heartbeatWith({ ...user, sessionToken: instance.sessionToken ?? '' });
    expect(res.status).toBe(403);
  });
});

/** Signs without the token, then adds the X-Amz-Security-Token header, as a tampering proxy could. */
const fetchWithUnsignedToken = async (
  keysOnly: Omit<DevUser, 'sessionToken'>,
  token: string,
): Promise<number> => {
  const url = new URL(`${stack.apiUrl}/v1/instances/self/heartbeat`);
  const body = JSON.stringify({ claimedSlots: 0, totalSlots: 1, idleSeconds: 0, state: 'booting' });
  const signed = await new SignatureV4({
    service: 'execute-api',
    region: stack.region,
    credentials: { accessKeyId: keysOnly.accessKeyId, secretAccessKey: keysOnly.secretAccessKey },
    sha256: Sha256,
  }).sign(
    new HttpRequest({
      method: 'POST',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      headers: { host: url.host, 'content-type': 'application/json' },
      body,
    }),
  );
  const { host: _host, ...headers } = signed.headers;
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...headers, 'x-amz-security-token': token },
    body,
  });
  return res.status;
};

describe('heartbeat', () => {
  it('records the slots, follows an extension, and lets one sweep end an idle instance', async () => {
    // Prepare
    const { annexId, instanceIds } = await createAnnex(alice, { name: 'idle', pool: 'lab', idleSeconds: 60 });
    const [instanceId = ''] = instanceIds;
    const agent = stack.as(stack.instanceCredentials(instanceId));
    const beat = (body: Record<string, unknown>) =>
      agent.request<{ expiresAt: string; idleSeconds: number; action: string }>(
        'POST',
        '/v1/instances/self/heartbeat',
        body,
      );

    // Act: a busy heartbeat.
    const busy = await beat({ claimedSlots: 2, totalSlots: 2, idleSeconds: 0, state: 'joined' });

    // Assess: the fields the sweep reads, and the lease.
    expect(busy.status, JSON.stringify(busy.body)).toBe(200);
    expect(busy.body).toMatchObject({ idleSeconds: 60, action: 'continue' });
    const afterBusy = await instanceItem(annexId, instanceId);
    expect(afterBusy).toMatchObject({ claimedSlots: 2, totalSlots: 2, agentState: 'joined' });
    expect(afterBusy?.lastHeartbeatAt).toEqual(expect.any(String));
    expect(afterBusy).not.toHaveProperty('idleSince');
    expect((await detailOf(alice, 'idle')).instances[0]).toMatchObject({
      claimedSlots: 2,
      totalSlots: 2,
      agentState: 'joined',
      lastHeartbeatAt: afterBusy?.lastHeartbeatAt,
    });

    // Act: the lease is extended; the next heartbeat carries it.
    const extended = await alice.request<{ annex: { expiresAt: string } }>(
      'POST',
      '/v1/annexes/idle/extend',
      {
        durationSeconds: 7200,
      },
    );
    const next = await beat({ claimedSlots: 1, totalSlots: 2, idleSeconds: 0, state: 'joined' });
    expect(next.body.expiresAt).toBe(extended.body.annex.expiresAt);

    // Act: no slot claimed for two minutes (the annex allows one).
    const idle = await beat({ claimedSlots: 0, totalSlots: 2, idleSeconds: 120, state: 'joined' });
    expect(idle.body.action).toBe('continue');
    const idleItem = await instanceItem(annexId, instanceId);
    expect(Date.now() - Date.parse(String(idleItem?.idleSince))).toBeGreaterThanOrEqual(120_000);
    expect(idleItem?.claimedSlots).toBe(0);

    // Act: one sweep, as the every-minute rule runs it.
    await enforcer.runRateFunctions();

    // Assess: terminated in EC2 and in the table, with reason idle; the agent is told to stop.
    expect(await ec2State(instanceId)).toBe('terminated');
    expect((await instanceItem(annexId, instanceId))?.state).toBe('terminated');
    expect((await detailOf(alice, 'idle')).events).toContainEqual(
      expect.objectContaining({
        type: 'instances-terminated',
        reason: 'idle',
        detail: { instanceIds: [instanceId] },
      }),
    );
    expect(
      (await beat({ claimedSlots: 0, totalSlots: 2, idleSeconds: 180, state: 'joined' })).body.action,
    ).toBe('shutdown');
  });

  it('refuses a bad body with 400 naming the field', async () => {
    const { instanceIds } = await createAnnex(alice, { name: 'badbody', pool: 'lab' });
    const agent = stack.as(stack.instanceCredentials(instanceIds[0] ?? ''));
    const res = await agent.request('POST', '/v1/instances/self/heartbeat', {
      claimedSlots: -1,
      totalSlots: 1,
      idleSeconds: 0,
      state: 'joined',
    });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: { code: 'ValidationError', field: 'claimedSlots' } });
  });

  it('refuses a user with 403', async () => {
    const res = await alice.request('POST', '/v1/instances/self/heartbeat', {
      claimedSlots: 0,
      totalSlots: 1,
      idleSeconds: 0,
      state: 'joined',
    });
    expect(res.status).toBe(403);
  });
});

describe('interruption', () => {
  it('records an interruption notice on the instance and as one spot-interruption event, even when repeated', async () => {
    // Prepare
    const { annexId, instanceIds } = await createAnnex(alice, { name: 'spotty', pool: 'lab' });
    const [instanceId = ''] = instanceIds;
    const time = new Date(Date.now() + 120_000).toISOString();

    // Act
    const res = await stack
      .as(stack.instanceCredentials(instanceId))
      .request('POST', '/v1/instances/self/interruption', { action: 'terminate', time });

    const again = await stack
      .as(stack.instanceCredentials(instanceId))
      .request('POST', '/v1/instances/self/interruption', { action: 'terminate', time });

    // Assess
    expect([res.status, again.status]).toEqual([202, 202]);
    expect(res.body).toEqual({});
    expect(await instanceItem(annexId, instanceId)).toMatchObject({
      interruption: { action: 'terminate', time },
    });
    expect(
      (await detailOf(alice, 'spotty')).events.filter((e) => e.type === 'spot-interruption'),
    ).toHaveLength(1);
    expect((await detailOf(alice, 'spotty')).events).toContainEqual(
      expect.objectContaining({
        type: 'spot-interruption',
        reason: 'interrupted',
        detail: { instanceId, action: 'terminate', time, via: 'instance' },
      }),
    );
  });
});

describe('GET /v1/annexes/{name}/condor-config', () => {
  it('shows the owner the fragment without a secret, and another user nothing', async () => {
    // Prepare
    await createAnnex(alice, {
      name: 'config',
      pool: 'lab',
      allowedUsers: ['alice', 'carol@submit.example.org'],
    });

    // Act
    const own = await alice.request<{ condorConfig: string }>('GET', '/v1/annexes/config/condor-config');
    const other = await bob.request('GET', '/v1/annexes/config/condor-config');

    // Assess
    expect(own.status).toBe(200);
    expect(own.body.condorConfig).toContain('EC2InstanceID = "i-00000000000000000"');
    expect(own.body.condorConfig).toContain('TARGET.User =?= "carol@submit.example.org"');
    expect(own.body.condorConfig).not.toContain('TCP_FORWARDING_HOST');
    expect(own.body.condorConfig).not.toContain(ALICE_SECRET);
    expect(other.status).toBe(404);
  });
});
