import {
  DynamoDBClient,
  ProvisionedThroughputExceededException,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { INDEX, KEY_ATTRIBUTES, keys } from '../../../shared/aws/keys.ts';
import { DynamoLeaseStore, HISTORY_RETENTION_SECONDS } from '../../../shared/aws/leases.ts';
import type { Annex, AnnexEvent, AnnexState } from '../../../shared/domain/model.ts';
import { useMockedRegion, MOCKED_CLIENT_CONFIG } from '../../support/aws-mocks.ts';

const TABLE = 'annex-test-leases';
const OWNER = 'arn:aws:iam::123456789012:user/alice';

const annexFixture = (overrides: Partial<Annex> = {}): Annex => ({
  id: 'ax-0123456789abcdef0123',
  name: 'burst',
  owner: OWNER,
  pool: 'cm',
  poolCredentialParameter: '/annex/test/pools/private/0123456789abcdef/cm/credential',
  state: 'LAUNCHING',
  spec: {
    market: 'on-demand',
    instanceTypes: ['m5.large'],
    imageId: 'ami-0123456789abcdef0',
    subnetIds: [],
    securityGroupIds: [],
    tags: {},
  },
  requestedCount: 2,
  batches: 1,
  launching: { batch: 1, count: 2, instanceTypes: ['m5.large'] },
  idleSeconds: 900,
  createdAt: '2030-01-01T00:00:00.000Z',
  updatedAt: '2030-01-01T00:00:00.000Z',
  expiresAt: '2030-01-01T00:50:00.000Z',
  requestHash: 'f'.repeat(64),
  version: 4,
  ...overrides,
});

const eventFixture = (overrides: Partial<AnnexEvent> = {}): AnnexEvent => ({
  annexId: 'ax-0123456789abcdef0123',
  at: '2030-01-01T00:01:00.000Z',
  type: 'state',
  message: 'launched',
  ...overrides,
});

const cancelled = (...codes: string[]) =>
  new TransactionCanceledException({
    message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${codes.join(', ')}]`,
    $metadata: { httpStatusCode: 400 },
    CancellationReasons: codes.map((Code) => ({ Code })),
  });

const throughputExceeded = () =>
  new ProvisionedThroughputExceededException({
    message: 'The level of configured provisioned throughput for the table was exceeded.',
    $metadata: { httpStatusCode: 400 },
  });

type TransactItems = NonNullable<TransactWriteCommandInput['TransactItems']>;

describe('DynamoLeaseStore', () => {
  const docMock = mockClient(DynamoDBDocumentClient);
  let store: DynamoLeaseStore;

  const transactItems = (n = 0): TransactItems =>
    docMock.commandCalls(TransactWriteCommand)[n]?.args[0].input.TransactItems ?? [];

  useMockedRegion();

  beforeEach(() => {
    docMock.reset();
    store = new DynamoLeaseStore(new DynamoDBClient(MOCKED_CLIENT_CONFIG), TABLE);
  });

  describe('createAnnex', () => {
    it('writes the annex, its name claim and its first event in one transaction', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).resolves({});
      const annex = annexFixture({ state: 'REQUESTED', launching: undefined, version: 1 });

      // Act
      const outcome = await store.createAnnex(annex, eventFixture({ message: 'requested' }));

      // Assess
      expect(outcome).toBe('created');
      expect(docMock).toHaveReceivedCommandTimes(TransactWriteCommand, 1);
      const [annexPut, namePut, eventPut, ...rest] = transactItems();
      expect(rest).toEqual([]);
      expect(annexPut?.Put).toMatchObject({
        TableName: TABLE,
        ConditionExpression: 'attribute_not_exists(PK)',
        Item: {
          ...keys.annex(annex.id),
          ...keys.ownerIndex.annex(OWNER, 'burst', annex.createdAt, annex.id),
          liveShard: keys.liveShard(annex.id),
          ...annex,
        },
      });
      expect(namePut?.Put).toMatchObject({
        TableName: TABLE,
        ConditionExpression: 'attribute_not_exists(PK)',
        Item: { ...keys.nameClaim(OWNER, 'burst'), annexId: annex.id },
      });
      expect(eventPut?.Put).toMatchObject({
        TableName: TABLE,
        Item: { PK: keys.annexPartition(annex.id), annexId: annex.id, message: 'requested' },
      });
      expect(String(eventPut?.Put?.Item?.SK).startsWith(keys.eventPrefix)).toBe(true);
    });

    it('answers "exists" when the annex item is already there', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).rejects(cancelled('ConditionalCheckFailed', 'None', 'None'));

      // Act
      const outcome = await store.createAnnex(annexFixture(), eventFixture());

      // Assess
      expect(outcome).toBe('exists');
    });

    it('answers "name-taken" when another annex holds the name', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).rejects(cancelled('None', 'ConditionalCheckFailed', 'None'));

      // Act
      const outcome = await store.createAnnex(annexFixture(), eventFixture());

      // Assess
      expect(outcome).toBe('name-taken');
    });

    it('reports a Conflict when a concurrent transaction touches the same items', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).rejects(cancelled('TransactionConflict', 'None', 'None'));

      // Act
      const failure = store.createAnnex(annexFixture(), eventFixture());

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'Conflict' });
    });

    it('reports UpstreamUnavailable when the table is throttled', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).rejects(throughputExceeded());

      // Act
      const failure = store.createAnnex(annexFixture(), eventFixture());

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
    });

    it('reports UpstreamUnavailable when the transaction is cancelled by throttling', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).rejects(cancelled('None', 'ThrottlingError', 'None'));

      // Act
      const failure = store.createAnnex(annexFixture(), eventFixture());

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
    });
  });

  describe('updateAnnex', () => {
    it('writes only if the stored version is the one read, and bumps it', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).resolves({});
      const annex = annexFixture({ state: 'RUNNING', launching: undefined, version: 4 });

      // Act
      const next = await store.updateAnnex(
        annex,
        { expiresAt: '2030-01-01T02:00:00.000Z', updatedAt: '2030-01-01T00:30:00.000Z' },
        eventFixture({ at: '2030-01-01T00:30:00.000Z', message: 'extended' }),
      );

      // Assess
      expect(next).toEqual({
        ...annex,
        expiresAt: '2030-01-01T02:00:00.000Z',
        updatedAt: '2030-01-01T00:30:00.000Z',
        version: 5,
      });
      const [update, event, ...rest] = transactItems();
      expect(rest).toEqual([]);
      expect(update?.Update).toMatchObject({
        TableName: TABLE,
        Key: keys.annex(annex.id),
        ConditionExpression: expect.stringContaining('#version = :expected'),
        ExpressionAttributeNames: expect.objectContaining({
          '#version': 'version',
          '#expiresAt': 'expiresAt',
        }),
        ExpressionAttributeValues: {
          ':expected': 4,
          ':version': 5,
          ':expiresAt': '2030-01-01T02:00:00.000Z',
          ':updatedAt': '2030-01-01T00:30:00.000Z',
        },
      });
      expect(update?.Update?.ConditionExpression).toContain('attribute_exists(PK)');
      expect(update?.Update?.UpdateExpression).toMatch(/^SET .*#version = :version/);
      expect(update?.Update?.UpdateExpression).not.toContain('REMOVE');
      expect(event?.Put?.Item).toMatchObject({ PK: keys.annexPartition(annex.id), message: 'extended' });
    });

    it('stamps updatedAt with the event time when the change does not set it', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).resolves({});

      // Act
      const next = await store.updateAnnex(
        annexFixture(),
        { state: 'RUNNING' },
        eventFixture({ at: '2030-01-01T00:07:00.000Z' }),
      );

      // Assess
      expect(next.updatedAt).toBe('2030-01-01T00:07:00.000Z');
      expect(transactItems()[0]?.Update?.ExpressionAttributeValues).toMatchObject({
        ':updatedAt': '2030-01-01T00:07:00.000Z',
      });
    });

    it('removes fields the change sets to undefined', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).resolves({});
      const annex = annexFixture({ state: 'LAUNCHING' });

      // Act
      const next = await store.updateAnnex(annex, { state: 'RUNNING', launching: undefined }, eventFixture());

      // Assess
      expect(next.launching).toBeUndefined();
      expect(next.state).toBe('RUNNING');
      const update = transactItems()[0]?.Update;
      expect(update?.UpdateExpression).toMatch(/ REMOVE #launching$/);
      expect(update?.UpdateExpression).toContain('#state = :state');
      expect(update?.ExpressionAttributeNames).toMatchObject({ '#launching': 'launching' });
      expect(update?.ExpressionAttributeValues).not.toHaveProperty(':launching');
    });

    it('keeps a live annex in the live index and its name claimed', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).resolves({});

      // Act
      await store.updateAnnex(annexFixture({ state: 'RUNNING' }), { state: 'TERMINATING' }, eventFixture());

      // Assess
      const items = transactItems();
      expect(items.some((i) => i.Delete !== undefined)).toBe(false);
      expect(items[0]?.Update?.UpdateExpression).not.toContain('liveShard');
      expect(items[0]?.Update?.UpdateExpression).not.toContain('ttl');
    });

    it.each<AnnexState>(['TERMINATED', 'FAILED'])(
      'on becoming %s leaves the live index and frees its own name claim in the same transaction',
      async (state) => {
        // Prepare
        docMock.on(TransactWriteCommand).resolves({});
        const annex = annexFixture({ state: 'TERMINATING', launching: undefined });

        // Act
        await store.updateAnnex(
          annex,
          { state, endedAt: '2030-01-01T00:40:00.000Z' },
          eventFixture({ message: 'ended' }),
        );

        // Assess
        expect(docMock).toHaveReceivedCommandTimes(TransactWriteCommand, 1);
        const [update, release, event, ...rest] = transactItems();
        expect(rest).toEqual([]);
        expect(update?.Update?.UpdateExpression).toMatch(/ REMOVE .*#liveShard/);
        expect(update?.Update?.ExpressionAttributeNames).toMatchObject({ '#liveShard': 'liveShard' });
        expect(release?.Delete).toEqual({
          TableName: TABLE,
          Key: keys.nameClaim(OWNER, 'burst'),
          ConditionExpression: 'attribute_not_exists(PK) OR annexId = :annexId',
          ExpressionAttributeValues: { ':annexId': annex.id },
        });
        expect(event?.Put?.Item).toMatchObject({ message: 'ended' });
        // History from now on: the annex item and every event expire (DynamoDB TTL) after retention.
        expect(update?.Update?.UpdateExpression).toContain('#ttl = :ttl');
        expect(update?.Update?.ExpressionAttributeValues?.[':ttl']).toBe(
          Date.parse('2030-01-01T00:40:00.000Z') / 1000 + HISTORY_RETENTION_SECONDS,
        );
        expect(event?.Put?.Item?.ttl).toBe(Date.parse(eventFixture().at) / 1000 + HISTORY_RETENTION_SECONDS);
      },
    );

    it('reports a lost race on the version as Conflict', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).rejects(cancelled('ConditionalCheckFailed', 'None'));

      // Act
      const failure = store.updateAnnex(annexFixture(), { state: 'RUNNING' }, eventFixture());

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'Conflict' });
    });

    it('reports a concurrent transaction on the same items as Conflict', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).rejects(cancelled('TransactionConflict', 'None'));

      // Act
      const failure = store.updateAnnex(annexFixture(), { state: 'RUNNING' }, eventFixture());

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'Conflict' });
    });

    it('reports UpstreamUnavailable when the table is throttled', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).rejects(throughputExceeded());

      // Act
      const failure = store.updateAnnex(annexFixture(), { state: 'RUNNING' }, eventFixture());

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
    });

    it('reports UpstreamUnavailable when the transaction is cancelled by throttling', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).rejects(cancelled('ProvisionedThroughputExceeded', 'None'));

      // Act
      const failure = store.updateAnnex(annexFixture(), { state: 'RUNNING' }, eventFixture());

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
    });
  });

  describe('startBatch', () => {
    it('claims the Idempotency-Key in the same transaction as the update', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).resolves({});
      const annex = annexFixture({ state: 'RUNNING', launching: undefined });
      const claim = { key: 'add-1', batch: 2, requestHash: 'a'.repeat(64) };

      // Act
      await store.startBatch(
        annex,
        { state: 'LAUNCHING', batches: 2, launching: { batch: 2, count: 1, instanceTypes: ['m5.large'] } },
        claim,
        eventFixture(),
      );

      // Assess
      const [, claimPut] = transactItems();
      expect(claimPut?.Put).toMatchObject({
        ConditionExpression: 'attribute_not_exists(PK)',
        Item: { ...keys.addNodesClaim(annex.id, 'add-1'), ...claim },
      });
    });

    it('reports a claim already taken by another batch as Conflict', async () => {
      // Prepare
      docMock.on(TransactWriteCommand).rejects(cancelled('None', 'ConditionalCheckFailed', 'None'));

      // Act
      const failure = store.startBatch(
        annexFixture({ state: 'RUNNING' }),
        { state: 'LAUNCHING' },
        { key: 'add-1', batch: 2, requestHash: 'a'.repeat(64) },
        eventFixture(),
      );

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'Conflict', message: /Idempotency-Key/ });
    });
  });

  describe('reading', () => {
    it('reads an annex consistently and strips the table’s own attributes', async () => {
      // Prepare
      const annex = annexFixture();
      docMock.on(GetCommand).resolves({
        Item: {
          ...keys.annex(annex.id),
          ...keys.ownerIndex.annex(OWNER, annex.name, annex.createdAt, annex.id),
          liveShard: keys.liveShard(annex.id),
          entity: 'annex',
          ...annex,
        },
      });

      // Act
      const found = await store.getAnnex(annex.id);

      // Assess
      expect(found).toEqual(annex);
      expect(docMock).toHaveReceivedCommandWith(GetCommand, {
        TableName: TABLE,
        Key: keys.annex(annex.id),
        ConsistentRead: true,
      });
    });

    it('answers undefined for an annex that does not exist', async () => {
      // Prepare
      docMock.on(GetCommand).resolves({});

      // Act
      const found = await store.getAnnex('ax-missing');

      // Assess
      expect(found).toBeUndefined();
    });

    it('returns the latest events in chronological order', async () => {
      // Prepare
      const events = ['00:01', '00:02', '00:03'].map((t) =>
        eventFixture({ at: `2030-01-01T${t}:00.000Z`, message: t }),
      );
      docMock.on(QueryCommand).resolves({
        Items: [...events]
          .reverse()
          .map((e) => ({ ...keys.event(e.annexId, e.at, 'beef'), entity: 'event', ...e })),
      });

      // Act
      const listed = await store.listEvents('ax-0123456789abcdef0123', 3);

      // Assess
      expect(listed).toEqual(events);
      expect(docMock).toHaveReceivedCommandWith(QueryCommand, {
        TableName: TABLE,
        ScanIndexForward: false,
        Limit: 3,
        ExpressionAttributeValues: {
          ':pk': keys.annexPartition('ax-0123456789abcdef0123'),
          ':prefix': keys.eventPrefix,
        },
      });
    });

    it('follows LastEvaluatedKey until the owner’s annexes are all read', async () => {
      // Prepare
      const first = annexFixture({ id: 'ax-1', name: 'a' });
      const second = annexFixture({ id: 'ax-2', name: 'b' });
      const itemOf = (a: Annex) => ({
        ...keys.annex(a.id),
        ...keys.ownerIndex.annex(a.owner, a.name, a.createdAt, a.id),
        entity: 'annex',
        ...a,
      });
      const lastKey = {
        ...keys.annex('ax-1'),
        ...keys.ownerIndex.annex(OWNER, 'a', first.createdAt, 'ax-1'),
      };
      docMock
        .on(QueryCommand)
        .resolvesOnce({ Items: [itemOf(first)], LastEvaluatedKey: lastKey })
        .resolvesOnce({ Items: [itemOf(second)] });

      // Act
      const listed = await store.listAnnexesByOwner(OWNER);

      // Assess
      expect(listed).toEqual([first, second]);
      const inputs = docMock.commandCalls(QueryCommand).map((c) => c.args[0].input);
      expect(inputs.map((i) => i.ExclusiveStartKey)).toEqual([undefined, lastKey]);
      for (const input of inputs) {
        expect(input).toMatchObject({
          TableName: TABLE,
          IndexName: INDEX.byOwner,
          ExpressionAttributeValues: {
            ':pk': keys.ownerIndex.owner(OWNER),
            ':prefix': keys.ownerIndex.annexPrefix(),
          },
        });
      }
    });

    it('lists live annexes from every shard, soonest expiry first', async () => {
      // Prepare
      const expiries = ['2030-01-01T03:00:00.000Z', '2030-01-01T01:00:00.000Z', '2030-01-01T02:00:00.000Z'];
      docMock.on(QueryCommand).callsFake((input: { ExpressionAttributeValues: { ':shard': string } }) => {
        const shard = keys.allLiveShards().indexOf(input.ExpressionAttributeValues[':shard']);
        const expiresAt = expiries[shard];
        return {
          Items: expiresAt === undefined ? [] : [annexFixture({ id: `ax-${shard}`, expiresAt })],
        };
      });

      // Act
      const live = await store.listLiveAnnexes();

      // Assess
      expect(live.map((a) => a.expiresAt)).toEqual([...expiries].sort());
      const shards = docMock
        .commandCalls(QueryCommand)
        .map((c) => c.args[0].input.ExpressionAttributeValues?.[':shard']);
      expect(shards.sort()).toEqual(keys.allLiveShards().sort());
      expect(docMock).toHaveReceivedCommandWith(QueryCommand, { IndexName: INDEX.live });
    });

    it('never returns the table’s key attributes', async () => {
      // Prepare
      docMock.on(QueryCommand).resolves({
        Items: [{ ...keys.instance('ax-1', 'i-1'), entity: 'instance', ttl: 1, instanceId: 'i-1' }],
      });

      // Act
      const [record] = await store.listInstances('ax-1');

      // Assess
      for (const attribute of KEY_ATTRIBUTES) expect(record).not.toHaveProperty(attribute);
      expect(record).toEqual({ instanceId: 'i-1' });
    });
  });
});
