// The Slack adapters' exact calls (aws-sdk-client-mock): the replay nonce is a conditional put
// with a TTL, the worker is invoked asynchronously, the secrets are read decrypted and cached.
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { InvokeCommand, LambdaClient, TooManyRequestsException } from '@aws-sdk/client-lambda';
import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { LambdaSlackJobs } from '../../../shared/aws/slack-jobs.ts';
import { SsmSlackSecrets } from '../../../shared/aws/slack-secrets.ts';
import { DynamoSlackStore } from '../../../shared/aws/slack-store.ts';
import type { SlackJob } from '../../../shared/slack/model.ts';
import { FakeClock } from '../../support/fakes.ts';

const ddb = mockClient(DynamoDBDocumentClient);
const lambda = mockClient(LambdaClient);
const ssm = mockClient(SSMClient);
const client = () =>
  new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });

beforeEach(() => {
  ddb.reset();
  lambda.reset();
  ssm.reset();
});

describe('DynamoSlackStore', () => {
  it('records a signature once, with a TTL, by a conditional put; a second time is a replay', async () => {
    const store = new DynamoSlackStore(client(), 'leases');
    ddb
      .on(PutCommand)
      .resolvesOnce({})
      .rejectsOnce(new ConditionalCheckFailedException({ message: 'x', $metadata: {} }));

    expect(await store.recordNonce('v0=abc', 1800000000)).toBe('recorded');
    expect(await store.recordNonce('v0=abc', 1800000000)).toBe('replay');
    expect(ddb).toHaveReceivedCommandWith(PutCommand, {
      TableName: 'leases',
      Item: { PK: 'SLACKNONCE#v0=abc', SK: 'NONCE', entity: 'slack-nonce', ttl: 1800000000 },
      ConditionExpression: 'attribute_not_exists(PK)',
    });
  });

  it('reads a mapping consistently and strips the key attributes', async () => {
    const store = new DynamoSlackStore(client(), 'leases');
    ddb.on(GetCommand).resolves({
      Item: {
        PK: 'SLACKUSER#T1',
        SK: 'USER#U1',
        entity: 'slack-identity',
        teamId: 'T1',
        userId: 'U1',
        pools: ['default'],
      },
    });

    expect(await store.getIdentity('T1', 'U1')).toEqual({ teamId: 'T1', userId: 'U1', pools: ['default'] });
    expect(ddb).toHaveReceivedCommandWith(GetCommand, {
      Key: { PK: 'SLACKUSER#T1', SK: 'USER#U1' },
      ConsistentRead: true,
    });
  });

  it('keeps an existing watch (a retried create must not forget a sent warning) and marks warnings on it only', async () => {
    const store = new DynamoSlackStore(client(), 'leases');
    ddb.on(PutCommand).rejects(new ConditionalCheckFailedException({ message: 'x', $metadata: {} }));
    ddb.on(UpdateCommand).rejects(new ConditionalCheckFailedException({ message: 'x', $metadata: {} }));
    ddb.on(DeleteCommand).resolves({});

    await store.putWatch({ annexId: 'ax-1', teamId: 'T1', userId: 'U1', channelId: 'C1', createdAt: 't' });
    await store.markWarned('ax-1', '2026-11-25T12:00:00.000Z');
    await store.deleteWatch('ax-1');

    expect(ddb).toHaveReceivedCommandWith(PutCommand, {
      Item: expect.objectContaining({ PK: 'SLACKWATCH', SK: 'ANNEX#ax-1' }) as unknown as Record<
        string,
        unknown
      >,
      ConditionExpression: 'attribute_not_exists(PK)',
    });
    expect(ddb).toHaveReceivedCommandWith(UpdateCommand, { ConditionExpression: 'attribute_exists(PK)' });
  });
});

describe('LambdaSlackJobs', () => {
  const job: SlackJob = {
    teamId: 'T1',
    userId: 'U1',
    responseUrl: 'https://hooks.slack.com/x',
    idempotencyKey: 'slack:T1:1',
    receivedAt: 't',
    work: { type: 'command', command: { kind: 'list' } },
  };

  it('invokes the worker asynchronously with the job as its payload', async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 202 });

    await new LambdaSlackJobs(new LambdaClient({ region: 'us-east-1' }), 'annex-test-slackWorker').enqueue(
      job,
    );

    const input = lambda.commandCalls(InvokeCommand)[0]?.args[0].input;
    expect(input).toMatchObject({ FunctionName: 'annex-test-slackWorker', InvocationType: 'Event' });
    expect(JSON.parse(new TextDecoder().decode(input?.Payload as Uint8Array))).toEqual(job);
  });

  it('translates throttling into UpstreamUnavailable', async () => {
    lambda.on(InvokeCommand).rejects(new TooManyRequestsException({ message: 'slow down', $metadata: {} }));
    await expect(
      new LambdaSlackJobs(new LambdaClient({ region: 'us-east-1' }), 'w').enqueue(job),
    ).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
  });
});

describe('SsmSlackSecrets', () => {
  it('reads with decryption, caches for five minutes, and reads again after', async () => {
    const clock = new FakeClock();
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: 'signing-secret-value' } });
    const secrets = new SsmSlackSecrets(
      new SSMClient({ region: 'us-east-1' }),
      { signingSecret: '/s', botToken: '/b' },
      clock,
    );

    expect(await secrets.signingSecret()).toBe('signing-secret-value');
    expect(await secrets.signingSecret()).toBe('signing-secret-value');
    expect(ssm).toHaveReceivedCommandTimes(GetParameterCommand, 1);
    expect(ssm).toHaveReceivedCommandWith(GetParameterCommand, { Name: '/s', WithDecryption: true });
    clock.advance(301);
    await secrets.signingSecret();
    expect(ssm).toHaveReceivedCommandTimes(GetParameterCommand, 2);
  });

  it('has no bot token when its parameter does not exist, but never goes on without a signing secret', async () => {
    ssm.on(GetParameterCommand).rejects(new ParameterNotFound({ message: 'nope', $metadata: {} }));
    const secrets = new SsmSlackSecrets(
      new SSMClient({ region: 'us-east-1' }),
      { signingSecret: '/s', botToken: '/b' },
      new FakeClock(),
    );

    expect(await secrets.botToken()).toBeUndefined();
    await expect(secrets.signingSecret()).rejects.toMatchObject({ code: 'Internal' });
  });
});
