// Spot, mixed and spot-fleet-config annexes end to end against moto: the real handlers (through the
// SigV4-checking local gateway) and the real adapters. moto's instant fleets put all capacity on
// the first override and never fall short, so these tests never assert the type mix, and partial
// capacity is injected by test/support/fleet-faults.ts around a real EC2 client. moto is reached
// through test/support/moto-shim.ts with `awsProvenance`: a fleet's instances carry what AWS
// reports of them (the fleet id tag, the template's profile), which adopting them requires.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateLaunchTemplateCommand,
  DescribeFleetsCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  EC2Client,
  type FleetData,
  type Instance,
} from '@aws-sdk/client-ec2';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { InitializeHandlerArguments, InitializeHandlerOutput } from '@smithy/types';
import { addInitializeMiddleware } from '../../scripts/devstack/sdk-middleware.ts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ApiClient, LocalStack } from '../../scripts/devstack/stack.ts';
import { Ec2Compute } from '../../shared/aws/ec2.ts';
import { DynamoLeaseStore } from '../../shared/aws/leases.ts';
import { SsmSecretStore } from '../../shared/aws/secrets.ts';
import { createAnnex, type CreateAnnexInput } from '../../shared/domain/annex-create.ts';
import { getAnnexDetail } from '../../shared/domain/annex-read.ts';
import type { LaunchDeps } from '../../shared/domain/annex-deps.ts';
import type { Caller } from '../../shared/domain/model.ts';
import type { Clock } from '../../shared/domain/ports.ts';
import { sweep, type SweepDeps } from '../../shared/domain/sweep.ts';
import { annexView } from '../../shared/domain/views.ts';
import { injectFleetShortfalls, type FleetShortfall } from '../support/fleet-faults.ts';
import { startMotoShim, type MotoShim } from '../support/moto-shim.ts';
import {
  annexInstances,
  integrationStack,
  stackLaunchSettings,
  stackSchedules,
  allowOnDefaultPool,
} from '../support/integration-stack.ts';

let shim: MotoShim;
let stack: LocalStack;
let alice: ApiClient;
let ec2: EC2Client;
let dynamo: DynamoDBClient;
const clients: { destroy(): void }[] = [];

beforeAll(async () => {
  shim = await startMotoShim(inject('motoEndpoint'), { awsProvenance: true });
  stack = await integrationStack('fl', { motoEndpoint: shim.endpoint });
  // The spot suite passes its own user data: the default pool's admin allows it here.
  await allowOnDefaultPool(stack, { allowUserData: true });
  alice = stack.as('alice');
  ec2 = new EC2Client(stack.clientConfig('moto'));
  dynamo = new DynamoDBClient(stack.clientConfig('dynamodb'));
  clients.push(ec2, dynamo);
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  await stack?.stop();
  await shim?.stop();
});

type AnnexBody = { annex: Record<string, unknown> & { id: string; state: string } };
type DetailBody = AnnexBody & { instances: Record<string, unknown>[]; events: Record<string, unknown>[] };

const unique = (what: string) => `${what}-${randomBytes(4).toString('hex')}`;

const instancesOf = (annexId: string, states?: string[]): Promise<Instance[]> =>
  annexInstances(ec2, annexId, states);

const tag = (tags: { Key?: string; Value?: string }[] | undefined, key: string) =>
  tags?.find((t) => t.Key === key)?.Value;

const fleetsOf = async (annexId: string): Promise<FleetData[]> => {
  const out = await ec2.send(new DescribeFleetsCommand({}));
  return (out.Fleets ?? []).filter((f) => tag(f.Tags, 'annex:id') === annexId);
};

const templateName = (annexId: string) => `annex-${stack.stage}-${annexId}`;

const templateExists = async (annexId: string): Promise<boolean> => {
  try {
    const out = await ec2.send(
      new DescribeLaunchTemplatesCommand({ LaunchTemplateNames: [templateName(annexId)] }),
    );
    return (out.LaunchTemplates ?? []).length > 0;
  } catch (e) {
    if ((e as { name?: string }).name === 'InvalidLaunchTemplateName.NotFoundException') return false;
    throw e;
  }
};

