/**
 * Wiring for functions that only read and write the lease table. Clients are created once per
 * cold start and injected into the domain. Functions that need SSM or EC2 add them from
 * deps-pools.ts and deps-ec2.ts, so a read-only function loads the DynamoDB client alone.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { ReadDeps } from '../domain/annex-deps.ts';
import { systemClock } from '../domain/ports.ts';
import { settings } from '../config.ts';
import { logger } from '../log.ts';
import { DynamoLeaseStore } from './leases.ts';

let read: ReadDeps | undefined;

export const readDeps = (): ReadDeps => {
  if (read === undefined) {
    const config = settings();
    read = {
      store: new DynamoLeaseStore(new DynamoDBClient({}), config.tableName),
      clock: systemClock,
      settings: config,
      log: logger,
    };
  }
  return read;
};

/** Admins and the roles owned per session, for the HTTP edge's caller (shared/http/api.ts). */
export { identityRules } from '../config.ts';
