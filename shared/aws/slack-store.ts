/**
 * Slack items in the lease table: the Slack user → principal mappings, the signatures of
 * requests already seen (a conditional put, kept by TTL past the 5-minute window), and the
 * annexes created from Slack that get a warning and an end notice.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { SlackIdentity, SlackWatch } from '../slack/model.ts';
import type { SlackStore } from '../slack/ports.ts';
import { awsErrorKind, DYNAMODB_ERRORS, translateDynamoError } from './errors.ts';
import { keys, stripTableAttributes } from './keys.ts';

export class DynamoSlackStore implements SlackStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly tableName: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async getIdentity(teamId: string, userId: string): Promise<SlackIdentity | undefined> {
    try {
      const out = await this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: keys.slackIdentity(teamId, userId),
          ConsistentRead: true,
        }),
      );
      return out.Item === undefined ? undefined : stripTableAttributes<SlackIdentity>(out.Item);
    } catch (e) {
      return translateDynamoError(e, 'getIdentity');
    }
  }

  async putIdentity(identity: SlackIdentity): Promise<void> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...keys.slackIdentity(identity.teamId, identity.userId),
            entity: 'slack-identity',
            ...identity,
          },
        }),
      );
    } catch (e) {
      translateDynamoError(e, 'putIdentity');
    }
  }

  async deleteIdentity(teamId: string, userId: string): Promise<boolean> {
    try {
      const out = await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.slackIdentity(teamId, userId),
          ReturnValues: 'ALL_OLD',
        }),
      );
      return out.Attributes !== undefined;
    } catch (e) {
      return translateDynamoError(e, 'deleteIdentity');
    }
  }

  async recordNonce(signature: string, expiresAtEpochSeconds: number): Promise<'recorded' | 'replay'> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.slackNonce(signature), entity: 'slack-nonce', ttl: expiresAtEpochSeconds },
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
      return 'recorded';
    } catch (e) {
      if (awsErrorKind(DYNAMODB_ERRORS, e) === 'condition-failed') return 'replay';
      return translateDynamoError(e, 'recordNonce');
    }
  }

  async putWatch(watch: SlackWatch): Promise<void> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.slackWatch(watch.annexId), entity: 'slack-watch', ...watch },
          // A retried create must not forget a warning already sent.
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
    } catch (e) {
      if (awsErrorKind(DYNAMODB_ERRORS, e) !== 'condition-failed') translateDynamoError(e, 'putWatch');
    }
  }

  async listWatches(): Promise<SlackWatch[]> {
    const found: SlackWatch[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      let out;
      try {
        out = await this.doc.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: 'PK = :pk',
            ExpressionAttributeValues: { ':pk': keys.slackWatchPartition },
            ExclusiveStartKey: start,
          }),
        );
      } catch (e) {
        return translateDynamoError(e, 'listWatches');
      }
      for (const item of out.Items ?? []) found.push(stripTableAttributes<SlackWatch>(item));
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
    return found;
  }

  async markWarned(annexId: string, expiresAt: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.slackWatch(annexId),
          UpdateExpression: 'SET warnedFor = :expiresAt',
          ConditionExpression: 'attribute_exists(PK)',
          ExpressionAttributeValues: { ':expiresAt': expiresAt },
        }),
      );
    } catch (e) {
      if (awsErrorKind(DYNAMODB_ERRORS, e) !== 'condition-failed') translateDynamoError(e, 'markWarned');
    }
  }

  async deleteWatch(annexId: string): Promise<void> {
    try {
      await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: keys.slackWatch(annexId) }));
    } catch (e) {
      translateDynamoError(e, 'deleteWatch');
    }
  }
}
