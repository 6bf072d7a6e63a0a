// The instance routes' handlers, as API Gateway invokes them (payload 2.0 events with the IAM
// authorizer context), on the real wiring with the SDK clients mocked: exact DynamoDB and SSM calls.
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { handler as condorConfig } from '../../../handlers/annex-condor-config.ts';
import { handler as bootstrap } from '../../../handlers/instance-bootstrap.ts';
import { handler as heartbeat } from '../../../handlers/instance-heartbeat.ts';
import { handler as interruption } from '../../../handlers/instance-interruption.ts';
import { keys } from '../../../shared/aws/keys.ts';
import type { Event } from '../../../shared/http/api.ts';

const TABLE = 'annex-unit-leases';
const ROLE = 'annex-unit-instance';
const ANNEX_ID = 'ax-0123456789abcdef0123';
const INSTANCE_ID = 'i-0123456789abcdef0';
const ALICE = 'arn:aws:iam::123456789012:user/alice';
const INSTANCE = `arn:aws:sts::123456789012:assumed-role/${ROLE}/${INSTANCE_ID}`;
const SECRET = 'pool-password-that-must-not-leak';
const EXPIRES_AT = new Date(Date.now() + 3600_000).toISOString();

const annexItem = (overrides: Record<string, unknown> = {}) => ({
  ...keys.annex(ANNEX_ID),
  entity: 'annex',
  id: ANNEX_ID,
  name: 'burst',
  owner: ALICE,
  pool: 'default',
  poolCredentialParameter: '/annex/unit/pools/shared/default/credential',
  state: 'RUNNING',
  spec: {
    market: 'on-demand',
    instanceTypes: ['m5.large'],
    imageId: 'ami-0123456789abcdef0',
    subnetIds: [],
    securityGroupIds: [],
    tags: {},
  },
  requestedCount: 1,
  batches: 1,
  idleSeconds: 900,
  createdAt: '2030-01-01T00:00:00.000Z',
  updatedAt: '2030-01-01T00:00:00.000Z',
  expiresAt: EXPIRES_AT,
  requestHash: 'f'.repeat(64),
  condor: {
    collectorHost: 'cm.example.org',
    collectorPort: 9618,
    credentialType: 'password',
    allowedUsers: ['alice'],
  },
  version: 3,
  ...overrides,
});

const instanceItem = (overrides: Record<string, unknown> = {}) => ({
  ...keys.instance(ANNEX_ID, INSTANCE_ID),
  entity: 'instance',
  instanceId: INSTANCE_ID,
  annexId: ANNEX_ID,
  batch: 1,
  instanceType: 'm5.large',
  market: 'on-demand',
  state: 'running',
  launchedAt: '2030-01-01T00:00:00.000Z',
  updatedAt: '2030-01-01T00:00:00.000Z',
  publicIpAddress: '203.0.113.7',
  ...overrides,
});

const event = (options: {
  userArn: string;
  routeKey: string;
  body?: unknown;
  pathParameters?: Record<string, string>;
}): Event =>
  ({
    version: '2.0',
    routeKey: options.routeKey,
    rawPath: options.routeKey.split(' ')[1] ?? '/',
    rawQueryString: '',
    headers: { 'content-type': 'application/json' },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    isBase64Encoded: false,
    ...(options.pathParameters === undefined ? {} : { pathParameters: options.pathParameters }),
    requestContext: {
      accountId: '123456789012',
      apiId: 'api0123456',
      domainName: 'api0123456.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'api0123456',
      http: { method: 'POST', path: '/', protocol: 'HTTP/1.1', sourceIp: '192.0.2.1', userAgent: 'test' },
      requestId: 'apigw-request-1',
      routeKey: options.routeKey,
      stage: '$default',
      time: '01/Jan/2030:00:00:00 +0000',
      timeEpoch: 1893456000000,
      authorizer: {
        iam: {
          accessKey: 'ASIAEXAMPLE',
          accountId: '123456789012',
          callerId: 'AROAEXAMPLE',
          cognitoIdentity: null,
          principalOrgId: null,
          userArn: options.userArn,
          userId: 'AROAEXAMPLE',
        },
      },
    },
  }) as unknown as Event;

