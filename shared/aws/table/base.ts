/**
 * What every lease table adapter shares: the document client, one `send` that translates the
 * SDK's errors once, consistent reads, paged queries and the event put that goes with a change.
 */
import { randomBytes } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type {
  BatchWriteCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type BatchWriteCommandOutput,
  type GetCommandOutput,
  type PutCommandOutput,
  type QueryCommandInput,
  type QueryCommandOutput,
  type TransactWriteCommandOutput,
  type UpdateCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import type { AnnexEvent } from '../../domain/model.ts';
import { translateDynamoError } from '../errors.ts';
import { stripTableAttributes, type Key } from '../keys.ts';
import { eventItem } from './entities.ts';

type AnyCommand =
  GetCommand | PutCommand | UpdateCommand | QueryCommand | BatchWriteCommand | TransactWriteCommand;
export type TransactItem = NonNullable<
  ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']
>[number];

export abstract class TableAdapter {
  protected readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    protected readonly tableName: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, {
      marshallOptions: { removeUndefinedValues: true },
    });
  }

  protected eventPut(event: AnnexEvent): TransactItem {
    return { Put: { TableName: this.tableName, Item: eventItem(event, randomBytes(4).toString('hex')) } };
  }

  protected async get<T>(key: Key, what: string): Promise<T | undefined> {
    const out = await this.send(
      new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }),
      what,
    );
    return out.Item === undefined ? undefined : stripTableAttributes<T>(out.Item);
  }

  protected async queryAll<T>(input: Omit<QueryCommandInput, 'TableName'>): Promise<T[]> {
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

  protected send(command: GetCommand, what: string): Promise<GetCommandOutput>;
  protected send(command: PutCommand, what: string): Promise<PutCommandOutput>;
  protected send(command: UpdateCommand, what: string): Promise<UpdateCommandOutput>;
  protected send(command: QueryCommand, what: string): Promise<QueryCommandOutput>;
  protected send(command: BatchWriteCommand, what: string): Promise<BatchWriteCommandOutput>;
  protected send(command: TransactWriteCommand, what: string): Promise<TransactWriteCommandOutput>;
  protected async send(command: AnyCommand, what: string): Promise<unknown> {
    try {
      return await this.doc.send(command as GetCommand);
    } catch (e) {
      return translateDynamoError(e, what);
    }
  }
}
