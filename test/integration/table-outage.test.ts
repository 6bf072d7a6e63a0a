// The sweep's table-outage fallback against the real adapters: the lease store points at a port on
// 127.0.0.1 that nothing listens on (every DynamoDB call is refused, as with the table unreachable),
// and moto's EC2 holds instances tagged as Annex tags them. With the table unreadable the only
// expiry the sweep can know is the `annex:expires-at` tag: instances of this stage past it by more
// than the grace are terminated; those within the grace, not yet expired, without the tag, of
// another stage or without an annex id are left running.
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { DescribeImagesCommand, DescribeInstancesCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Ec2Compute } from '../../shared/aws/ec2.ts';
import { DynamoLeaseStore } from '../../shared/aws/leases.ts';
import { SchedulerExpirySchedules } from '../../shared/aws/schedules.ts';
import { SsmSecretStore } from '../../shared/aws/secrets.ts';
import { systemClock, type Logger } from '../../shared/domain/ports.ts';
import { sweep, type SweepDeps } from '../../shared/domain/sweep.ts';
import { fakeCredentials, localEc2, region } from './local-aws.ts';

const stage = `to${randomBytes(4).toString('hex')}`;
const GRACE_S = 300;
const MINUTE = 60_000;

let ec2: EC2Client;
let dynamo: DynamoDBClient;
let ssm: SSMClient;
let scheduler: SchedulerClient;
let imageId: string;

/** A port on 127.0.0.1 that was free a moment ago and is closed now: connections to it are refused. */
const closedPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });

beforeAll(async () => {
  const motoClient = {
    endpoint: inject('motoEndpoint'),
    region,
    credentials: fakeCredentials,
    maxAttempts: 1,
  };
  ec2 = localEc2();
  ssm = new SSMClient(motoClient);
  scheduler = new SchedulerClient(motoClient);
  dynamo = new DynamoDBClient({
    endpoint: `http://127.0.0.1:${await closedPort()}`,
    region,
    credentials: fakeCredentials,
    maxAttempts: 1,
  });
  const images = await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }));
  imageId = images.Images?.find((i) => i.ImageId !== undefined)?.ImageId ?? '';
  expect(imageId).not.toBe('');
});

afterAll(() => {
  for (const client of [ec2, dynamo, ssm, scheduler]) client?.destroy();
});

const start = async (tags: Record<string, string>): Promise<string> => {
  const out = await ec2.send(
    new RunInstancesCommand({
      ImageId: imageId,
      InstanceType: 'm5.large',
      MinCount: 1,
      MaxCount: 1,
      TagSpecifications: [
        {
          ResourceType: 'instance',
          Tags: Object.entries({ Name: 'outage', ...tags }).map(([Key, Value]) => ({ Key, Value })),
        },
      ],
    }),
  );
  return out.Instances?.[0]?.InstanceId ?? '';
};

const stateOf = async (instanceId: string): Promise<string | undefined> => {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return out.Reservations?.[0]?.Instances?.[0]?.State?.Name;
};

const annexTags = (annexId: string, expiresAt?: number): Record<string, string> => ({
  'annex:id': annexId,
  'annex:stage': stage,
  'annex:batch': '0',
  ...(expiresAt === undefined ? {} : { 'annex:expires-at': new Date(expiresAt).toISOString() }),
});

describe('the sweep with the lease table unreachable', () => {
  it('terminates from the EC2 listing alone the instances past their expiry tag plus the grace, and nothing else', async () => {
    // Prepare: instances of this stage past expiry + grace, within the grace, not yet expired and
    // without an expiry tag; one of another stage long expired; one with no annex id; one untagged.
    const now = Date.now();
    const pastGrace = [
      await start(annexTags('ax-000000000000000000a1', now - GRACE_S * 1000 - 5 * MINUTE)),
      await start(annexTags('ax-000000000000000000a2', now - 3 * 3_600_000)),
      await start(annexTags('ax-000000000000000000a2', now - 3 * 3_600_000)),
    ];
    const withinGrace = await start(annexTags('ax-000000000000000000b1', now - 2 * MINUTE));
    const notExpired = await start(annexTags('ax-000000000000000000c1', now + 60 * MINUTE));
    const noExpiryTag = await start(annexTags('ax-000000000000000000d1'));
    const otherStage = await start({
      ...annexTags('ax-000000000000000000e1', now - 3 * 3_600_000),
      'annex:stage': `${stage}x`,
    });
    const noAnnexId = await start({
      'annex:stage': stage,
      'annex:expires-at': new Date(now - 3_600_000).toISOString(),
    });
    const untagged = await start({});
    const problems: string[] = [];
    const log: Logger = {
      info: () => {},
      warn: (message, fields) => problems.push(`warn: ${message} ${JSON.stringify(fields)}`),
      error: (message, fields) => problems.push(`error: ${message} ${JSON.stringify(fields)}`),
    };
    const deps: SweepDeps = {
      store: new DynamoLeaseStore(dynamo, 'leases-unreachable'),
      clock: systemClock,
      settings: { stage, maxDurationSeconds: 7 * 24 * 3600, maxInstancesPerAnnex: 50 },
      log,
      compute: new Ec2Compute(ec2, stage),
      secrets: new SsmSecretStore(ssm, stage),
      schedules: new SchedulerExpirySchedules(scheduler, {
        group: `annex-${stage}`,
        functionArn: `arn:aws:lambda:${region}:123456789012:function:annex-${stage}-expire`,
        roleArn: 'arn:aws:iam::123456789012:role/annex-scheduler',
      }),
      launch: { instanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/annex-node' },
      sweep: {
        bootGraceSeconds: 900,
        orphanMinAgeSeconds: 60,
        stuckAfterSeconds: 600,
        concurrency: 4,
        outageExpiryGraceSeconds: GRACE_S,
      },
    };

    // Act
    const report = await sweep(deps);

    // Assess: the table read failed (and was logged), only the expiry tags were enforced.
    expect(report.tableUnavailable).toBe(true);
    expect(report.failedSteps).toEqual(['list-leases']);
    expect(problems.join('\n')).toMatch(/list-leases/);
    expect(report.taggedInstances).toBe(6);
    expect(
      report.actions
        .flatMap((a) => (a.action === 'terminate-past-expiry' ? (a.instanceIds ?? []) : []))
        .sort(),
    ).toEqual([...pastGrace].sort());
    for (const id of pastGrace) expect(await stateOf(id), id).toMatch(/^(shutting-down|terminated)$/);
    for (const id of [withinGrace, notExpired, noExpiryTag, otherStage, noAnnexId, untagged]) {
      expect(await stateOf(id), id).toBe('running');
    }
  });
});
