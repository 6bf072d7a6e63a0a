// Every route through the local HTTP layer (SigV4-verified) to the real handlers, which use the
// real AWS SDK v3 against DynamoDB Local and moto. Assertions read EC2, SSM and the table directly.
import { randomBytes } from 'node:crypto';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  DescribeIamInstanceProfileAssociationsCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, ListTagsForResourceCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient, LocalStack } from '../../scripts/devstack/stack.ts';
import { annexInstances, integrationStack } from '../support/integration-stack.ts';

let stack: LocalStack;
let alice: ApiClient;
let bob: ApiClient;
let admin: ApiClient;
let ec2: EC2Client;
let ssm: SSMClient;
let dynamo: DynamoDBClient;

const POOL_SECRET = `lab-pool-password-${randomBytes(6).toString('hex')}`;

beforeAll(async () => {
  stack = await integrationStack('it');
  alice = stack.as('alice');
  bob = stack.as('bob');
  admin = stack.as('admin');
  ec2 = new EC2Client(stack.clientConfig('moto'));
  ssm = new SSMClient(stack.clientConfig('moto'));
  dynamo = new DynamoDBClient(stack.clientConfig('dynamodb'));
});

afterAll(async () => {
  await stack?.stop();
});

const instancesOf = (annexId: string, states?: string[]): Promise<Instance[]> =>
  annexInstances(ec2, annexId, states);

const tag = (i: Instance, key: string) => i.Tags?.find((t) => t.Key === key)?.Value;

const tableItemCount = async () =>
  (await dynamo.send(new ScanCommand({ TableName: stack.tableName, Select: 'COUNT' }))).Count ?? 0;

const allInstanceCount = async () =>
  (await ec2.send(new DescribeInstancesCommand({}))).Reservations?.flatMap((r) => r.Instances ?? []).length ??
  0;

type AnnexBody = { annex: Record<string, unknown> & { id: string; state: string; expiresAt: string } };