const tableItemCount = async () =>
  (await dynamo.send(new ScanCommand({ TableName: stack.tableName, Select: 'COUNT' }))).Count ?? 0;

describe('POST /v1/annexes with market spot', () => {
  const USER_DATA = '#!/bin/bash\necho "spöt" > /tmp/annex\n';
  let annex: AnnexBody['annex'];

  beforeAll(async () => {
    const res = await alice.request<AnnexBody>(
      'POST',
      '/v1/annexes',
      {
        name: 'spot3',
        count: 3,
        market: 'spot',
        instanceTypes: ['m5.large', 'm5a.large', 'm6i.large'],
        userData: USER_DATA,
        durationSeconds: 3600,
      },
      { 'Idempotency-Key': unique('spot3') },
    );
    expect(res.status).toBe(201);
    annex = res.body.annex;
  });

  it('runs three spot instances from one instant, price-capacity-optimized fleet', async () => {
    expect(annex).toMatchObject({
      state: 'RUNNING',
      market: 'spot',
      allocationStrategy: 'price-capacity-optimized',
    });
    const fleets = await fleetsOf(annex.id);
    expect(fleets).toHaveLength(1);
    expect(fleets[0]).toMatchObject({
      Type: 'instant',
      SpotOptions: { AllocationStrategy: 'price-capacity-optimized' },
      TargetCapacitySpecification: { TotalTargetCapacity: 3, SpotTargetCapacity: 3 },
    });
    const instances = await instancesOf(annex.id);
    expect(instances).toHaveLength(3);
    for (const i of instances) {
      expect(i.InstanceLifecycle).toBe('spot');
      expect(tag(i.Tags, 'annex:stage')).toBe(stack.stage);
      expect(tag(i.Tags, 'annex:batch')).toBe('1');
      expect(tag(i.Tags, 'annex:expires-at')).toBe(annex.expiresAt);
    }
  });

  it('launches from the annex’s own template: user data byte for byte, IMDSv2, terminate, the instance profile', async () => {
    const templates = await ec2.send(
      new DescribeLaunchTemplatesCommand({ LaunchTemplateNames: [templateName(annex.id)] }),
    );
    expect(tag(templates.LaunchTemplates?.[0]?.Tags, 'annex:id')).toBe(annex.id);
    expect(tag(templates.LaunchTemplates?.[0]?.Tags, 'annex:stage')).toBe(stack.stage);
    const versions = await ec2.send(
      new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateName: templateName(annex.id) }),
    );
    const data = versions.LaunchTemplateVersions?.[0]?.LaunchTemplateData;
    expect(data).toMatchObject({
      ImageId: stack.imageId,
      InstanceInitiatedShutdownBehavior: 'terminate',
      MetadataOptions: { HttpTokens: 'required' },
      IamInstanceProfile: { Arn: stack.instanceProfileArn },
    });
    expect(Buffer.from(data?.UserData ?? '', 'base64').toString('utf8')).toBe(USER_DATA);
  });

  it('shows requested and running counts and each instance’s market', async () => {
    const res = await alice.request<DetailBody>('GET', '/v1/annexes/spot3');
    expect(res.body.annex).toMatchObject({ requestedCount: 3, runningCount: 3, capacityPolicy: 'keep' });
    expect(res.body.instances.map((i) => i.market)).toEqual(['spot', 'spot', 'spot']);
  });

  it('ending it terminates the instances and deletes the launch template', async () => {
    const res = await alice.request('DELETE', '/v1/annexes/spot3');
    expect(res.status).toBe(202);
    expect(await instancesOf(annex.id)).toEqual([]);
    expect(await templateExists(annex.id)).toBe(false);
  });
});

