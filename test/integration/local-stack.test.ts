import {
  DeleteTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { DescribeRegionsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { resetMoto, startEmulators } from '../../scripts/devstack/emulators.ts';
import { createLeaseTable } from '../../scripts/devstack/table.ts';
import { localDynamoDb, localEc2, uniqueTableName } from './local-aws.ts';

let dynamo: DynamoDBClient;
let ec2: EC2Client;
const tableName = uniqueTableName('local-stack');

beforeAll(() => {
  dynamo = localDynamoDb();
  ec2 = localEc2();
});

afterAll(async () => {
  await dynamo.send(new DeleteTableCommand({ TableName: tableName }));
  dynamo.destroy();
  ec2.destroy();
});

describe('DynamoDB Local', () => {
  it('gets the lease table with both indexes and TTL from createLeaseTable', async () => {
    await createLeaseTable(dynamo, tableName);

    const { Table: table } = await dynamo.send(new DescribeTableCommand({ TableName: tableName }));
    expect(table?.TableStatus).toBe('ACTIVE');
    expect(table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table?.KeySchema).toEqual([
      { AttributeName: 'PK', KeyType: 'HASH' },
      { AttributeName: 'SK', KeyType: 'RANGE' },
    ]);
    const indexes = Object.fromEntries(
      (table?.GlobalSecondaryIndexes ?? []).map((index) => [index.IndexName, index]),
    );
    expect(Object.keys(indexes).sort()).toEqual(['byOwner', 'live', 'liveInstances']);
    expect(indexes.byOwner?.IndexStatus).toBe('ACTIVE');
    expect(indexes.live?.KeySchema).toEqual([
      { AttributeName: 'liveShard', KeyType: 'HASH' },
      { AttributeName: 'expiresAt', KeyType: 'RANGE' },
    ]);
    expect(indexes.liveInstances?.KeySchema).toEqual([
      { AttributeName: 'liveInstanceShard', KeyType: 'HASH' },
      { AttributeName: 'liveInstanceSk', KeyType: 'RANGE' },
    ]);
    const { TimeToLiveDescription: ttl } = await dynamo.send(
      new DescribeTimeToLiveCommand({ TableName: tableName }),
    );
    expect(ttl).toEqual({ AttributeName: 'ttl', TimeToLiveStatus: 'ENABLED' });
  });

  it('accepts createLeaseTable again for an existing table', async () => {
    await createLeaseTable(dynamo, tableName);
    await createLeaseTable(dynamo, tableName);

    const { Table: table } = await dynamo.send(new DescribeTableCommand({ TableName: tableName }));
    expect(table?.TableStatus).toBe('ACTIVE');
  });
});

describe('moto server', () => {
  it('answers EC2 DescribeRegions', async () => {
    const { Regions: regions } = await ec2.send(new DescribeRegionsCommand({}));

    expect(regions?.map((r) => r.RegionName)).toContain('us-east-1');
  });

  it('can be reset', async () => {
    await expect(resetMoto(inject('motoEndpoint'))).resolves.toBeUndefined();
  });
});

describe('startEmulators', () => {
  it('listens on 127.0.0.1 only', async () => {
    const external = Object.values(networkInterfaces())
      .flat()
      .find((address) => address !== undefined && address.family === 'IPv4' && !address.internal);
    if (external === undefined) return; // no other interface to try from
    for (const endpoint of [inject('dynamoEndpoint'), inject('motoEndpoint')]) {
      const port = Number(new URL(endpoint).port);
      const refused = await new Promise<boolean>((resolve) => {
        const socket = connect({ host: external.address, port, timeout: 2_000 });
        socket.once('connect', () => {
          socket.destroy();
          resolve(false);
        });
        socket.once('error', () => resolve(true));
        socket.once('timeout', () => {
          socket.destroy();
          resolve(true);
        });
      });
      expect(refused, `${external.address}:${port} (${endpoint})`).toBe(true);
    }
  });

  it('refuses a port that is already taken, before starting anything', async () => {
    const taken = Number(new URL(inject('motoEndpoint')).port);

    await expect(startEmulators({ motoPort: taken })).rejects.toThrow(/already in use/);
  });
});
