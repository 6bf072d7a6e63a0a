// A hostile tenant on a shared pool, through the real HTTP layer (SigV4 gateway → handlers → SDK →
// DynamoDB Local and moto): every request outside the admin's launch policy or over the user's
// quota is refused with the field and the rule, and NOTHING is written or launched; the table,
// EC2, SSM and Scheduler are read directly to prove it. The same requests succeed on the user's
// private pool or on a pool whose admin allows them; concurrent creates cannot beat the quota.
//
// moto is reached through the shim the concurrency suite uses (one request at a time; moto is not
// thread-safe, and the concurrent creates below launch at once).
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateKeyPairCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { ListSchedulesCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { DescribeParametersCommand, SSMClient } from '@aws-sdk/client-ssm';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ApiClient, LocalStack } from '../../scripts/devstack/stack.ts';
import { startMotoShim, type MotoShim } from '../support/moto-shim.ts';
import { integrationStack } from '../support/integration-stack.ts';

let shim: MotoShim;
let stack: LocalStack;
let admin: ApiClient;
let alice: ApiClient;
let ec2: EC2Client;
let ssm: SSMClient;
let scheduler: SchedulerClient;
let dynamo: DynamoDBClient;

const FOREIGN_IMAGE = 'ami-0123456789abcdef0';
const FOREIGN_SUBNET = 'subnet-0123456789abcdef0';
const FOREIGN_SG = 'sg-0123456789abcdef0';
const password = () => ({ type: 'password', value: randomBytes(18).toString('base64url') });

interface ErrorBody {
  error: { code: string; message: string; field?: string };
}
interface AnnexBody {
  annex: { id: string; name: string; state: string; expiresAt: string; version: number };
}

beforeAll(async () => {
  shim = await startMotoShim(inject('motoEndpoint'), { oneRequestAtATime: true });
  stack = await integrationStack('host', { motoEndpoint: shim.endpoint });
  admin = stack.as('admin');
  alice = stack.as('alice');
  ec2 = new EC2Client(stack.clientConfig('moto'));
  ssm = new SSMClient(stack.clientConfig('moto'));
  scheduler = new SchedulerClient(stack.clientConfig('moto'));
  dynamo = new DynamoDBClient(stack.clientConfig('dynamodb'));
  // The admin's shared GPU pool: m5/c5 only, 2 h leases, 1.5 h lifetime, small quotas.
  const gpu = await admin.request('PUT', '/v1/pools/gpu', {
    collectorHost: '127.0.0.1',
    credential: password(),
    policy: {
      allowedInstanceTypes: ['m5.*', 'c5.*'],
      maxLeaseSeconds: 7200,
      maxLifetimeSeconds: 5400,
      quota: { maxInstances: 3, maxVCpus: 6, maxMonthlySpendUsd: 0.4 },
    },
  });
  expect(gpu.status).toBe(200);
});

afterAll(async () => {
  for (const c of [ec2, ssm, scheduler, dynamo]) c?.destroy();
  await stack?.stop();
  await shim?.stop();
});

/** Everything a refused request could have written or launched. */
const footprint = async () => {
  const items = await dynamo.send(new ScanCommand({ TableName: stack.tableName }));
  const reservations = (await ec2.send(new DescribeInstancesCommand({}))).Reservations ?? [];
  const parameters = await ssm.send(new DescribeParametersCommand({ MaxResults: 50 }));
  const schedules = await scheduler.send(new ListSchedulesCommand({ GroupName: stack.scheduleGroup }));
  return {
    // Every item, version and all: a usage record, a name claim, an event or an annex would show.
    items: JSON.stringify((items.Items ?? []).map((i) => JSON.stringify(i)).sort()),
    instances: reservations.flatMap((r) => r.Instances ?? []).length,
    parameters: (parameters.Parameters ?? []).map((p) => p.Name).sort(),
    schedules: (schedules.Schedules ?? []).map((s) => s.Name).sort(),
  };
};

const create = (client: ApiClient, body: Record<string, unknown>) =>
  client.request<AnnexBody & ErrorBody>('POST', '/v1/annexes', {
    count: 1,
    instanceTypes: ['m5.large'],
    durationSeconds: 3600,
    ...body,
  });

let live: AnnexBody['annex'];