const context = (): Context => ({
  callbackWaitsForEmptyEventLoop: false,
  functionName: 'annex-unit-instanceBootstrap',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:annex-unit-instanceBootstrap',
  memoryLimitInMB: '512',
  awsRequestId: 'lambda-request-1',
  logGroupName: '/aws/lambda/annex-unit-instanceBootstrap',
  logStreamName: '2030/01/01/[$LATEST]0123',
  getRemainingTimeInMillis: () => 30_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
});

const call = async (
  fn: (event: Event, context: Context) => Promise<APIGatewayProxyStructuredResultV2>,
  e: Event,
): Promise<{ status: number; body: Record<string, unknown> }> => {
  const result = await fn(e, context());
  return {
    status: result.statusCode ?? 0,
    body: JSON.parse(result.body ?? 'null') as Record<string, unknown>,
  };
};

const conditionFailed = (item?: Record<string, unknown>) =>
  new ConditionalCheckFailedException({
    message: 'The conditional request failed',
    $metadata: { httpStatusCode: 400 },
    ...(item === undefined ? {} : { Item: item as never }),
  });

describe('instance route handlers', () => {
  const docMock = mockClient(DynamoDBDocumentClient);
  const ssmMock = mockClient(SSMClient);
  let logged: string[];

  beforeAll(() => {
    Object.assign(process.env, {
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'not-a-secret',
      ANNEX_STAGE: 'unit',
      ANNEX_TABLE_NAME: TABLE,
      ANNEX_ADMIN_ARNS: '',
      ANNEX_INSTANCE_ROLE_NAME: ROLE,
    });
  });

  beforeEach(() => {
    docMock.reset();
    ssmMock.reset();
    docMock.on(GetCommand, { Key: keys.instanceLookup(INSTANCE_ID) }).resolves({
      Item: { ...keys.instanceLookup(INSTANCE_ID), entity: 'instance-lookup', annexId: ANNEX_ID },
    });
    docMock.on(GetCommand, { Key: keys.annex(ANNEX_ID) }).resolves({ Item: annexItem() });
    docMock.on(GetCommand, { Key: keys.instance(ANNEX_ID, INSTANCE_ID) }).resolves({ Item: instanceItem() });
    docMock.on(UpdateCommand).resolves({});
    docMock.on(PutCommand).resolves({});
    ssmMock.on(GetParameterCommand).resolves({ Parameter: { Value: SECRET } });
    logged = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(String(chunk));
      return true;
    });
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  describe('POST /v1/instances/self/bootstrap', () => {
    const routeKey = 'POST /v1/instances/self/bootstrap';

    it('marks the instance with a conditional write, then reads the annex copy of the credential', async () => {
      // Prepare
      const order: string[] = [];
      docMock.on(UpdateCommand).callsFake(() => {
        order.push('mark');
        return {};
      });
      ssmMock.on(GetParameterCommand).callsFake(() => {
        order.push('read');
        return { Parameter: { Value: SECRET } };
      });

      // Act
      const res = await call(bootstrap, event({ userArn: INSTANCE, routeKey }));

      // Assess
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        annexId: ANNEX_ID,
        annexName: 'burst',
        instanceId: INSTANCE_ID,
        idleSeconds: 900,
        heartbeatIntervalSeconds: 60,
        collector: { host: 'cm.example.org', port: 9618 },
        credential: { type: 'password', value: SECRET },
      });
      expect(res.body.condorConfig).toContain('TCP_FORWARDING_HOST = 203.0.113.7');
      for (const key of [
        keys.instanceLookup(INSTANCE_ID),
        keys.annex(ANNEX_ID),
        keys.instance(ANNEX_ID, INSTANCE_ID),
      ]) {
        expect(docMock).toHaveReceivedCommandWith(GetCommand, {
          TableName: TABLE,
          Key: key,
          ConsistentRead: true,
        });
      }
      expect(docMock).toHaveReceivedCommandWith(UpdateCommand, {
        TableName: TABLE,
        Key: keys.instance(ANNEX_ID, INSTANCE_ID),
        UpdateExpression: 'SET bootstrappedAt = :at',
        ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(bootstrappedAt)',
      });
      expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, {
        Name: `/annex/unit/annexes/${ANNEX_ID}/pool-credentials`,
        WithDecryption: true,
      });
      expect(order).toEqual(['mark', 'read']);
      expect(logged.join('')).not.toContain(SECRET);
    });

    it('refuses a second bootstrap with 403, records it and never reads the secret', async () => {
      // Prepare
      docMock
        .on(UpdateCommand)
        .rejects(conditionFailed({ bootstrappedAt: { S: '2030-01-01T00:01:00.000Z' } }));

      // Act
      const res = await call(bootstrap, event({ userArn: INSTANCE, routeKey }));

      // Assess
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ error: { code: 'Forbidden' } });
      expect(ssmMock).not.toHaveReceivedCommand(GetParameterCommand);
      expect(docMock).toHaveReceivedCommandWith(PutCommand, {
        TableName: TABLE,
        Item: expect.objectContaining({
          PK: keys.annexPartition(ANNEX_ID),
          type: 'bootstrap-refused',
          detail: { instanceId: INSTANCE_ID, why: 'already-bootstrapped' },
        }),
      });
      expect(logged.join('')).not.toContain(SECRET);
    });

    it('refuses a user with 403 before reading anything', async () => {
      // Act
      const res = await call(bootstrap, event({ userArn: ALICE, routeKey }));

      // Assess
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ error: { code: 'Forbidden' } });
      expect(docMock.calls()).toHaveLength(0);
      expect(ssmMock.calls()).toHaveLength(0);
    });

    it('refuses an instance of an ended annex with 403 and records the refusal', async () => {
      // Prepare
      docMock
        .on(GetCommand, { Key: keys.annex(ANNEX_ID) })
        .resolves({ Item: annexItem({ state: 'TERMINATED' }) });

      // Act
      const res = await call(bootstrap, event({ userArn: INSTANCE, routeKey }));

      // Assess
      expect(res.status).toBe(403);
      expect(docMock).not.toHaveReceivedCommand(UpdateCommand);
      expect(ssmMock.calls()).toHaveLength(0);
      expect(docMock).toHaveReceivedCommandWith(PutCommand, {
        Item: expect.objectContaining({
          type: 'bootstrap-refused',
          detail: { instanceId: INSTANCE_ID, why: 'annex-not-live' },
        }),
      });
    });

    it('gives the bootstrap back when SSM fails, and answers 503', async () => {
      // Prepare
      ssmMock
        .on(GetParameterCommand)
        .rejects(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));

      // Act
      const res = await call(bootstrap, event({ userArn: INSTANCE, routeKey }));

      // Assess
      expect(res.status).toBe(503);
      expect(docMock).toHaveReceivedCommandWith(UpdateCommand, {
        UpdateExpression: 'REMOVE bootstrappedAt',
        ConditionExpression: 'bootstrappedAt = :at',
      });
    });
  });

  describe('POST /v1/instances/self/heartbeat', () => {
    const routeKey = 'POST /v1/instances/self/heartbeat';
    const body = { claimedSlots: 0, totalSlots: 2, idleSeconds: 30, state: 'joined' };

    it('writes the heartbeat fields, setting idleSince only if it is unset', async () => {
      // Act
      const res = await call(heartbeat, event({ userArn: INSTANCE, routeKey, body }));

      // Assess
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ expiresAt: EXPIRES_AT, idleSeconds: 900, action: 'continue' });
      expect(docMock).toHaveReceivedCommandWith(UpdateCommand, {
        TableName: TABLE,
        Key: keys.instance(ANNEX_ID, INSTANCE_ID),
        ConditionExpression: 'attribute_exists(PK)',
        UpdateExpression:
          'SET lastHeartbeatAt = :at, claimedSlots = :claimed, totalSlots = :total, agentState = :agent, ' +
          'idleSince = if_not_exists(idleSince, :idleSince)',
        ExpressionAttributeValues: expect.objectContaining({
          ':claimed': 0,
          ':total': 2,
          ':agent': 'joined',
        }),
      });
      expect(ssmMock.calls()).toHaveLength(0);
    });

    it('removes idleSince while a slot is claimed', async () => {
      // Act
      await call(heartbeat, event({ userArn: INSTANCE, routeKey, body: { ...body, claimedSlots: 1 } }));

      // Assess
      const update = docMock.commandCalls(UpdateCommand)[0]?.args[0].input;
      expect(update?.UpdateExpression).toMatch(/ REMOVE idleSince$/);
      expect(update?.ExpressionAttributeValues).not.toHaveProperty(':idleSince');
    });

    it('answers shutdown for an ended annex and writes nothing', async () => {
      // Prepare
      docMock
        .on(GetCommand, { Key: keys.annex(ANNEX_ID) })
        .resolves({ Item: annexItem({ state: 'TERMINATING' }) });

      // Act
      const res = await call(heartbeat, event({ userArn: INSTANCE, routeKey, body }));

      // Assess
      expect(res.status).toBe(200);
      expect(res.body.action).toBe('shutdown');
      expect(docMock).not.toHaveReceivedCommand(UpdateCommand);
      expect(docMock).not.toHaveReceivedCommand(PutCommand);
    });

    it.each([
      [{ ...body, claimedSlots: -1 }, 'claimedSlots'],
      [{ ...body, totalSlots: 1.5 }, 'totalSlots'],
      [{ ...body, idleSeconds: '30' }, 'idleSeconds'],
      [{ ...body, state: 'asleep' }, 'state'],
      [{ claimedSlots: 0, totalSlots: 2, idleSeconds: 30 }, 'state'],
      [{ ...body, extra: true }, 'extra'],
    ])('refuses a bad body with 400 naming the field (%j)', async (bad, field) => {
      // Act
      const res = await call(heartbeat, event({ userArn: INSTANCE, routeKey, body: bad }));

      // Assess
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: { code: 'ValidationError', field } });
      expect(docMock.calls()).toHaveLength(0);
    });

    it('refuses a user with 403', async () => {
      const res = await call(heartbeat, event({ userArn: ALICE, routeKey, body }));
      expect(res.status).toBe(403);
    });
  });

  describe('POST /v1/instances/self/interruption', () => {
    const routeKey = 'POST /v1/instances/self/interruption';

    it('records the interruption and an annex event, and answers 202 {}', async () => {
      // Act
      const res = await call(
        interruption,
        event({ userArn: INSTANCE, routeKey, body: { action: 'terminate', time: '2030-01-01T00:10:00Z' } }),
      );

      // Assess
      expect(res).toEqual({ status: 202, body: {} });
      // The notice and its event in one transaction: a repeat (or EC2's own event) writes neither.
      expect(docMock).toHaveReceivedCommandWith(TransactWriteCommand, {
        TransactItems: [
          {
            Update: expect.objectContaining({
              Key: keys.instance(ANNEX_ID, INSTANCE_ID),
              UpdateExpression: 'SET interruptedAt = :at, interruption = :interruption',
              ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(interruption)',
              ExpressionAttributeValues: expect.objectContaining({
                ':interruption': { action: 'terminate', time: '2030-01-01T00:10:00Z' },
              }),
            }),
          },
          { Put: expect.objectContaining({ Item: expect.objectContaining({ type: 'spot-interruption' }) }) },
        ],
      });
    });

    it('refuses a time that is not ISO 8601 with 400', async () => {
      const res = await call(
        interruption,
        event({ userArn: INSTANCE, routeKey, body: { action: 'terminate', time: 'soon' } }),
      );
      expect(res.body).toMatchObject({ error: { code: 'ValidationError', field: 'time' } });
    });
  });

  describe('GET /v1/annexes/{name}/condor-config', () => {
    it('gives the owner the fragment without any secret or instance address', async () => {
      // Prepare
      docMock
        .on(GetCommand, { Key: keys.nameClaim(ALICE, 'burst') })
        .resolves({ Item: { ...keys.nameClaim(ALICE, 'burst'), annexId: ANNEX_ID } });

      // Act
      const res = await call(
        condorConfig,
        event({
          userArn: ALICE,
          routeKey: 'GET /v1/annexes/{name}/condor-config',
          pathParameters: { name: 'burst' },
        }),
      );

      // Assess
      expect(res.status).toBe(200);
      expect(Object.keys(res.body)).toEqual(['condorConfig']);
      expect(res.body.condorConfig).toContain('EC2InstanceID = "i-00000000000000000"');
      expect(res.body.condorConfig).not.toContain('203.0.113.7');
      expect(ssmMock.calls()).toHaveLength(0);
    });
  });
});
