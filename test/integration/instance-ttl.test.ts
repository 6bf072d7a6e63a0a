// Every path that ends an instance leaves its record to DynamoDB's TTL (history retention) and out
// of the liveInstances index, and no instance → annex lookup item is kept forever: read from the
// raw items of a DynamoDB Local table, as the table's TTL sweeper would see them.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../shared/aws/keys.ts';
import { DynamoLeaseStore, HISTORY_RETENTION_SECONDS } from '../../shared/aws/leases.ts';
import type { InstanceRecord } from '../../shared/domain/model.ts';
import { createTestLeaseTable, localDynamoDb } from './local-aws.ts';

const LAUNCHED = '2030-01-01T00:00:00.000Z';
const ENDED = '2030-01-02T00:00:00.000Z';
const epoch = (iso: string): number => Date.parse(iso) / 1000;

let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
let table: string;
let store: DynamoLeaseStore;
let serial = 0;

beforeAll(async () => {
  client = localDynamoDb();
  doc = DynamoDBDocumentClient.from(client);
  table = await createTestLeaseTable(client, 'ttl');
  store = new DynamoLeaseStore(client, table);
});

afterAll(() => {
  client?.destroy();
});

const record = (over: Partial<InstanceRecord> = {}): InstanceRecord => {
  serial += 1;
  return {
    instanceId: `i-${serial.toString(16).padStart(17, '0')}`,
    annexId: `ax-${serial.toString(16).padStart(20, '0')}`,
    batch: 1,
    instanceType: 'm5.large',
    market: 'on-demand',
    state: 'running',
    launchedAt: LAUNCHED,
    updatedAt: LAUNCHED,
    ...over,
  };
};

const raw = async (key: { PK: string; SK: string }) =>
  (await doc.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))).Item;

const expectEnded = async (rec: InstanceRecord, endedAt: string) => {
  const item = await raw(keys.instance(rec.annexId, rec.instanceId));
  expect(item).toMatchObject({
    state: 'terminated',
    terminatedAt: endedAt,
    ttl: epoch(endedAt) + HISTORY_RETENTION_SECONDS,
  });
  expect(item).not.toHaveProperty('liveInstanceShard');
  expect(item).not.toHaveProperty('liveInstanceSk');
  expect(await store.listLiveInstances()).not.toContainEqual(
    expect.objectContaining({ instanceId: rec.instanceId }),
  );
};

describe('instance records and lookups on the table', () => {
  it('gives a record that EC2 reports terminated (idle power-off, reclaim, own timer) a ttl', async () => {
    // Prepare
    const rec = record();
    await store.putInstances([rec]);

    // Act
    const outcome = await store.applyInstanceNotice(rec.annexId, rec.instanceId, {
      kind: 'state',
      state: 'terminated',
      at: ENDED,
    });

    // Assess
    expect(outcome).toBe('applied');
    await expectEnded(rec, ENDED);
  });

  it('gives a record that EC2 reports terminated with its event a ttl', async () => {
    // Prepare
    const rec = record();
    await store.putInstances([rec]);

    // Act
    const outcome = await store.applyInstanceNotice(
      rec.annexId,
      rec.instanceId,
      { kind: 'state', state: 'terminated', at: ENDED },
      {
        annexId: rec.annexId,
        at: ENDED,
        type: 'instance-terminated',
        message: 'terminated',
        detail: { instanceId: rec.instanceId },
      },
    );

    // Assess
    expect(outcome).toBe('applied');
    await expectEnded(rec, ENDED);
  });

  it('gives a record written already terminated a ttl and keeps it out of the live index', async () => {
    // Prepare
    const rec = record({ state: 'terminated', terminatedAt: ENDED, updatedAt: ENDED });

    // Act
    await store.putInstances([rec]);

    // Assess
    await expectEnded(rec, ENDED);
  });

  it('gives a record the sweep marks terminated a ttl', async () => {
    // Prepare
    const rec = record();
    await store.putInstances([rec]);

    // Act
    await store.setInstanceStates(rec.annexId, [rec.instanceId], 'terminated', ENDED);

    // Assess
    await expectEnded(rec, ENDED);
  });

  it('keeps a running record without a ttl and in the live index', async () => {
    // Prepare
    const rec = record();

    // Act
    await store.putInstances([rec]);

    // Assess
    const item = await raw(keys.instance(rec.annexId, rec.instanceId));
    expect(item).not.toHaveProperty('ttl');
    expect(item).toHaveProperty('liveInstanceShard');
  });

  it('gives every lookup item a ttl past the longest life and retention of its instance', async () => {
    // Prepare
    const running = record();
    const ended = record({ state: 'terminated', terminatedAt: ENDED, updatedAt: ENDED });

    // Act
    await store.putInstances([running, ended]);

    // Assess
    const runningLookup = await raw(keys.instanceLookup(running.instanceId));
    const endedLookup = await raw(keys.instanceLookup(ended.instanceId));
    expect(runningLookup?.ttl).toBeGreaterThanOrEqual(
      epoch(LAUNCHED) + 366 * 24 * 3600 + HISTORY_RETENTION_SECONDS,
    );
    expect(endedLookup?.ttl).toBe(epoch(ENDED) + HISTORY_RETENTION_SECONDS);
    expect(await store.findInstanceAnnex(running.instanceId)).toBe(running.annexId);
  });
});