describe('GET /v1/pools', () => {
  it('shows each pool its launch policy: the dev default pool is shared with the default policy', async () => {
    const res = await alice.request<{
      pools: { name: string; scope: string; policy: Record<string, unknown> }[];
    }>('GET', '/v1/pools');
    expect(res.status).toBe(200);
    const byName = Object.fromEntries(res.body.pools.map((p) => [p.name, p]));
    expect(byName.default).toMatchObject({
      scope: 'shared',
      policy: {
        allowedImageIds: [stack.imageId],
        allowedSubnetIds: stack.subnetIds,
        allowedSecurityGroupIds: stack.securityGroupIds,
        allowUserImage: false,
        allowUserData: false,
        allowKeyPair: false,
      },
    });
    expect(byName.gpu?.policy).toMatchObject({
      allowedInstanceTypes: ['m5.*', 'c5.*'],
      maxLeaseSeconds: 7200,
      maxLifetimeSeconds: 5400,
      quota: { maxInstances: 3, maxVCpus: 6, maxMonthlySpendUsd: 0.4 },
    });
  });
});

describe('a non-admin user on a shared pool', () => {
  beforeAll(async () => {
    // One allowed annex holds 1 instance, 2 vCPUs and $0.096 of the quota (m5.large for an hour).
    const ok = await create(alice, { name: 'allowed', pool: 'gpu' });
    expect(ok.status).toBe(201);
    live = ok.body.annex;
  });

  it.each([
    ['their own user data', { userData: '#!/bin/sh\ncat /etc/condor/passwords.d/POOL\n' }, 403, 'userData'],
    ['their own image', { imageId: FOREIGN_IMAGE }, 403, 'imageId'],
    ['a key pair', { keyName: 'mine' }, 403, 'keyName'],
    ['a foreign subnet', { subnetIds: [FOREIGN_SUBNET] }, 403, 'subnetIds'],
    ['a foreign security group', { securityGroupIds: [FOREIGN_SG] }, 403, 'securityGroupIds'],
    ['a disallowed instance type', { instanceTypes: ['p2.xlarge'] }, 403, 'instanceTypes'],
    ['more live instances than the quota', { count: 3 }, 422, 'count'],
    ['more live vCPUs than the quota', { count: 2, instanceTypes: ['m5.xlarge'] }, 422, 'count'],
    ['more spend per month than the quota', { count: 2, durationSeconds: 7200 }, 422, 'durationSeconds'],
    ['a lease over the longest lease', { durationSeconds: 10_800 }, 422, 'durationSeconds'],
  ])('is refused %s, with nothing written or launched', async (_what, body, status, field) => {
    const before = await footprint();
    const res = await create(alice, { name: 'hostile', pool: 'gpu', ...body });
    expect(res.status).toBe(status);
    expect(res.body.error.field).toBe(field);
    expect(res.body.error.message).toMatch(new RegExp(`^${field}: pool "gpu" `));
    expect(await footprint()).toEqual(before);
  });

  it('is told which images the pool allows', async () => {
    const res = await create(alice, { name: 'hostile', pool: 'gpu', imageId: FOREIGN_IMAGE });
    expect(res.body.error.message).toBe(`imageId: pool "gpu" allows only ${stack.imageId}`);
  });

  it('is refused an extension beyond the longest lifetime, with nothing written', async () => {
    const before = await footprint();
    const res = await alice.request<ErrorBody>('POST', '/v1/annexes/allowed/extend', {
      durationSeconds: 7200,
    });
    expect(res.status).toBe(422);
    expect(res.body.error.field).toBe('durationSeconds');
    expect(res.body.error.message).toMatch(/from creation to expiry/);
    expect(await footprint()).toEqual(before);
    const detail = await alice.request<AnnexBody>('GET', '/v1/annexes/allowed');
    expect(detail.body.annex).toMatchObject({ expiresAt: live.expiresAt, version: live.version });
  });

  it('is refused nodes of a disallowed type or over the quota, with nothing written or launched', async () => {
    for (const [body, status, field] of [
      [{ count: 1, instanceTypes: ['g5.xlarge'] }, 403, 'instanceTypes'],
      [{ count: 3 }, 422, 'count'],
    ] as const) {
      const before = await footprint();
      const res = await alice.request<ErrorBody>('POST', '/v1/annexes/allowed/instances', body);
      expect(res.status).toBe(status);
      expect(res.body.error.field).toBe(field);
      expect(await footprint()).toEqual(before);
    }
  });

  it('may use the pool within its policy and quota again once an annex ends', async () => {
    const second = await create(alice, { name: 'second', pool: 'gpu', count: 2 });
    expect(second.status).toBe(201);
    const over = await create(alice, { name: 'third', pool: 'gpu' });
    expect(over.status).toBe(422);
    // Ending an annex releases its instances and vCPUs (its committed spend stays in the month).
    expect((await alice.request('DELETE', '/v1/annexes/second')).status).toBe(202);
    const again = await create(alice, { name: 'third', pool: 'gpu', durationSeconds: 900 });
    expect(again.status).toBe(201);
  });
});

