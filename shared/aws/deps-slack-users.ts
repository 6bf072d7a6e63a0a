/** Wiring for the Slack mapping routes: the lease table only. */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { identityRules, settings } from '../config.ts';
import { systemClock } from '../domain/ports.ts';
import { DynamoSlackStore } from './slack-store.ts';

let store: DynamoSlackStore | undefined;

/** The Slack items of the lease table. */
export const slackStore = (): DynamoSlackStore =>
  (store ??= new DynamoSlackStore(new DynamoDBClient({}), settings().tableName));

export const slackUsersDeps = () => ({
  slackStore: slackStore(),
  clock: systemClock,
  identity: identityRules(),
});