describe('mixed and spot fleet configs', () => {
  it('a mixed annex gets its on-demand base and spot for the rest', async () => {
    const res = await alice.request<AnnexBody>('POST', '/v1/annexes', {
      name: 'mixed',
      count: 3,
      market: 'mixed',
      onDemandBaseCount: 1,
      instanceTypes: ['c5.large', 'c5a.large'],
      allocationStrategy: 'capacity-optimized',
    });
    expect(res.status).toBe(201);
    const fleets = await fleetsOf(res.body.annex.id);
    expect(fleets[0]).toMatchObject({
      SpotOptions: { AllocationStrategy: 'capacity-optimized' },
      TargetCapacitySpecification: {
        TotalTargetCapacity: 3,
        OnDemandTargetCapacity: 1,
        SpotTargetCapacity: 2,
      },
    });
    const lifecycles = (await instancesOf(res.body.annex.id))
      .map((i) => i.InstanceLifecycle ?? 'on-demand')
      .sort();
    expect(lifecycles).toEqual(['on-demand', 'spot', 'spot']);
    await alice.request('DELETE', '/v1/annexes/mixed');
  });

  it('adds spot nodes to an on-demand annex under the same lease, as a fleet of their own batch', async () => {
    const created = await alice.request<AnnexBody>('POST', '/v1/annexes', {
      name: 'grow',
      count: 1,
      instanceTypes: ['m5.large'],
    });
    expect(created.status).toBe(201);
    expect(await fleetsOf(created.body.annex.id)).toEqual([]);

    const added = await alice.request<AnnexBody>(
      'POST',
      '/v1/annexes/grow/instances',
      { count: 2, market: 'spot', instanceTypes: ['m5.large', 'm5a.large'] },
      { 'Idempotency-Key': unique('grow') },
    );

    expect(added.status).toBe(200);
    expect(added.body.annex).toMatchObject({ state: 'RUNNING', requestedCount: 3, market: 'on-demand' });
    const fleets = await fleetsOf(created.body.annex.id);
    expect(fleets).toHaveLength(1);
    expect(fleets[0]?.TargetCapacitySpecification).toMatchObject({
      TotalTargetCapacity: 2,
      SpotTargetCapacity: 2,
    });
    const instances = await instancesOf(created.body.annex.id);
    const byBatch = instances
      .map((i) => `${tag(i.Tags, 'annex:batch')}:${i.InstanceLifecycle ?? 'on-demand'}`)
      .sort();
    expect(byBatch).toEqual(['1:on-demand', '2:spot', '2:spot']);
    expect(new Set(instances.map((i) => tag(i.Tags, 'annex:expires-at')))).toEqual(
      new Set([created.body.annex.expiresAt]),
    );
    await alice.request('DELETE', '/v1/annexes/grow');
    expect(await templateExists(created.body.annex.id)).toBe(false);
  });

  it('creates an annex from an AWS example Spot Fleet config; request fields override it', async () => {
    const spotFleetConfig = JSON.parse(
      readFileSync(new URL('../fixtures/spot-fleet/diversified.json', import.meta.url), 'utf8'),
    ) as Record<string, unknown>;
    const res = await alice.request<AnnexBody>('POST', '/v1/annexes', {
      name: 'from-config',
      spotFleetConfig,
      count: 2,
      // The example's image and subnet do not exist here.
      imageId: stack.imageId,
      subnetIds: stack.subnetIds,
    });
    expect(res.status).toBe(201);
    expect(res.body.annex).toMatchObject({
      state: 'RUNNING',
      market: 'spot',
      requestedCount: 2,
      instanceTypes: ['c4.2xlarge', 'm3.2xlarge', 'r3.2xlarge'],
      allocationStrategy: 'diversified',
      maxPrice: '0.70',
    });
    const fleets = await fleetsOf(res.body.annex.id);
    expect(fleets[0]?.SpotOptions?.AllocationStrategy).toBe('diversified');
    expect(await instancesOf(res.body.annex.id)).toHaveLength(2);
    await alice.request('DELETE', '/v1/annexes/from-config');
  });

  it.each([
    [
      {
        spotFleetConfig: {
          TargetCapacity: 1,
          LaunchSpecifications: [
            { ImageId: 'ami-1a2b3c4d', InstanceType: 'm5.large', BlockDeviceMappings: [] },
          ],
        },
      },
      'spotFleetConfig.LaunchSpecifications[0].BlockDeviceMappings',
    ],
    [{ count: 2, instanceTypes: ['m5.large'], market: 'mixed' }, 'onDemandBaseCount'],
    [{ count: 2, instanceTypes: ['m5.large'], market: 'flaky' }, 'market'],
    [{ count: 2 }, 'instanceTypes'],
  ])('refuses %j with a 400 naming %s, and writes nothing', async (body, field) => {
    const before = await tableItemCount();
    const res = await alice.request<{ error: { code: string; field?: string } }>('POST', '/v1/annexes', {
      name: 'refused',
      ...body,
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'ValidationError', field });
    expect(await tableItemCount()).toBe(before);
  });
});

