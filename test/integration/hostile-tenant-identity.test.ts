// Owner identity on the local stack (SigV4-verified gateway, real handlers, DynamoDB Local and
// moto): the owner of what a caller creates is what IAM or the identity provider fixes, never a
// session name the caller chose. IAM users are one owner each; IAM Identity Center sessions
// (AWSReservedSSO_* roles, trusted per session by default) are one owner each; every session of
// any other role is ONE owner, the role ARN; a federated user is refused with nothing written.
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultDevUsers, type DevUser } from '../../scripts/devstack/dev-users.ts';
import type { ApiClient, LocalStack } from '../../scripts/devstack/stack.ts';
import { annexInstances, integrationStack } from '../support/integration-stack.ts';

const ACCT = '123456789012';
const SSO_ROLE = 'AWSReservedSSO_Researchers_0123456789abcdef';
const SHARED_ROLE = 'SharedRole';
const SHARED_ROLE_ARN = `arn:aws:iam::${ACCT}:role/${SHARED_ROLE}`;
const SSO_ALICE = `arn:aws:sts::${ACCT}:assumed-role/${SSO_ROLE}/alice@example.org`;

/** A role session the gateway knows: temporary keys, as STS hands them out. */
const session = (name: string, principalArn: string): DevUser => ({
  name,
  accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
  secretAccessKey: randomBytes(30).toString('base64'),
  sessionToken: randomBytes(48).toString('base64'),
  principalArn,
});

const users: DevUser[] = [
  ...defaultDevUsers(),
  session('sso-alice', SSO_ALICE),
  session('sso-bob', `arn:aws:sts::${ACCT}:assumed-role/${SSO_ROLE}/bob@example.org`),
  session('shared-alice', `arn:aws:sts::${ACCT}:assumed-role/${SHARED_ROLE}/alice`),
  session('shared-bob', `arn:aws:sts::${ACCT}:assumed-role/${SHARED_ROLE}/bob`),
  // Bob assumes the shared role and names his session like Alice's Identity Center session.
  session('spoof', `arn:aws:sts::${ACCT}:assumed-role/${SHARED_ROLE}/alice@example.org`),
  session('federated', `arn:aws:sts::${ACCT}:federated-user/alice`),
];

let stack: LocalStack;
let ec2: EC2Client;
let dynamo: DynamoDBClient;
const as = (name: string): ApiClient => stack.as(name);

beforeAll(async () => {
  stack = await integrationStack('id', { users });
  ec2 = new EC2Client(stack.clientConfig('moto'));
  dynamo = new DynamoDBClient(stack.clientConfig('dynamodb'));
});

afterAll(async () => {
  await stack?.stop();
});

type AnnexBody = { annex: { id: string; name: string; owner: string; state: string } };
type ListBody = { annexes: { name: string; owner: string }[] };
type ErrorBody = { error: { code: string; field?: string } };

const create = (who: string, name: string) =>
  as(who).request<AnnexBody>('POST', '/v1/annexes', { name, count: 1, instanceTypes: ['m5.large'] });

const namesListedBy = async (who: string, query = '') =>
  (await as(who).request<ListBody>('GET', `/v1/annexes${query}`)).body.annexes.map((a) => a.name);

const tableItemCount = async () =>
  (await dynamo.send(new ScanCommand({ TableName: stack.tableName, Select: 'COUNT' }))).Count ?? 0;

const instanceCount = async () =>
  (await ec2.send(new DescribeInstancesCommand({}))).Reservations?.flatMap((r) => r.Instances ?? []).length ??
  0;