describe('authentication', () => {
  it('refuses an unsigned request with 403 and never runs the handler', async () => {
    const before = await tableItemCount();
    const response = await fetch(`${stack.apiUrl}/v1/annexes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x', count: 1, instanceTypes: ['m5.large'] }),
    });
    expect(response.status).toBe(403);
    expect(await tableItemCount()).toBe(before);
  });
});

describe('pools', () => {
  it('lists the shared default pool without any credential', async () => {
    const res = await alice.request<{ pools: Record<string, unknown>[] }>('GET', '/v1/pools');
    expect(res.status).toBe(200);
    expect(res.body.pools.map((p) => p.name)).toContain('default');
    expect(JSON.stringify(res.body)).not.toMatch(/credentialParameter|"value"/);
  });

  it('lets a user register a private pool but not a shared one', async () => {
    const shared = await alice.request('PUT', '/v1/pools/lab', {
      collectorHost: 'cm.lab.example.org',
      credential: { type: 'password', value: POOL_SECRET },
      scope: 'shared',
    });
    expect(shared.status).toBe(403);
    const own = await alice.request<{ pool: Record<string, unknown> }>('PUT', '/v1/pools/lab', {
      collectorHost: 'cm.lab.example.org',
      credential: { type: 'password', value: POOL_SECRET },
    });
    expect(own.status).toBe(200);
    expect(own.body.pool).toMatchObject({ name: 'lab', scope: 'private', collectorPort: 9618 });
    expect(JSON.stringify(own.body)).not.toContain(POOL_SECRET);
    const bobs = await bob.request<{ pools: { name: string }[] }>('GET', '/v1/pools');
    expect(bobs.body.pools.map((p) => p.name)).not.toContain('lab');
  });
});

describe('annex lifecycle', () => {
  const userData = '#!/bin/bash\n# héllo — bytes must survive\necho "annex" > /tmp/x\n';
  let annexId: string;

  it('creates an annex of running, tagged, terminate-on-shutdown instances with IMDSv2', async () => {
    const res = await alice.request<AnnexBody>(
      'POST',
      '/v1/annexes',
      {
        name: 'gpu-burst',
        pool: 'lab',
        count: 2,
        instanceTypes: ['p2.xlarge'],
        userData,
        tags: { project: 'x' },
      },
      { 'Idempotency-Key': 'create-gpu-burst-1' },
    );
    expect(res.status).toBe(201);
    expect(res.body.annex).toMatchObject({
      name: 'gpu-burst',
      state: 'RUNNING',
      requestedCount: 2,
      idleSeconds: 900,
    });
    expect(JSON.stringify(res.body)).not.toContain('héllo');
    annexId = res.body.annex.id;

    const instances = await instancesOf(annexId);
    expect(instances).toHaveLength(2);
    for (const i of instances) {
      expect(i.InstanceType).toBe('p2.xlarge');
      expect(tag(i, 'annex:name')).toBe('gpu-burst');
      expect(tag(i, 'annex:owner')).toBe('arn:aws:iam::123456789012:user/alice');
      expect(tag(i, 'annex:stage')).toBe(stack.stage);
      expect(tag(i, 'annex:expires-at')).toBe(res.body.annex.expiresAt);
      expect(tag(i, 'project')).toBe('x');
      expect(i.MetadataOptions?.HttpTokens).toBe('required');
      const shutdown = await ec2.send(
        new DescribeInstanceAttributeCommand({
          InstanceId: i.InstanceId,
          Attribute: 'instanceInitiatedShutdownBehavior',
        }),
      );
      expect(shutdown.InstanceInitiatedShutdownBehavior?.Value).toBe('terminate');
    }
    // moto validates the profile at RunInstances but records the association only for the first
    // instance of a reservation, and never in DescribeInstances: read it from the associations.
    const associations = await ec2.send(
      new DescribeIamInstanceProfileAssociationsCommand({
        Filters: [{ Name: 'instance-id', Values: instances.map((i) => i.InstanceId ?? '') }],
      }),
    );
    expect(associations.IamInstanceProfileAssociations?.map((a) => a.IamInstanceProfile?.Arn)).toContain(
      stack.instanceProfileArn,
    );
  });

  it('passes the user data to EC2 byte for byte', async () => {
    const [first] = await instancesOf(annexId);
    const attr = await ec2.send(
      new DescribeInstanceAttributeCommand({ InstanceId: first?.InstanceId, Attribute: 'userData' }),
    );
    expect(Buffer.from(attr.UserData?.Value ?? '', 'base64').equals(Buffer.from(userData, 'utf8'))).toBe(
      true,
    );
  });

  it('copies the pool credential into a tagged per-annex SecureString', async () => {
    const name = `/annex/${stack.stage}/annexes/${annexId}/pool-credentials`;
    const param = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    expect(param.Parameter?.Type).toBe('SecureString');
    expect(param.Parameter?.Value).toBe(POOL_SECRET);
    const tags = await ssm.send(
      new ListTagsForResourceCommand({ ResourceType: 'Parameter', ResourceId: name }),
    );
    expect(tags.TagList).toContainEqual({ Key: 'annex:id', Value: annexId });
  });

  it('returns the same annex for the same Idempotency-Key and launches nothing new', async () => {
    const before = await allInstanceCount();
    const res = await alice.request<AnnexBody>(
      'POST',
      '/v1/annexes',
      {
        name: 'gpu-burst',
        pool: 'lab',
        count: 2,
        instanceTypes: ['p2.xlarge'],
        userData,
        tags: { project: 'x' },
      },
      { 'Idempotency-Key': 'create-gpu-burst-1' },
    );
    expect(res.status).toBe(201);
    expect(res.body.annex.id).toBe(annexId);
    expect(await allInstanceCount()).toBe(before);
  });

  it('refuses a second live annex with the same name (409)', async () => {
    const res = await alice.request('POST', '/v1/annexes', {
      name: 'gpu-burst',
      count: 1,
      instanceTypes: ['m5.large'],
    });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ error: { code: 'Conflict' } });
  });

  it('refuses a bad body with 400 naming the field, and writes nothing', async () => {
    const [items, instances] = [await tableItemCount(), await allInstanceCount()];
    const cases: [unknown, string][] = [
      [{ name: 'ok', count: 0, instanceTypes: ['m5.large'] }, 'count'],
      [{ name: '-bad', count: 1, instanceTypes: ['m5.large'] }, 'name'],
      [{ name: 'ok', count: 1, instanceTypes: [] }, 'instanceTypes'],
      [{ name: 'ok', count: 1, instanceTypes: ['m5.large'], durationSeconds: 30 }, 'durationSeconds'],
      [{ name: 'ok', count: 1, instanceTypes: ['m5.large'], tags: { 'annex:id': 'spoof' } }, 'tags.annex:id'],
      [{ name: 'ok', count: 1, instanceTypes: ['m5.large'], surprise: true }, 'surprise'],
    ];
    for (const [body, field] of cases) {
      const res = await alice.request<{ error: { code: string; field: string } }>(
        'POST',
        '/v1/annexes',
        body,
      );
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'ValidationError', field });
    }
    expect(await tableItemCount()).toBe(items);
    expect(await allInstanceCount()).toBe(instances);
  });

  it('extends the lease without adding nodes, and moves the expires-at tags', async () => {
    const res = await alice.request<AnnexBody>('POST', '/v1/annexes/gpu-burst/extend', {
      durationSeconds: 7200,
    });
    expect(res.status).toBe(200);
    const expected = Date.now() + 7200 * 1000;
    expect(Math.abs(Date.parse(res.body.annex.expiresAt) - expected)).toBeLessThan(60_000);
    const instances = await instancesOf(annexId);
    expect(instances).toHaveLength(2);
    for (const i of instances) expect(tag(i, 'annex:expires-at')).toBe(res.body.annex.expiresAt);
  });

  it('adds nodes under the same lease', async () => {
    const before = await alice.request<AnnexBody>('GET', '/v1/annexes/gpu-burst');
    const res = await alice.request<AnnexBody>('POST', '/v1/annexes/gpu-burst/instances', { count: 1 });
    expect(res.status).toBe(200);
    expect(res.body.annex).toMatchObject({ requestedCount: 3, state: 'RUNNING' });
    expect(res.body.annex.expiresAt).toBe(before.body.annex.expiresAt);
    const instances = await instancesOf(annexId);
    expect(instances).toHaveLength(3);
    expect(instances.filter((i) => tag(i, 'annex:batch') === '2')).toHaveLength(1);
  });

  it('shows the annex with its instances and events to its owner and to an admin', async () => {
    const res = await alice.request<AnnexBody & { instances: unknown[]; events: { type: string }[] }>(
      'GET',
      '/v1/annexes/gpu-burst',
    );
    expect(res.status).toBe(200);
    expect(res.body.annex.runningCount).toBe(3);
    expect(res.body.instances).toHaveLength(3);
    expect(res.body.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['created', 'credentials-stored', 'launched', 'extended', 'nodes-requested']),
    );
    const owner = encodeURIComponent('arn:aws:iam::123456789012:user/alice');
    expect((await admin.request('GET', `/v1/annexes/gpu-burst?owner=${owner}`)).status).toBe(200);
    const list = await alice.request<{ annexes: { name: string }[] }>('GET', '/v1/annexes');
    expect(list.body.annexes.map((a) => a.name)).toEqual(['gpu-burst']);
  });

  it('gives another user 404 for your annex, on every route, and changes nothing', async () => {
    const owner = encodeURIComponent('arn:aws:iam::123456789012:user/alice');
    expect((await bob.request('GET', '/v1/annexes/gpu-burst')).status).toBe(404);
    expect((await bob.request('GET', `/v1/annexes/gpu-burst?owner=${owner}`)).status).toBe(404);
    expect((await bob.request('POST', '/v1/annexes/gpu-burst/extend', { durationSeconds: 600 })).status).toBe(
      404,
    );
    expect((await bob.request('POST', '/v1/annexes/gpu-burst/instances', { count: 1 })).status).toBe(404);
    expect((await bob.request('DELETE', '/v1/annexes/gpu-burst')).status).toBe(404);
    expect(await instancesOf(annexId)).toHaveLength(3);
    expect((await bob.request<{ annexes: unknown[] }>('GET', '/v1/annexes')).body.annexes).toEqual([]);
  });

  it('deletes: 202, instances terminated, parameter gone, name free, events kept', async () => {
    const res = await alice.request<AnnexBody>('DELETE', '/v1/annexes/gpu-burst');
    expect(res.status).toBe(202);
    expect(res.body.annex.state).toBe('TERMINATED');
    expect(await instancesOf(annexId)).toHaveLength(0);
    expect(await instancesOf(annexId, ['terminated'])).toHaveLength(3);
    await expect(
      ssm.send(
        new GetParameterCommand({ Name: `/annex/${stack.stage}/annexes/${annexId}/pool-credentials` }),
      ),
    ).rejects.toMatchObject({ name: 'ParameterNotFound' });
    const after = await alice.request<AnnexBody & { events: { type: string }[] }>(
      'GET',
      '/v1/annexes/gpu-burst',
    );
    expect(after.body.annex.state).toBe('TERMINATED');
    expect(after.body.events.map((e) => e.type)).toContain('terminated');
    const again = await alice.request<AnnexBody>('POST', '/v1/annexes', {
      name: 'gpu-burst',
      count: 1,
      instanceTypes: ['m5.large'],
    });
    expect(again.status).toBe(201);
    expect(again.body.annex.id).not.toBe(annexId);
    expect((await alice.request('DELETE', '/v1/annexes/gpu-burst')).status).toBe(202);
  });

  it('refuses to extend an ended annex (409)', async () => {
    const res = await alice.request('POST', '/v1/annexes/gpu-burst/extend', { durationSeconds: 600 });
    expect(res.status).toBe(409);
  });
});
