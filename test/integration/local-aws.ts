// SDK clients for the emulators the global setup started. Credentials are fixed fake values and
// every endpoint is 127.0.0.1, so nothing here can reach AWS.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { createLeaseTable } from '../../scripts/devstack/table.ts';

export const region = 'us-east-1';
export const fakeCredentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };

// maxAttempts 1: moto answers unimplemented calls with HTTP 500, which must fail fast, not retry.
const clientConfig = (endpoint: string) => ({
  endpoint,
  region,
  credentials: fakeCredentials,
  maxAttempts: 1,
});

export function localDynamoDb(): DynamoDBClient {
  return new DynamoDBClient(clientConfig(inject('dynamoEndpoint')));
}

export function localEc2(): EC2Client {
  return new EC2Client(clientConfig(inject('motoEndpoint')));
}

/** A table name no other test file uses: `<prefix>-<random>`. */
export function uniqueTableName(prefix = 'leases'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** Creates a lease table of its own for the calling test file and returns its name. */
export async function createTestLeaseTable(client: DynamoDBClient, prefix?: string): Promise<string> {
  const tableName = uniqueTableName(prefix);
  await createLeaseTable(client, tableName);
  return tableName;
}
