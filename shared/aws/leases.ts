/**
 * The lease table adapter (DynamoDB). Every state change is a named conditional write: create is
 * `attribute_not_exists`, update checks `#version`. A lost race surfaces as a domain Conflict.
 */
import { randomBytes } from 'node:crypto';
import { TransactionCanceledException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type BatchWriteCommandOutput,
  type GetCommandOutput,
  type PutCommandOutput,
  type QueryCommandInput,
  type QueryCommandOutput,
  type TransactWriteCommandOutput,
  type UpdateCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import { conflict, upstreamUnavailable } from '../domain/errors.ts';
import { isEnded } from '../domain/lease.ts';
import type {
  Annex,
  AnnexEvent,
  InstanceRecord,
  InstanceNotice,
  InstanceState,
  Pool,
  PoolUsage,
  PriceSource,
} from '../domain/model.ts';
import { stateEventKey } from '../domain/instance-notices.ts';
import type {
  AddNodesClaim,
  AnnexChanges,
  HeartbeatRecord,
  IssuedToken,
  LeaseStore,
} from '../domain/ports.ts';
import { cancelledAt, errorCode as errorName, translateDynamoError } from './errors.ts';
import { INDEX, keys, stripTableAttributes } from './keys.ts';

type Item = Record<string, unknown>;
type AnyCommand =
  GetCommand | PutCommand | UpdateCommand | QueryCommand | BatchWriteCommand | TransactWriteCommand;
type TransactItem = NonNullable<
  ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']
>[number];

/** Add-nodes idempotency claims outlive any lease (7 days maximum) by a margin. */
const CLAIM_TTL_SECONDS = 14 * 24 * 3600;
/**
 * How long the table keeps history (DynamoDB TTL on `ttl`): each event for this long after it
 * happened; an ended annex's item and each terminated instance's record for this long after the
 * end. Live annexes and running instances never carry a ttl.
 */
export const HISTORY_RETENTION_SECONDS = 90 * 24 * 3600;
const historyTtl = (iso: string): number => Math.floor(Date.parse(iso) / 1000) + HISTORY_RETENTION_SECONDS;

export class DynamoLeaseStore implements LeaseStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly tableName: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, {
      marshallOptions: { removeUndefinedValues: true },
    });
  }

  // ----- pools -------------------------------------------------------------------------------

  async getPool(name: string, owner: string): Promise<Pool | undefined> {
    for (const scope of ['private', 'shared'] as const) {
      const found = await this.get<Pool>(keys.pool(name, scope, owner), 'getPool');
      if (found !== undefined) return found;
    }
    return undefined;
  }

  async putPool(pool: Pool): Promise<void> {
    await this.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...keys.pool(pool.name, pool.scope, pool.owner),
          ...keys.ownerIndex.pool(pool.scope, pool.owner, pool.name),
          entity: 'pool',
          ...pool,
        },
      }),
      'putPool',
    );
  }

  async listPools(owner: string): Promise<Pool[]> {
    const [own, shared] = await Promise.all(
      [keys.ownerIndex.owner(owner), keys.ownerIndex.shared].map((pk) =>
        this.queryAll<Pool>({
          IndexName: INDEX.byOwner,
          KeyConditionExpression: 'ownerPk = :pk AND begins_with(ownerSk, :prefix)',
          ExpressionAttributeValues: { ':pk': pk, ':prefix': keys.ownerIndex.poolPrefix },
        }),
      ),
    );
    return [...(own ?? []), ...(shared ?? [])];
  }

  // ----- annexes -----------------------------------------------------------------------------

  async createAnnex(
    annex: Annex,
    event: AnnexEvent,
    usage?: PoolUsage,
  ): Promise<'created' | 'exists' | 'name-taken' | 'usage-changed'> {
    try {
      await this.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: this.annexItem(annex),
                ConditionExpression: 'attribute_not_exists(PK)',
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: { ...keys.nameClaim(annex.owner, annex.name), entity: 'name', annexId: annex.id },
                ConditionExpression: 'attribute_not_exists(PK)',
              },
            },
            ...(usage === undefined ? [] : [this.usagePut(usage, event.at)]),
            this.eventPut(event),
          ],
        }),
        'createAnnex',
      );
      return 'created';
    } catch (e) {
      const reasons = cancelledAt(e);
      if (reasons[0] === 'ConditionalCheckFailed') return 'exists';
      if (reasons[1] === 'ConditionalCheckFailed') return 'name-taken';
      // The usage record moved on (or another admission is writing it): re-read it and re-check.
      if (
        usage !== undefined &&
        (reasons[2] === 'ConditionalCheckFailed' || reasons.includes('TransactionConflict'))
      ) {
        return 'usage-changed';
      }
      if (reasons.includes('TransactionConflict')) {
        throw conflict(`annex ${annex.name} is being created by another request; retry`);
      }
      return translateDynamoError(e, 'createAnnex');
    }
  }

  getAnnex(id: string): Promise<Annex | undefined> {
    return this.get<Annex>(keys.annex(id), 'getAnnex');
  }

  async findAnnexByName(owner: string, name: string): Promise<Annex | undefined> {
    const claim = await this.get<{ annexId: string }>(keys.nameClaim(owner, name), 'findAnnexByName');
    if (claim !== undefined) {
      const live = await this.getAnnex(claim.annexId);
      if (live !== undefined) return live;
    }
    const latest = await this.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: INDEX.byOwner,
        KeyConditionExpression: 'ownerPk = :pk AND begins_with(ownerSk, :prefix)',
        ExpressionAttributeValues: {
          ':pk': keys.ownerIndex.owner(owner),
          ':prefix': keys.ownerIndex.annexPrefix(name),
        },
        ScanIndexForward: false,
        Limit: 1,
      }),
      'findAnnexByName',
    );
    const item = latest.Items?.[0];
    return item === undefined ? undefined : stripTableAttributes<Annex>(item);
  }

  async listAnnexesByOwner(owner: string): Promise<Annex[]> {
    return this.queryAll<Annex>({
      IndexName: INDEX.byOwner,
      KeyConditionExpression: 'ownerPk = :pk AND begins_with(ownerSk, :prefix)',
      ExpressionAttributeValues: {
        ':pk': keys.ownerIndex.owner(owner),
        ':prefix': keys.ownerIndex.annexPrefix(),
      },
    });
  }

  async listLiveAnnexes(): Promise<Annex[]> {
    const shards = await Promise.all(
      keys.allLiveShards().map((shard) =>
        this.queryAll<Annex>({
          IndexName: INDEX.live,
          KeyConditionExpression: 'liveShard = :shard',
          ExpressionAttributeValues: { ':shard': shard },
        }),
      ),
    );
    return shards.flat().sort((a, b) => (a.expiresAt < b.expiresAt ? -1 : a.expiresAt > b.expiresAt ? 1 : 0));
  }

  async listLiveInstances(): Promise<InstanceRecord[]> {
    const shards = await Promise.all(
      keys.allLiveShards().map((shard) =>
        this.queryAll<InstanceRecord>({
          IndexName: INDEX.liveInstances,
          KeyConditionExpression: 'liveInstanceShard = :shard',
          ExpressionAttributeValues: { ':shard': shard },
        }),
      ),
    );
    return shards.flat();
  }

  async updateAnnex(
    annex: Annex,
    changes: AnnexChanges,
    event?: AnnexEvent,
    usage?: PoolUsage,
  ): Promise<Annex> {
    return this.transactUpdate(annex, changes, [], event, 'updateAnnex', usage);
  }

  async startBatch(
    annex: Annex,
    changes: AnnexChanges,
    claim: AddNodesClaim,
    event: AnnexEvent,
    usage?: PoolUsage,
  ): Promise<Annex> {
    const expiresAtEpoch = Math.floor(Date.parse(event.at) / 1000) + CLAIM_TTL_SECONDS;
    return this.transactUpdate(
      annex,
      changes,
      [
        {
          Put: {
            TableName: this.tableName,
            Item: {
              ...keys.addNodesClaim(annex.id, claim.key),
              entity: 'add-claim',
              ...claim,
              ttl: expiresAtEpoch,
            },
            ConditionExpression: 'attribute_not_exists(PK)',
          },
        },
      ],
      event,
      'startBatch',
      usage,
    );
  }

  // ----- quota usage -------------------------------------------------------------------------

  async getUsage(owner: string, pool: string): Promise<PoolUsage> {
    const found = await this.get<PoolUsage>(keys.usage(owner, pool), 'getUsage');
    return found ?? { owner, pool, annexes: {}, spendByMonth: {}, version: 0 };
  }

  async releaseUsage(owner: string, pool: string, annexId: string): Promise<void> {
    try {
      await this.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.usage(owner, pool),
          // Bumping the version makes an admission that read the record before this fail and re-read.
          UpdateExpression: 'REMOVE annexes.#annex SET #version = #version + :one',
          ConditionExpression: 'attribute_exists(annexes.#annex)',
          ExpressionAttributeNames: { '#annex': annexId, '#version': 'version' },
          ExpressionAttributeValues: { ':one': 1 },
        }),
        'releaseUsage',
      );
    } catch (e) {
      if (errorName(e) !== 'ConditionalCheckFailedException') throw e;
    }
  }

  async getAddNodesClaim(annexId: string, key: string): Promise<AddNodesClaim | undefined> {
    return this.get<AddNodesClaim>(keys.addNodesClaim(annexId, key), 'getAddNodesClaim');
  }

  // ----- instances and events ----------------------------------------------------------------

  async putInstances(instances: InstanceRecord[]): Promise<void> {
    // Two items per instance (its record and its lookup), at most 25 items per BatchWriteItem.
    for (let i = 0; i < instances.length; i += 12) {
      let requests: Item[] = instances.slice(i, i + 12).flatMap((inst) => [
        {
          PutRequest: {
            Item: {
              ...keys.instance(inst.annexId, inst.instanceId),
              ...(inst.state === 'terminated' ? {} : keys.liveInstance(inst.annexId, inst.instanceId)),
              entity: 'instance',
              ...inst,
            },
          },
        },
        {
          PutRequest: {
            Item: {
              ...keys.instanceLookup(inst.instanceId),
              entity: 'instance-lookup',
              annexId: inst.annexId,
            },
          },
        },
      ]);
      for (let round = 0; requests.length > 0; round++) {
        if (round >= 8) throw upstreamUnavailable('the lease table did not accept the instance records');
        if (round > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** round));
        const out = await this.send(
          new BatchWriteCommand({ RequestItems: { [this.tableName]: requests } }),
          'putInstances',
        );
        requests = (out.UnprocessedItems?.[this.tableName] ?? []) as Item[];
      }
    }
  }

  async setInstanceStates(
    annexId: string,
    instanceIds: string[],
    state: InstanceState,
    at: string,
  ): Promise<void> {
    await Promise.all(
      instanceIds.map(async (instanceId) => {
        try {
          await this.send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: keys.instance(annexId, instanceId),
              // A terminated instance leaves the liveInstances index.
              UpdateExpression: `SET #state = :state, updatedAt = :at${
                state === 'terminated'
                  ? ', terminatedAt = if_not_exists(terminatedAt, :at), #ttl = if_not_exists(#ttl, :ttl) REMOVE liveInstanceShard, liveInstanceSk'
                  : ''
              }`,
              ConditionExpression: 'attribute_exists(PK)',
              ExpressionAttributeNames: {
                '#state': 'state',
                ...(state === 'terminated' ? { '#ttl': 'ttl' } : {}),
              },
              ExpressionAttributeValues: {
                ':state': state,
                ':at': at,
                ...(state === 'terminated' ? { ':ttl': historyTtl(at) } : {}),
              },
            }),
            'setInstanceStates',
          );
        } catch (e) {
          if (errorName(e) !== 'ConditionalCheckFailedException') throw e;
        }
      }),
    );
  }

  async listInstances(annexId: string): Promise<InstanceRecord[]> {
    return this.queryAll<InstanceRecord>({
      KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)',
      ExpressionAttributeValues: { ':pk': keys.annexPartition(annexId), ':prefix': keys.instancePrefix },
    });
  }

  async findInstanceAnnex(instanceId: string): Promise<string | undefined> {
    const lookup = await this.get<{ annexId?: unknown }>(
      keys.instanceLookup(instanceId),
      'findInstanceAnnex',
    );
    return typeof lookup?.annexId === 'string' ? lookup.annexId : undefined;
  }

  getInstance(annexId: string, instanceId: string): Promise<InstanceRecord | undefined> {
    return this.get<InstanceRecord>(keys.instance(annexId, instanceId), 'getInstance');
  }

  async markBootstrapped(
    annexId: string,
    instanceId: string,
    at: string,
  ): Promise<'marked' | 'already' | 'missing'> {
    try {
      await this.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.instance(annexId, instanceId),
          UpdateExpression: 'SET bootstrappedAt = :at',
          ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(bootstrappedAt)',
          ExpressionAttributeValues: { ':at': at },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
        'markBootstrapped',
      );
      return 'marked';
    } catch (e) {
      if (errorName(e) !== 'ConditionalCheckFailedException') throw e;
      return (e as { Item?: unknown }).Item === undefined ? 'missing' : 'already';
    }
  }

  async clearBootstrapped(annexId: string, instanceId: string, at: string): Promise<void> {
    try {
      await this.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.instance(annexId, instanceId),
          UpdateExpression: 'REMOVE bootstrappedAt',
          ConditionExpression: 'bootstrappedAt = :at',
          ExpressionAttributeValues: { ':at': at },
        }),
        'clearBootstrapped',
      );
    } catch (e) {
      if (errorName(e) !== 'ConditionalCheckFailedException') throw e;
    }
  }

  async recordHeartbeat(annexId: string, instanceId: string, heartbeat: HeartbeatRecord): Promise<boolean> {
    const idle = heartbeat.idleSince !== undefined;
    return this.updateInstance(
      annexId,
      instanceId,
      {
        UpdateExpression:
          'SET lastHeartbeatAt = :at, claimedSlots = :claimed, totalSlots = :total, agentState = :agent' +
          (idle ? ', idleSince = if_not_exists(idleSince, :idleSince)' : ' REMOVE idleSince'),
        ExpressionAttributeValues: {
          ':at': heartbeat.at,
          ':claimed': heartbeat.claimedSlots,
          ':total': heartbeat.totalSlots,
          ':agent': heartbeat.agentState,
          ...(idle ? { ':idleSince': heartbeat.idleSince } : {}),
        },
      },
      'recordHeartbeat',
    );
  }

  async recordTokenIssued(
    annexId: string,
    instanceId: string,
    token: IssuedToken,
    event: AnnexEvent,
  ): Promise<boolean> {
    try {
      await this.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.tableName,
                Key: keys.instance(annexId, instanceId),
                ConditionExpression: 'attribute_exists(PK)',
                UpdateExpression:
                  'SET tokenIds = list_append(if_not_exists(tokenIds, :none), :id), ' +
                  'tokenExpiresAt = :expires, tokenIssuedAt = :issued',
                ExpressionAttributeValues: {
                  ':none': [],
                  ':id': [token.tokenId],
                  ':expires': token.expiresAt,
                  ':issued': token.issuedAt,
                },
              },
            },
            this.eventPut(event),
          ],
        }),
        'recordTokenIssued',
      );
      return true;
    } catch (e) {
      if (e instanceof TransactionCanceledException && cancelledAt(e)[0] === 'ConditionalCheckFailed') {
        return false;
      }
      return translateDynamoError(e, 'recordTokenIssued');
    }
  }

  async applyInstanceNotice(
    annexId: string,
    instanceId: string,
    notice: InstanceNotice,
    event?: AnnexEvent,
  ): Promise<'applied' | 'stale' | 'missing'> {
    const update = this.noticeUpdate(annexId, instanceId, notice);
    try {
      if (event === undefined) {
        await this.send(
          new UpdateCommand({ ...update, ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }),
          'applyInstanceNotice',
        );
      } else {
        // The record and its event together: a replay finds the record already changed and writes neither.
        await this.send(
          new TransactWriteCommand({
            TransactItems: [
              { Update: { ...update, ReturnValuesOnConditionCheckFailure: 'ALL_OLD' } },
              this.eventPut(event),
            ],
          }),
          'applyInstanceNotice',
        );
      }
      return 'applied';
    } catch (e) {
      if (errorName(e) === 'ConditionalCheckFailedException') {
        return (e as { Item?: unknown }).Item === undefined ? 'missing' : 'stale';
      }
      if (e instanceof TransactionCanceledException && cancelledAt(e)[0] === 'ConditionalCheckFailed') {
        return e.CancellationReasons?.[0]?.Item === undefined ? 'missing' : 'stale';
      }
      return translateDynamoError(e, 'applyInstanceNotice');
    }
  }

  async setInstancePrice(
    annexId: string,
    instanceId: string,
    hourlyUsd: number,
    source: PriceSource,
  ): Promise<void> {
    try {
      await this.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.instance(annexId, instanceId),
          UpdateExpression: 'SET hourlyUsd = :usd, priceSource = :source',
          ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(hourlyUsd)',
          ExpressionAttributeValues: { ':usd': hourlyUsd, ':source': source },
        }),
        'setInstancePrice',
      );
    } catch (e) {
      if (errorName(e) !== 'ConditionalCheckFailedException') throw e;
    }
  }

  async appendEvent(event: AnnexEvent): Promise<void> {
    const put = this.eventPut(event).Put;
    if (put !== undefined) await this.send(new PutCommand(put), 'appendEvent');
  }

  async listEvents(annexId: string, limit: number): Promise<AnnexEvent[]> {
    const out = await this.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)',
        ExpressionAttributeValues: { ':pk': keys.annexPartition(annexId), ':prefix': keys.eventPrefix },
        ScanIndexForward: false,
        Limit: limit,
      }),
      'listEvents',
    );
    return (out.Items ?? []).map((i) => stripTableAttributes<AnnexEvent>(i)).reverse();
  }

  // ----- helpers -----------------------------------------------------------------------------

  private annexItem(annex: Annex): Item {
    return {
      ...keys.annex(annex.id),
      ...keys.ownerIndex.annex(annex.owner, annex.name, annex.createdAt, annex.id),
      ...(isEnded(annex.state) ? {} : { liveShard: keys.liveShard(annex.id) }),
      entity: 'annex',
      ...annex,
    };
  }

  /** Writes the usage record whole, only over the version it was computed from. */
  private usagePut(usage: PoolUsage, at: string): TransactItem {
    const latest = Math.max(
      Date.parse(at),
      ...Object.values(usage.annexes).map((e) => Date.parse(e.expiresAt)),
    );
    return {
      Put: {
        TableName: this.tableName,
        Item: {
          ...keys.usage(usage.owner, usage.pool),
          entity: 'usage',
          ...usage,
          version: usage.version + 1,
          // Kept while it counts anything: its live entries, and this month's and last month's spend.
          ttl: Math.floor(latest / 1000) + 62 * 24 * 3600,
        },
        ConditionExpression: usage.version === 0 ? 'attribute_not_exists(PK)' : '#version = :expected',
        ...(usage.version === 0
          ? {}
          : {
              ExpressionAttributeNames: { '#version': 'version' },
              ExpressionAttributeValues: { ':expected': usage.version },
            }),
      },
    };
  }

  private eventPut(event: AnnexEvent): TransactItem {
    return {
      Put: {
        TableName: this.tableName,
        Item: {
          ...keys.event(event.annexId, event.at, randomBytes(4).toString('hex')),
          entity: 'event',
          ...event,
          ttl: historyTtl(event.at),
        },
      },
    };
  }

  private async transactUpdate(
    annex: Annex,
    changes: AnnexChanges,
    extra: TransactItem[],
    event: AnnexEvent | undefined,
    what: string,
    usage?: PoolUsage,
  ): Promise<Annex> {
    const next: Annex = { ...annex, ...changes, version: annex.version + 1 };
    if (next.updatedAt === annex.updatedAt) next.updatedAt = event?.at ?? new Date().toISOString();
    const names: Record<string, string> = { '#version': 'version' };
    const values: Record<string, unknown> = { ':expected': annex.version };
    const sets: string[] = [];
    const removes: string[] = [];
    const fields = { ...changes, version: next.version, updatedAt: next.updatedAt };
    for (const [field, value] of Object.entries(fields)) {
      names[`#${field}`] = field;
      if (value === undefined) {
        removes.push(`#${field}`);
      } else {
        values[`:${field}`] = value;
        sets.push(`#${field} = :${field}`);
      }
    }
    const ending = isEnded(next.state) && !isEnded(annex.state);
    if (ending) {
      names['#liveShard'] = 'liveShard';
      removes.push('#liveShard');
      // The ended annex is history now: kept HISTORY_RETENTION_SECONDS after its end.
      names['#ttl'] = 'ttl';
      values[':ttl'] = historyTtl(next.endedAt ?? next.updatedAt);
      sets.push('#ttl = :ttl');
    }
    const update: TransactItem = {
      Update: {
        TableName: this.tableName,
        Key: keys.annex(annex.id),
        UpdateExpression: `SET ${sets.join(', ')}${removes.length > 0 ? ` REMOVE ${removes.join(', ')}` : ''}`,
        ConditionExpression: 'attribute_exists(PK) AND #version = :expected',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      },
    };
    const items: TransactItem[] = [update, ...extra];
    const usageAt = items.length;
    if (usage !== undefined) items.push(this.usagePut(usage, next.updatedAt));
    if (ending) {
      // Ending frees the name, but only this annex's own claim.
      items.push({
        Delete: {
          TableName: this.tableName,
          Key: keys.nameClaim(annex.owner, annex.name),
          ConditionExpression: 'attribute_not_exists(PK) OR annexId = :annexId',
          ExpressionAttributeValues: { ':annexId': annex.id },
        },
      });
    }
    if (event !== undefined) items.push(this.eventPut(event));
    try {
      await this.send(new TransactWriteCommand({ TransactItems: items }), what);
    } catch (e) {
      const reasons = cancelledAt(e);
      if (reasons[0] === 'ConditionalCheckFailed') {
        throw conflict(`annex ${annex.name} was changed by another request; retry`);
      }
      if (reasons[1] === 'ConditionalCheckFailed' && extra.length > 0) {
        throw conflict('this Idempotency-Key is already being used for another batch');
      }
      if (usage !== undefined && reasons[usageAt] === 'ConditionalCheckFailed') {
        throw conflict(`the quota usage of pool ${usage.pool} changed; retry`);
      }
      if (reasons.includes('TransactionConflict')) {
        throw conflict(`annex ${annex.name} is being changed by another request; retry`);
      }
      return translateDynamoError(e, what);
    }
    return next;
  }

  /** The conditional update that applies one notice to an instance record (see LeaseStore). */
  private noticeUpdate(annexId: string, instanceId: string, notice: InstanceNotice) {
    const base = { TableName: this.tableName, Key: keys.instance(annexId, instanceId) };
    switch (notice.kind) {
      case 'interruption':
        // The first notice is the one: the instance's own report and EC2's event say the same.
        return {
          ...base,
          UpdateExpression: 'SET interruptedAt = :at, interruption = :interruption',
          ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(interruption)',
          ExpressionAttributeValues: { ':at': notice.at, ':interruption': notice.interruption },
        };
      case 'rebalance':
        return {
          ...base,
          UpdateExpression: 'SET rebalanceRecommendedAt = :at',
          ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(rebalanceRecommendedAt)',
          ExpressionAttributeValues: { ':at': notice.at },
        };
      case 'state': {
        const terminated = notice.state === 'terminated';
        return {
          ...base,
          // A terminated instance leaves the liveInstances index, and keeps when it left (its cost).
          UpdateExpression: terminated
            ? 'SET #state = :state, stateEventKey = :key, updatedAt = :at, terminatedAt = if_not_exists(terminatedAt, :at) REMOVE liveInstanceShard, liveInstanceSk'
            : 'SET #state = :state, stateEventKey = :key, updatedAt = :at',
          // Never out of terminated; never back to an older event (time, then state order).
          ConditionExpression:
            'attribute_exists(PK) AND #state <> :terminated AND (attribute_not_exists(stateEventKey) OR stateEventKey < :key)',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':state': notice.state,
            ':key': stateEventKey(notice.at, notice.state),
            ':at': notice.at,
            ':terminated': 'terminated',
          },
        };
      }
    }
  }

  /** An update of an existing instance record; false when there is none. */
  private async updateInstance(
    annexId: string,
    instanceId: string,
    update: { UpdateExpression: string; ExpressionAttributeValues: Record<string, unknown> },
    what: string,
  ): Promise<boolean> {
    try {
      await this.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.instance(annexId, instanceId),
          ConditionExpression: 'attribute_exists(PK)',
          ...update,
        }),
        what,
      );
      return true;
    } catch (e) {
      if (errorName(e) !== 'ConditionalCheckFailedException') throw e;
      return false;
    }
  }

  private async get<T>(key: { PK: string; SK: string }, what: string): Promise<T | undefined> {
    const out = await this.send(
      new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }),
      what,
    );
    return out.Item === undefined ? undefined : stripTableAttributes<T>(out.Item);
  }

  private async queryAll<T>(input: Omit<QueryCommandInput, 'TableName'>): Promise<T[]> {
    const items: T[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.send(
        new QueryCommand({ TableName: this.tableName, ...input, ExclusiveStartKey: start }),
        'query',
      );
      for (const item of out.Items ?? []) items.push(stripTableAttributes<T>(item));
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
    return items;
  }

  private send(command: GetCommand, what: string): Promise<GetCommandOutput>;
  private send(command: PutCommand, what: string): Promise<PutCommandOutput>;
  private send(command: UpdateCommand, what: string): Promise<UpdateCommandOutput>;
  private send(command: QueryCommand, what: string): Promise<QueryCommandOutput>;
  private send(command: BatchWriteCommand, what: string): Promise<BatchWriteCommandOutput>;
  private send(command: TransactWriteCommand, what: string): Promise<TransactWriteCommandOutput>;
  private async send(command: AnyCommand, what: string): Promise<unknown> {
    try {
      return await this.doc.send(command as GetCommand);
    } catch (e) {
      return translateDynamoError(e, what);
    }
  }
}