// ---------------------------------------------------------------------------------------------
// The domain over the real adapters, with an EC2 client a test can make lose answers or fall short

const clock: Clock & { offsetSeconds: number } = {
  offsetSeconds: 0,
  now() {
    return new Date(Date.now() + this.offsetSeconds * 1000);
  },
};

const domain = () => {
  const client = new EC2Client(stack.clientConfig('moto'));
  const dynamoClient = new DynamoDBClient(stack.clientConfig('dynamodb'));
  const ssm = new SSMClient(stack.clientConfig('moto'));
  const scheduler = new SchedulerClient(stack.clientConfig('moto'));
  clients.push(client, dynamoClient, ssm, scheduler);
  const calls: string[] = [];
  let loseNext: string | undefined;
  addInitializeMiddleware(
    client,
    'loseAnswer',
    (next, context) =>
      async (args: InitializeHandlerArguments<object>): Promise<InitializeHandlerOutput<object>> => {
        const command = (context.commandName ?? '').replace(/Command$/, '');
        calls.push(command);
        const out = await next(args);
        if (command === loseNext) {
          loseNext = undefined;
          throw new Error(`the answer of ${command} was lost`);
        }
        return out;
      },
  );
  const shortfalls: FleetShortfall[] = injectFleetShortfalls(client, ec2);
  const user = stack.users.find((u) => u.name === 'alice');
  const caller: Caller = { principalArn: user?.principalArn ?? '', admin: false };
  const deps: LaunchDeps & SweepDeps = {
    store: new DynamoLeaseStore(dynamoClient, stack.tableName),
    clock,
    settings: { stage: stack.stage, maxDurationSeconds: 7 * 86400, maxInstancesPerAnnex: 50 },
    log: { info: () => {}, warn: () => {}, error: () => {} },
    compute: new Ec2Compute(client, stack.stage),
    secrets: new SsmSecretStore(ssm, stack.stage),
    schedules: stackSchedules(scheduler, stack),
    launch: stackLaunchSettings(stack),
    sweep: { bootGraceSeconds: 900, orphanMinAgeSeconds: 60, stuckAfterSeconds: 600, concurrency: 4 },
  };
  return {
    deps,
    caller,
    calls,
    shortfalls,
    loseAnswerOf: (command: string) => {
      loseNext = command;
    },
  };
};

const spotInput = (name: string, over: Partial<CreateAnnexInput> = {}): CreateAnnexInput => ({
  name,
  pool: 'default',
  count: 3,
  market: 'spot',
  instanceTypes: ['m5.large', 'm5a.large'],
  durationSeconds: 3600,
  ...over,
});

