/**
 * The lease table adapter (DynamoDB). Every state change is a named conditional write: create is
 * `attribute_not_exists`, update checks `#version`. A lost race surfaces as a domain Conflict.
 * Pools, annexes and quota usage here; instances and events in ./instance-store.ts; item shapes
 * and the rules of each transition in ./table/entities.ts.
 */
import { PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { conflict } from '../domain/errors.ts';
import type { Annex, AnnexEvent, Pool, PoolUsage } from '../domain/model.ts';
import type { AddNodesClaim, AnnexChanges, LeaseStore } from '../domain/ports.ts';
import { cancelledAt, errorCode as errorName, translateDynamoError } from './errors.ts';
import { DynamoInstanceStore } from './instance-store.ts';
import { INDEX, keys, stripTableAttributes } from './keys.ts';
import type { TransactItem } from './table/base.ts';
import {
  addNodesClaimItem,
  annexEnds,
  annexItem,
  annexUpdate,
  nameClaimItem,
  poolItem,
  usageItem,
} from './table/entities.ts';

export { HISTORY_RETENTION_SECONDS } from './table/entities.ts';

export class DynamoLeaseStore extends DynamoInstanceStore implements LeaseStore {
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
        Item: poolItem(pool),
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
                Item: annexItem(annex),
                ConditionExpression: 'attribute_not_exists(PK)',
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: nameClaimItem(annex),
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
    return this.transactUpdate(
      annex,
      changes,
      [
        {
          Put: {
            TableName: this.tableName,
            Item: addNodesClaimItem(annex.id, claim, event.at),
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

  // ----- helpers -----------------------------------------------------------------------------

  /** Writes the usage record whole, only over the version it was computed from. */
  private usagePut(usage: PoolUsage, at: string): TransactItem {
    return {
      Put: {
        TableName: this.tableName,
        Item: usageItem(usage, at),
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
    const builder = annexUpdate(annex, next, changes);
    const condition = `attribute_exists(PK) AND ${builder.ref('version')} = ${builder.value('expected', annex.version)}`;
    const ending = annexEnds(annex, next);
    const update: TransactItem = {
      Update: {
        TableName: this.tableName,
        Key: keys.annex(annex.id),
        ...builder.build(),
        ConditionExpression: condition,
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
}
