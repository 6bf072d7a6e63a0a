// The lease table adapter's instance-side calls: the instance → annex lookup written with every
// instance record, and the conditional writes bootstrap, heartbeat and interruption make.
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { keys } from '../../../shared/aws/keys.ts';
import { DynamoLeaseStore, HISTORY_RETENTION_SECONDS } from '../../../shared/aws/leases.ts';
import { lookupTtl } from '../../../shared/aws/table/entities.ts';
import type { InstanceRecord } from '../../../shared/domain/model.ts';
import { MOCKED_CLIENT_CONFIG } from '../../support/aws-mocks.ts';

const TABLE = 'annex-test-leases';
const ANNEX_ID = 'ax-0123456789abcdef0123';

const record = (n: number): InstanceRecord => ({
  instanceId: `i-${n.toString(16).padStart(17, '0')}`,
  annexId: ANNEX_ID,
  batch: 1,
  instanceType: 'm5.large',
  market: 'on-demand',
  state: 'running',
  launchedAt: '2030-01-01T00:00:00.000Z',
  updatedAt: '2030-01-01T00:00:00.000Z',
});

const conditionFailed = (item?: Record<string, unknown>) =>
  new ConditionalCheckFailedException({
    message: 'The conditional request failed',
    $metadata: { httpStatusCode: 400 },
    ...(item === undefined ? {} : { Item: item as never }),
  });