describe('owner identity the caller cannot choose', () => {
  it('keeps one IAM user’s annex from another: bob cannot see, extend or end alice’s', async () => {
    // Prepare
    const created = await create('alice', 'alices-own');
    expect(created.status).toBe(201);

    // Act
    const get = await as('bob').request<ErrorBody>('GET', '/v1/annexes/alices-own');
    const extend = await as('bob').request<ErrorBody>('POST', '/v1/annexes/alices-own/extend', {
      durationSeconds: 3600,
    });
    const end = await as('bob').request<ErrorBody>('DELETE', '/v1/annexes/alices-own');
    const byOwner = await namesListedBy('bob', `?owner=${encodeURIComponent(created.body.annex.owner)}`);

    // Assess
    expect(created.body.annex.owner).toBe(`arn:aws:iam::${ACCT}:user/alice`);
    expect([get.status, extend.status, end.status]).toEqual([404, 404, 404]);
    expect(await namesListedBy('bob')).not.toContain('alices-own');
    expect(byOwner).toEqual([]);
    expect((await as('alice').request<AnnexBody>('GET', '/v1/annexes/alices-own')).body.annex.state).not.toBe(
      'TERMINATED',
    );
  });

  it('owns IAM Identity Center sessions one by one: neither another SSO user nor a spoofed session name reaches alice’s', async () => {
    // Prepare
    const created = await create('sso-alice', 'sso-gpu');
    expect(created.status).toBe(201);

    // Act
    const otherUser = await as('sso-bob').request<ErrorBody>('GET', '/v1/annexes/sso-gpu');
    const spoofGet = await as('spoof').request<ErrorBody>('GET', '/v1/annexes/sso-gpu');
    const spoofGetByOwner = await as('spoof').request<ErrorBody>(
      'GET',
      `/v1/annexes/sso-gpu?owner=${encodeURIComponent(SSO_ALICE)}`,
    );
    const spoofEnd = await as('spoof').request<ErrorBody>('DELETE', '/v1/annexes/sso-gpu');
    const spoofExtend = await as('spoof').request<ErrorBody>('POST', '/v1/annexes/sso-gpu/extend', {
      durationSeconds: 3600,
    });

    // Assess: the owner is the session as Identity Center named it; the spoof is the shared role.
    expect(created.body.annex.owner).toBe(SSO_ALICE);
    expect([
      otherUser.status,
      spoofGet.status,
      spoofGetByOwner.status,
      spoofEnd.status,
      spoofExtend.status,
    ]).toEqual([404, 404, 404, 404, 404]);
    expect(await namesListedBy('sso-bob')).not.toContain('sso-gpu');
    expect(await namesListedBy('spoof')).not.toContain('sso-gpu');
    expect(await namesListedBy('spoof', `?owner=${encodeURIComponent(SSO_ALICE)}`)).toEqual([]);
    const still = await as('sso-alice').request<AnnexBody>('GET', '/v1/annexes/sso-gpu');
    expect(still.body.annex.state).not.toBe('TERMINATED');
  });

  it('makes every session of any other role one owner, the role ARN, on the annex and its instances', async () => {
    // Prepare
    const created = await create('shared-alice', 'shared-burst');
    expect(created.status).toBe(201);

    // Act
    const seenByBob = await as('shared-bob').request<AnnexBody>('GET', '/v1/annexes/shared-burst');
    const clash = await create('shared-bob', 'shared-burst');
    const instances = await annexInstances(ec2, created.body.annex.id);

    // Assess: one owner, so one namespace of names (bob's create is the same name claim).
    expect(created.body.annex.owner).toBe(SHARED_ROLE_ARN);
    expect(seenByBob.status).toBe(200);
    expect(seenByBob.body.annex.id).toBe(created.body.annex.id);
    expect(clash.status).toBe(409);
    expect(await namesListedBy('shared-bob')).toContain('shared-burst');
    expect(await namesListedBy('spoof')).toContain('shared-burst');
    expect(instances.length).toBeGreaterThan(0);
    for (const i of instances) {
      expect(i.Tags?.find((t) => t.Key === 'annex:owner')?.Value).toBe(SHARED_ROLE_ARN);
    }
  });

  it('lets an admin reach a role’s annexes by the role ARN', async () => {
    // Act
    const listed = await namesListedBy('admin', `?owner=${encodeURIComponent(SHARED_ROLE_ARN)}`);
    const got = await as('admin').request<AnnexBody>(
      'GET',
      `/v1/annexes/shared-burst?owner=${encodeURIComponent(SHARED_ROLE_ARN)}`,
    );

    // Assess
    expect(listed).toContain('shared-burst');
    expect(got.status).toBe(200);
  });

  it('refuses a federated user (it names itself) with 403, writing and launching nothing', async () => {
    // Prepare
    const [items, launched] = [await tableItemCount(), await instanceCount()];

    // Act
    const refused = await as('federated').request<ErrorBody>('POST', '/v1/annexes', {
      name: 'fed',
      count: 1,
      instanceTypes: ['m5.large'],
    });
    const listed = await as('federated').request<ErrorBody>('GET', '/v1/annexes');

    // Assess
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('Forbidden');
    expect(listed.status).toBe(403);
    expect(await tableItemCount()).toBe(items);
    expect(await instanceCount()).toBe(launched);
  });
});
