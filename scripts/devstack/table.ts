// The lease table for the local stack and the integration tests, built from the CloudFormation
// definition in serverless.yml (resources.Resources.LeaseTable) so that it lives in one place.
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
  type TimeToLiveSpecification,
} from '@aws-sdk/client-dynamodb';
import { z } from 'zod';
import { defaultServerlessYmlPath, readServerlessYml } from './serverless-config.ts';

const keySchema = z.array(
  z.object({ AttributeName: z.string(), KeyType: z.enum(['HASH', 'RANGE']) }).strict(),
);
const projection = z
  .object({
    ProjectionType: z.enum(['ALL', 'KEYS_ONLY', 'INCLUDE']),
    NonKeyAttributes: z.array(z.string()).optional(),
  })
  .strict();
const throughput = z
  .object({ ReadCapacityUnits: z.coerce.number(), WriteCapacityUnits: z.coerce.number() })
  .strict();
const index = z.object({
  IndexName: z.string(),
  KeySchema: keySchema,
  Projection: projection,
  ProvisionedThroughput: throughput.optional(),
});

// Every property of AWS::DynamoDB::Table that CreateTable takes is listed and converted; the rest
// (TableName, TimeToLiveSpecification, PointInTimeRecoverySpecification, SSESpecification,
// DeletionProtectionEnabled, Tags, ...) is dropped: the table name comes from the caller, TTL is
// a separate call, and the others only matter on AWS.
const tableProperties = z.object({
  BillingMode: z.enum(['PAY_PER_REQUEST', 'PROVISIONED']).optional(),
  AttributeDefinitions: z.array(
    z.object({ AttributeName: z.string(), AttributeType: z.enum(['S', 'N', 'B']) }).strict(),
  ),
  KeySchema: keySchema,
  GlobalSecondaryIndexes: z.array(index).optional(),
  LocalSecondaryIndexes: z.array(index.omit({ ProvisionedThroughput: true })).optional(),
  ProvisionedThroughput: throughput.optional(),
  StreamSpecification: z
    .object({ StreamViewType: z.enum(['NEW_IMAGE', 'OLD_IMAGE', 'NEW_AND_OLD_IMAGES', 'KEYS_ONLY']) })
    .optional(),
  TimeToLiveSpecification: z.object({ AttributeName: z.string(), Enabled: z.boolean() }).optional(),
});

type LeaseTableProperties = z.infer<typeof tableProperties>;

function leaseTableProperties(serverlessYmlPath: string): LeaseTableProperties {
  const config = z
    .object({
      resources: z.object({
        Resources: z.object({
          LeaseTable: z.object({ Type: z.literal('AWS::DynamoDB::Table'), Properties: z.unknown() }),
        }),
      }),
    })
    .safeParse(readServerlessYml(serverlessYmlPath));
  if (!config.success) {
    throw new Error(`${serverlessYmlPath}: no resources.Resources.LeaseTable: ${config.error.message}`);
  }
  const properties = tableProperties.safeParse(config.data.resources.Resources.LeaseTable.Properties);
  if (!properties.success) {
    throw new Error(`${serverlessYmlPath}: LeaseTable.Properties: ${properties.error.message}`);
  }
  return properties.data;
}

/** CreateTable input for a table named `tableName` with the lease table's keys and indexes. */
export function leaseTableDefinition(
  tableName: string,
  serverlessYmlPath: string = defaultServerlessYmlPath,
): CreateTableCommandInput {
  const properties = leaseTableProperties(serverlessYmlPath);
  const input: CreateTableCommandInput = {
    TableName: tableName,
    AttributeDefinitions: properties.AttributeDefinitions,
    KeySchema: properties.KeySchema,
    BillingMode: properties.BillingMode ?? 'PROVISIONED',
  };
  if (properties.GlobalSecondaryIndexes) input.GlobalSecondaryIndexes = properties.GlobalSecondaryIndexes;
  if (properties.LocalSecondaryIndexes) input.LocalSecondaryIndexes = properties.LocalSecondaryIndexes;
  if (properties.ProvisionedThroughput) input.ProvisionedThroughput = properties.ProvisionedThroughput;
  if (properties.StreamSpecification) {
    input.StreamSpecification = { StreamEnabled: true, ...properties.StreamSpecification };
  }
  return input;
}

/** The TTL setting of the lease table in serverless.yml, if it has one enabled. */
export function leaseTableTimeToLive(
  serverlessYmlPath: string = defaultServerlessYmlPath,
): Required<TimeToLiveSpecification> | undefined {
  const ttl = leaseTableProperties(serverlessYmlPath).TimeToLiveSpecification;
  if (ttl === undefined || !ttl.Enabled) return undefined;
  return { AttributeName: ttl.AttributeName, Enabled: true };
}

const activeTimeoutMs = 30_000;
const pollMs = 100;

/**
 * Creates the lease table under `tableName` (an existing table is fine), waits until it and its
 * indexes are ACTIVE, and turns TTL on as serverless.yml says.
 */
export async function createLeaseTable(
  client: DynamoDBClient,
  tableName: string,
  serverlessYmlPath: string = defaultServerlessYmlPath,
): Promise<void> {
  try {
    await client.send(new CreateTableCommand(leaseTableDefinition(tableName, serverlessYmlPath)));
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  await waitUntilActive(client, tableName);

  const ttl = leaseTableTimeToLive(serverlessYmlPath);
  if (ttl === undefined) return;
  const current = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
  const description = current.TimeToLiveDescription;
  if (description?.TimeToLiveStatus === 'ENABLED' && description.AttributeName === ttl.AttributeName) return;
  await client.send(new UpdateTimeToLiveCommand({ TableName: tableName, TimeToLiveSpecification: ttl }));
}

async function waitUntilActive(client: DynamoDBClient, tableName: string): Promise<void> {
  const deadline = Date.now() + activeTimeoutMs;
  for (;;) {
    const { Table: table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    const indexesActive = (table?.GlobalSecondaryIndexes ?? []).every((gsi) => gsi.IndexStatus === 'ACTIVE');
    if (table?.TableStatus === 'ACTIVE' && indexesActive) return;
    if (Date.now() > deadline) {
      throw new Error(`table ${tableName} not ACTIVE after ${activeTimeoutMs} ms (${table?.TableStatus})`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