describe('the same requests where they are allowed', () => {
  it("succeed on the user's private pool: own image, user data and key pair", async () => {
    const own = await alice.request<{ pool: { policy: Record<string, unknown> } }>('PUT', '/v1/pools/mine', {
      collectorHost: '127.0.0.1',
      credential: password(),
    });
    expect(own.status).toBe(200);
    expect(own.body.pool.policy).toMatchObject({
      allowUserImage: true,
      allowUserData: true,
      allowKeyPair: true,
    });
    const images = await ec2.send(new DescribeImagesCommand({}));
    const otherImage = (images.Images ?? []).map((i) => i.ImageId).find((id) => id !== stack.imageId);
    expect(otherImage).toBeDefined();
    await ec2.send(new CreateKeyPairCommand({ KeyName: 'alice-key' }));

    const res = await create(alice, {
      name: 'private-all',
      pool: 'mine',
      imageId: otherImage,
      keyName: 'alice-key',
      userData: '#!/bin/sh\necho mine\n',
      instanceTypes: ['p2.xlarge'],
    });
    expect(res.status).toBe(201);
    const out = await ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:annex:id', Values: [res.body.annex.id] }] }),
    );
    const instance = out.Reservations?.[0]?.Instances?.[0];
    expect(instance).toMatchObject({ ImageId: otherImage, KeyName: 'alice-key', InstanceType: 'p2.xlarge' });
  });

  it("still keep a private pool to the stack's subnets (only an admin may open others)", async () => {
    const res = await alice.request<ErrorBody>('PUT', '/v1/pools/mine2', {
      collectorHost: '127.0.0.1',
      credential: password(),
      policy: { allowedSubnetIds: [FOREIGN_SUBNET] },
    });
    expect(res.status).toBe(403);
    expect(res.body.error.field).toBe('policy.allowedSubnetIds');
  });

  it("succeed on a shared pool whose admin's policy allows them", async () => {
    const open = await admin.request('PUT', '/v1/pools/open', {
      collectorHost: '127.0.0.1',
      credential: password(),
      policy: { allowUserData: true, allowedInstanceTypes: ['p2.*', 'm5.*'] },
    });
    expect(open.status).toBe(200);
    const res = await create(alice, {
      name: 'open-gpu',
      pool: 'open',
      userData: '#!/bin/sh\necho ok\n',
      instanceTypes: ['p2.xlarge'],
      durationSeconds: 10_800,
    });
    expect(res.status).toBe(201);
  });
});

describe('concurrent creates', () => {
  it('cannot together exceed the quota: exactly as many are admitted as it allows', async () => {
    const race = await admin.request('PUT', '/v1/pools/race', {
      collectorHost: '127.0.0.1',
      credential: password(),
      policy: { quota: { maxInstances: 2 } },
    });
    expect(race.status).toBe(200);

    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => create(alice, { name: `race-${i}`, pool: 'race' })),
    );

    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(2);
    for (const r of results.filter((x) => x.status !== 201)) {
      expect(r.status).toBe(422);
      expect(r.body.error.field).toBe('count');
    }
    const admitted = results.filter((r) => r.status === 201).map((r) => r.body.annex.id);
    const out = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'tag:annex:name', Values: results.map((_, i) => `race-${i}`) },
          { Name: 'tag:annex:stage', Values: [stack.stage] },
          { Name: 'instance-state-name', Values: ['pending', 'running'] },
        ],
      }),
    );
    const launched = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    expect(launched).toHaveLength(2);
    const annexIds = new Set(launched.map((i) => i.Tags?.find((t) => t.Key === 'annex:id')?.Value));
    expect([...annexIds].sort()).toEqual(admitted.sort());
  });
});
