/**
 * The lease table adapter's instance side: instance records and their lookups, the conditional
 * writes bootstrap, heartbeat, tokens, notices and prices make, and the annex's event log. Item
 * shapes and the "instance → terminated" rule come from ./table/entities.ts.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { upstreamUnavailable } from '../domain/errors.ts';
import { stateEventKey } from '../domain/instance-notices.ts';
import type {
  AnnexEvent,
  InstanceNotice,
  InstanceRecord,
  InstanceState,
  PriceSource,
} from '../domain/model.ts';
import type { HeartbeatRecord, IssuedToken } from '../domain/ports.ts';
import { cancelledAt, errorCode as errorName, translateDynamoError } from './errors.ts';
import { INDEX, keys, stripTableAttributes } from './keys.ts';
import { TableAdapter } from './table/base.ts';
import { instanceItem, lookupItem, terminate } from './table/entities.ts';
import { UpdateBuilder, type UpdateParts } from './table/update.ts';

type Item = Record<string, unknown>;

const isConditionFailed = (e: unknown): boolean => errorName(e) === 'ConditionalCheckFailedException';

export abstract class DynamoInstanceStore extends TableAdapter {
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

  async putInstances(instances: InstanceRecord[]): Promise<void> {
    // Two items per instance (its record and its lookup), at most 25 items per BatchWriteItem.
    for (let i = 0; i < instances.length; i += 12) {
      let requests: Item[] = instances
        .slice(i, i + 12)
        .flatMap((inst) => [
          { PutRequest: { Item: instanceItem(inst) } },
          { PutRequest: { Item: lookupItem(inst) } },
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
    const update =
      state === 'terminated'
        ? terminate(new UpdateBuilder(), at).build()
        : new UpdateBuilder().set('state', state).set('updatedAt', at, 'at').build();
    await Promise.all(
      instanceIds.map((instanceId) =>
        this.updateInstance(annexId, instanceId, update, 'attribute_exists(PK)', 'setInstanceStates'),
      ),
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
          ...new UpdateBuilder().set('bootstrappedAt', at, 'at').build(),
          ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(bootstrappedAt)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
        'markBootstrapped',
      );
      return 'marked';
    } catch (e) {
      if (!isConditionFailed(e)) throw e;
      return (e as { Item?: unknown }).Item === undefined ? 'missing' : 'already';
    }
  }

  async clearBootstrapped(annexId: string, instanceId: string, at: string): Promise<void> {
    const update = new UpdateBuilder().remove('bootstrappedAt');
    const condition = `bootstrappedAt = ${update.value('at', at)}`;
    await this.updateInstance(annexId, instanceId, update.build(), condition, 'clearBootstrapped');
  }

  async recordHeartbeat(annexId: string, instanceId: string, heartbeat: HeartbeatRecord): Promise<boolean> {
    const update = new UpdateBuilder()
      .set('lastHeartbeatAt', heartbeat.at, 'at')
      .set('claimedSlots', heartbeat.claimedSlots, 'claimed')
      .set('totalSlots', heartbeat.totalSlots, 'total')
      .set('agentState', heartbeat.agentState, 'agent');
    if (heartbeat.idleSince === undefined) update.remove('idleSince');
    else update.setIfAbsent('idleSince', heartbeat.idleSince);
    return this.updateInstance(
      annexId,
      instanceId,
      update.build(),
      'attribute_exists(PK)',
      'recordHeartbeat',
    );
  }

  async recordTokenIssued(
    annexId: string,
    instanceId: string,
    token: IssuedToken,
    event: AnnexEvent,
  ): Promise<boolean> {
    const update = new UpdateBuilder()
      .append('tokenIds', [token.tokenId], 'id')
      .set('tokenExpiresAt', token.expiresAt, 'expires')
      .set('tokenIssuedAt', token.issuedAt, 'issued')
      .build();
    try {
      await this.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.tableName,
                Key: keys.instance(annexId, instanceId),
                ConditionExpression: 'attribute_exists(PK)',
                ...update,
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
    const update = {
      TableName: this.tableName,
      Key: keys.instance(annexId, instanceId),
      ...noticeUpdate(notice),
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const,
    };
    try {
      if (event === undefined) {
        await this.send(new UpdateCommand(update), 'applyInstanceNotice');
      } else {
        // The record and its event together: a replay finds the record already changed and writes neither.
        await this.send(
          new TransactWriteCommand({ TransactItems: [{ Update: update }, this.eventPut(event)] }),
          'applyInstanceNotice',
        );
      }
      return 'applied';
    } catch (e) {
      if (isConditionFailed(e)) {
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
    const update = new UpdateBuilder().set('hourlyUsd', hourlyUsd, 'usd').set('priceSource', source).build();
    const condition = 'attribute_exists(PK) AND attribute_not_exists(hourlyUsd)';
    await this.updateInstance(annexId, instanceId, update, condition, 'setInstancePrice');
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

  /** A conditional update of one instance record; false when the condition does not hold. */
  private async updateInstance(
    annexId: string,
    instanceId: string,
    update: UpdateParts,
    condition: string,
    what: string,
  ): Promise<boolean> {
    try {
      await this.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.instance(annexId, instanceId),
          ConditionExpression: condition,
          ...update,
        }),
        what,
      );
      return true;
    } catch (e) {
      if (!isConditionFailed(e)) throw e;
      return false;
    }
  }
}

/** The conditional update that applies one notice to an instance record (see LeaseStore). */
function noticeUpdate(notice: InstanceNotice): UpdateParts & { ConditionExpression: string } {
  switch (notice.kind) {
    case 'interruption':
      // The first notice is the one: the instance's own report and EC2's event say the same.
      return {
        ...new UpdateBuilder()
          .set('interruptedAt', notice.at, 'at')
          .set('interruption', notice.interruption)
          .build(),
        ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(interruption)',
      };
    case 'rebalance':
      return {
        ...new UpdateBuilder().set('rebalanceRecommendedAt', notice.at, 'at').build(),
        ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(rebalanceRecommendedAt)',
      };
    case 'state': {
      const update =
        notice.state === 'terminated'
          ? terminate(new UpdateBuilder(), notice.at)
          : new UpdateBuilder().set('state', notice.state).set('updatedAt', notice.at, 'at');
      update.set('stateEventKey', stateEventKey(notice.at, notice.state), 'key');
      // Never out of terminated; never back to an older event (time, then state order).
      const condition = `attribute_exists(PK) AND ${update.ref('state')} <> ${update.value('terminated', 'terminated')} AND (attribute_not_exists(stateEventKey) OR stateEventKey < :key)`;
      return { ...update.build(), ConditionExpression: condition };
    }
  }
}