describe('CreateFleet idempotency: the batch is looked up by tag before any relaunch', () => {
  it('a retry after CreateFleet’s answer was lost adopts the fleet’s instances and launches nothing', async () => {
    const { deps, caller, calls, loseAnswerOf } = domain();
    const key = unique('lost');
    loseAnswerOf('CreateFleet');
    await expect(createAnnex(deps, caller, spotInput('lost-answer'), key)).rejects.toThrow('was lost');

    const { annex } = await createAnnex(deps, caller, spotInput('lost-answer'), key);

    expect(calls.filter((c) => c === 'CreateFleet')).toHaveLength(1);
    expect(annex.state).toBe('RUNNING');
    expect(await fleetsOf(annex.id)).toHaveLength(1);
    expect((await deps.store.listInstances(annex.id)).map((r) => r.market)).toEqual(['spot', 'spot', 'spot']);
    expect(await instancesOf(annex.id)).toHaveLength(3);
  });

  it('the same request with the same key again changes nothing', async () => {
    const { deps, caller, calls } = domain();
    const key = unique('again');
    const first = await createAnnex(deps, caller, spotInput('again'), key);
    const second = await createAnnex(deps, caller, spotInput('again'), key);

    expect(second).toMatchObject({ replayed: true, annex: { id: first.annex.id, state: 'RUNNING' } });
    expect(calls.filter((c) => c === 'CreateFleet')).toHaveLength(1);
  });
});

describe('partial capacity (errors injected around moto’s fleet)', () => {
  const SHORT: FleetShortfall = {
    missing: 1,
    errors: [
      { ErrorCode: 'InsufficientInstanceCapacity', ErrorMessage: 'no m5.large capacity', Lifecycle: 'spot' },
      { ErrorCode: 'MaxSpotInstanceCountExceeded', ErrorMessage: 'spot limit', Lifecycle: 'spot' },
    ],
  };

  it('keep: runs what EC2 gave, records each error, shows requested 3 vs running 2', async () => {
    const { deps, caller, shortfalls } = domain();
    shortfalls.push(SHORT);

    const { annex } = await createAnnex(deps, caller, spotInput('keep'));

    expect(annex.state).toBe('RUNNING');
    const detail = await getAnnexDetail(deps, caller, { name: 'keep' });
    expect(annexView(detail.annex, detail.instances)).toMatchObject({ requestedCount: 3, runningCount: 2 });
    expect(
      detail.events
        .filter((e) => e.type === 'capacity-error')
        .map((e) => e.detail?.code)
        .sort(),
    ).toEqual(['InsufficientInstanceCapacity', 'MaxSpotInstanceCountExceeded']);
    expect(await instancesOf(annex.id)).toHaveLength(2);
  });

  it('all-or-nothing: terminates what launched and ends the annex FAILED (launch-failed)', async () => {
    const { deps, caller, shortfalls } = domain();
    shortfalls.push(SHORT);

    const { annex } = await createAnnex(deps, caller, spotInput('aon', { capacityPolicy: 'all-or-nothing' }));

    expect(annex).toMatchObject({ state: 'FAILED', endReason: 'launch-failed' });
    expect(await instancesOf(annex.id)).toEqual([]);
    expect(await templateExists(annex.id)).toBe(false);
    const types = (await deps.store.listEvents(annex.id, 50)).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['capacity-error', 'capacity-short', 'failed']));
  });
});

describe('the sweep and launch templates', () => {
  it('deletes the template of an annex it does not know, once it is a minute old', async () => {
    const { deps } = domain();
    const annexId = `ax-${randomBytes(10).toString('hex')}`;
    const tags = [
      { Key: 'annex:id', Value: annexId },
      { Key: 'annex:stage', Value: stack.stage },
    ];
    await ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: templateName(annexId),
        LaunchTemplateData: { ImageId: stack.imageId },
        TagSpecifications: [{ ResourceType: 'launch-template', Tags: tags }],
      }),
    );

    await sweep(deps);
    expect(await templateExists(annexId)).toBe(true);

    clock.offsetSeconds = 120;
    try {
      const report = await sweep(deps);
      expect(report.actions).toContainEqual({ action: 'delete-launch-template', reason: 'leak', annexId });
    } finally {
      clock.offsetSeconds = 0;
    }
    expect(await templateExists(annexId)).toBe(false);
  });
});