describe('DynamoLeaseStore: instances', () => {
  const docMock = mockClient(DynamoDBDocumentClient);
  let store: DynamoLeaseStore;

  beforeEach(() => {
    docMock.reset();
    store = new DynamoLeaseStore(new DynamoDBClient(MOCKED_CLIENT_CONFIG), TABLE);
  });

  it('writes each instance record together with its instance → annex lookup', async () => {
    // Prepare
    docMock.on(BatchWriteCommand).resolves({});

    // Act
    await store.putInstances([record(1)]);

    // Assess
    const items = docMock.commandCalls(BatchWriteCommand)[0]?.args[0].input.RequestItems?.[TABLE] ?? [];
    expect(items).toHaveLength(2);
    expect(items[0]?.PutRequest?.Item).toMatchObject({
      ...keys.instance(ANNEX_ID, record(1).instanceId),
      entity: 'instance',
      ...record(1),
    });
    expect(items[1]?.PutRequest?.Item).toEqual({
      ...keys.instanceLookup(record(1).instanceId),
      entity: 'instance-lookup',
      annexId: ANNEX_ID,
      ttl: lookupTtl(record(1)),
    });
  });

  it('keeps every BatchWriteItem within 25 items (12 instances and their lookups)', async () => {
    // Prepare
    docMock.on(BatchWriteCommand).resolves({});

    // Act
    await store.putInstances(Array.from({ length: 25 }, (_, i) => record(i + 1)));

    // Assess
    const sizes = docMock
      .commandCalls(BatchWriteCommand)
      .map((c) => c.args[0].input.RequestItems?.[TABLE]?.length);
    expect(sizes).toEqual([24, 24, 2]);
  });

  it('finds an instance’s annex with one consistent read of its lookup item', async () => {
    // Prepare
    docMock.on(GetCommand).resolves({ Item: { ...keys.instanceLookup('i-0abc'), annexId: ANNEX_ID } });

    // Act
    const annexId = await store.findInstanceAnnex('i-0abc');

    // Assess
    expect(annexId).toBe(ANNEX_ID);
    expect(docMock).toHaveReceivedCommandWith(GetCommand, {
      TableName: TABLE,
      Key: keys.instanceLookup('i-0abc'),
      ConsistentRead: true,
    });
  });

  it('finds no annex for an unknown instance', async () => {
    docMock.on(GetCommand).resolves({});
    expect(await store.findInstanceAnnex('i-0abc')).toBeUndefined();
  });

  it.each([
    ['marked', undefined],
    ['already', conditionFailed({ PK: { S: 'x' }, bootstrappedAt: { S: '2030-01-01T00:00:00.000Z' } })],
    ['missing', conditionFailed()],
  ] as const)('marks a bootstrap only once: %s', async (expected, failure) => {
    // Prepare
    if (failure === undefined) docMock.on(UpdateCommand).resolves({});
    else docMock.on(UpdateCommand).rejects(failure);

    // Act
    const outcome = await store.markBootstrapped(ANNEX_ID, 'i-0abc', '2030-01-01T00:00:00.000Z');

    // Assess
    expect(outcome).toBe(expected);
    expect(docMock).toHaveReceivedCommandWith(UpdateCommand, {
      ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(bootstrappedAt)',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });

  it('reports a heartbeat for a missing instance record as not written', async () => {
    // Prepare
    docMock.on(UpdateCommand).rejects(conditionFailed());

    // Act
    const written = await store.recordHeartbeat(ANNEX_ID, 'i-0abc', {
      at: '2030-01-01T00:00:00.000Z',
      claimedSlots: 1,
      totalSlots: 1,
      agentState: 'joined',
    });

    // Assess
    expect(written).toBe(false);
  });

  it('gives a terminated instance record a ttl (history retention) and takes it out of the live index', async () => {
    // Prepare
    docMock.on(UpdateCommand).resolves({});

    // Act
    await store.setInstanceStates(ANNEX_ID, ['i-0abc'], 'terminated', '2030-01-01T00:00:00.000Z');
    await store.setInstanceStates(ANNEX_ID, ['i-0def'], 'running', '2030-01-01T00:00:00.000Z');

    // Assess
    const [terminated, running] = docMock.commandCalls(UpdateCommand).map((c) => c.args[0].input);
    expect(terminated?.UpdateExpression).toContain('#ttl = if_not_exists(#ttl, :ttl)');
    expect(terminated?.UpdateExpression).toContain('REMOVE liveInstanceShard, liveInstanceSk');
    expect(terminated?.ExpressionAttributeValues?.[':ttl']).toBe(
      Date.parse('2030-01-01T00:00:00.000Z') / 1000 + HISTORY_RETENTION_SECONDS,
    );
    expect(running?.UpdateExpression).not.toContain('ttl');
  });

  it('writes a record that is already terminated with its ttl and outside the live index', async () => {
    // Prepare
    docMock.on(BatchWriteCommand).resolves({});
    const ended: InstanceRecord = {
      ...record(2),
      state: 'terminated',
      terminatedAt: '2030-01-02T00:00:00.000Z',
    };

    // Act
    await store.putInstances([ended]);

    // Assess
    const items = docMock.commandCalls(BatchWriteCommand)[0]?.args[0].input.RequestItems?.[TABLE] ?? [];
    const [item, lookup] = items.map((i) => i.PutRequest?.Item);
    const ttl = Date.parse('2030-01-02T00:00:00.000Z') / 1000 + HISTORY_RETENTION_SECONDS;
    expect(item).toMatchObject({ state: 'terminated', ttl });
    expect(item).not.toHaveProperty('liveInstanceShard');
    expect(lookup).toMatchObject({ ttl });
  });

  it('gives a record EC2 reports terminated a ttl and takes it out of the live index, with or without its event', async () => {
    // Prepare
    docMock.on(UpdateCommand).resolves({});
    docMock.on(TransactWriteCommand).resolves({});
    const notice = { kind: 'state' as const, state: 'terminated' as const, at: '2030-01-01T00:00:00.000Z' };
    const event = { annexId: ANNEX_ID, at: notice.at, type: 'instance-terminated', message: 'gone' };

    // Act
    await store.applyInstanceNotice(ANNEX_ID, 'i-0abc', notice);
    await store.applyInstanceNotice(ANNEX_ID, 'i-0def', notice, event);

    // Assess
    const alone = docMock.commandCalls(UpdateCommand)[0]?.args[0].input;
    const withEvent = docMock.commandCalls(TransactWriteCommand)[0]?.args[0].input.TransactItems?.[0]?.Update;
    for (const update of [alone, withEvent]) {
      expect(update?.UpdateExpression).toContain('#ttl = if_not_exists(#ttl, :ttl)');
      expect(update?.UpdateExpression).toContain('REMOVE liveInstanceShard, liveInstanceSk');
      expect(update?.ExpressionAttributeValues?.[':ttl']).toBe(
        Date.parse(notice.at) / 1000 + HISTORY_RETENTION_SECONDS,
      );
    }
  });
});
