import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { defaultServerlessYmlPath } from '../../../scripts/devstack/serverless-config.ts';
import { leaseTableDefinition, leaseTableTimeToLive } from '../../../scripts/devstack/table.ts';

interface CfnTable {
  Properties: Record<string, unknown>;
}
const declared = (
  parse(readFileSync(defaultServerlessYmlPath, 'utf8')) as {
    resources: { Resources: { LeaseTable: CfnTable } };
  }
).resources.Resources.LeaseTable.Properties;

function fixture(yaml: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'annex-table-')), 'serverless.yml');
  writeFileSync(path, yaml);
  return path;
}

describe('leaseTableDefinition', () => {
  it('takes keys, indexes and billing mode from serverless.yml, under the given name', () => {
    const input = leaseTableDefinition('leases-test');

    expect(input).toEqual({
      TableName: 'leases-test',
      AttributeDefinitions: declared.AttributeDefinitions,
      KeySchema: declared.KeySchema,
      GlobalSecondaryIndexes: declared.GlobalSecondaryIndexes,
      BillingMode: declared.BillingMode,
    });
    expect(input.GlobalSecondaryIndexes?.map((index) => index.IndexName)).toEqual([
      'byOwner',
      'live',
      'liveInstances',
    ]);
  });

  it('leaves out what only CloudFormation takes (TTL, PITR, SSE, deletion protection)', () => {
    expect(Object.keys(declared)).toEqual(
      expect.arrayContaining([
        'TimeToLiveSpecification',
        'PointInTimeRecoverySpecification',
        'SSESpecification',
        'DeletionProtectionEnabled',
      ]),
    );
    expect(Object.keys(leaseTableDefinition('t')).sort()).toEqual([
      'AttributeDefinitions',
      'BillingMode',
      'GlobalSecondaryIndexes',
      'KeySchema',
      'TableName',
    ]);
  });

  it('reads the TTL attribute from the same definition', () => {
    expect(leaseTableTimeToLive()).toEqual({
      AttributeName: (declared.TimeToLiveSpecification as { AttributeName: string }).AttributeName,
      Enabled: true,
    });
  });

  it('turns a CloudFormation stream specification into the CreateTable form', () => {
    const path = fixture(`
resources:
  Resources:
    LeaseTable:
      Type: AWS::DynamoDB::Table
      Properties:
        AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }]
        KeySchema: [{ AttributeName: PK, KeyType: HASH }]
        ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: '2' }
        StreamSpecification: { StreamViewType: NEW_IMAGE }
`);

    expect(leaseTableDefinition('t', path)).toEqual({
      TableName: 't',
      AttributeDefinitions: [{ AttributeName: 'PK', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'PK', KeyType: 'HASH' }],
      BillingMode: 'PROVISIONED',
      ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 2 },
      StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_IMAGE' },
    });
    expect(leaseTableTimeToLive(path)).toBeUndefined();
  });

  it('refuses short-form CloudFormation tags, which a YAML parser cannot read', () => {
    const path = fixture(`
resources:
  Resources:
    LeaseTable:
      Type: AWS::DynamoDB::Table
      Properties:
        TableName: !Ref Name
`);

    expect(() => leaseTableDefinition('t', path)).toThrow(/long-form intrinsics/);
  });

  it('names the file when the table is missing', () => {
    const path = fixture('resources: { Resources: {} }\n');

    expect(() => leaseTableDefinition('t', path)).toThrow(path);
  });
});
