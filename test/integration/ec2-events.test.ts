// EC2's EventBridge events on the local stack: fixtures shaped as AWS documents them, delivered by
// the dev runner (scripts/devstack/enforcer.ts) to the real handlers/ec2-events.ts, as EventBridge
// would (moto cannot: its PutEvents fails with a Lambda target). State-change events come from the
// runner's DescribeInstances differences. Replays and out-of-order deliveries are sent on purpose.
// The budget test runs the domain's sweep on the real adapters with an injected clock and prices
// (moto's spot price history answers a fixed fake price, so prices come from a stub there).
import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeInstancesCommand, EC2Client, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as reaper } from '../../handlers/reaper.ts';
import type { Enforcer } from '../../scripts/devstack/enforcer.ts';
import type { ApiClient, LocalStack } from '../../scripts/devstack/stack.ts';
import { Ec2Compute } from '../../shared/aws/ec2.ts';
import { DynamoLeaseStore } from '../../shared/aws/leases.ts';
import { Ec2PriceBook, onDemandPrices } from '../../shared/aws/prices.ts';
import { SsmSecretStore } from '../../shared/aws/secrets.ts';
import type { PriceBook } from '../../shared/domain/ports.ts';
import { sweep, type SweepDeps } from '../../shared/domain/sweep.ts';
import { ec2Event } from '../support/ec2-events.ts';
import {
  integrationStack,
  stackEnforcer,
  stackLaunchSettings,
  stackSchedules,
} from '../support/integration-stack.ts';

interface Detail {
  annex: Record<string, unknown> & { id: string; expiresAt: string; requestedCount: number };
  instances: { instanceId: string; state: string; batch: number; [field: string]: unknown }[];
  events: { type: string; reason?: string; detail?: Record<string, unknown> }[];
}

let stack: LocalStack;
let enforcer: Enforcer;
let alice: ApiClient;
let dynamo: DynamoDBClient;
let ec2: EC2Client;

beforeAll(async () => {
  stack = await integrationStack('ev');
  enforcer = stackEnforcer(stack);
  alice = stack.as('alice');
  dynamo = new DynamoDBClient(stack.clientConfig('dynamodb'));
  ec2 = new EC2Client(stack.clientConfig('moto'));
  // The runner's first listing is its baseline: later differences become state-change events.
  await enforcer.syncInstanceStates();
});

afterAll(async () => {
  await enforcer?.stop();
  dynamo?.destroy();
  ec2?.destroy();
  await stack?.stop();
});

const create = async (body: Record<string, unknown>) => {
  const res = await alice.request('POST', '/v1/annexes', body, {
    'Idempotency-Key': randomBytes(8).toString('hex'),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return detail(String(body.name));
};

const detail = async (name: string): Promise<Detail> => {
  const res = await alice.request<Detail>('GET', `/v1/annexes/${name}`);
  expect(res.status).toBe(200);
  return res.body;
};

const spotAnnex = (name: string, over: Record<string, unknown> = {}) =>
  create({
    name,
    count: 2,
    market: 'spot',
    instanceTypes: ['m5.large', 'c5.large', 'm6i.large'],
    durationSeconds: 3600,
    replaceInterrupted: true,
    maxReplacements: 1,
    ...over,
  });

/** Instances EC2 (moto) runs for the annex, by batch tag. */
const runningInEc2 = async (annexId: string) => {
  const out = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: 'tag:annex:id', Values: [annexId] },
        { Name: 'instance-state-name', Values: ['pending', 'running'] },
      ],
    }),
  );
  return (out.Reservations ?? [])
    .flatMap((r) => r.Instances ?? [])
    .map((i) => ({
      instanceId: i.InstanceId ?? '',
      batch: i.Tags?.find((t) => t.Key === 'annex:batch')?.Value,
      expiresAt: i.Tags?.find((t) => t.Key === 'annex:expires-at')?.Value,
    }));
};

describe('EC2 events on the local stack', () => {
  it('records a replayed interruption warning once and replaces the instance once, under the same lease', async () => {
    // Prepare
    const before = await spotAnnex('spot-replace');
    const victim = before.instances[0]?.instanceId ?? '';
    const warning = ec2Event('spot-interruption-warning', victim, { time: new Date() });

    // Act: EventBridge delivers at least once.
    await enforcer.deliverEvent(warning);
    await enforcer.deliverEvent(warning);

    // Assess
    const after = await detail('spot-replace');
    expect(after.instances.find((i) => i.instanceId === victim)).toMatchObject({
      interruption: { action: 'terminate' },
    });
    expect(after.events.filter((e) => e.type === 'spot-interruption')).toEqual([
      expect.objectContaining({
        reason: 'interrupted',
        detail: expect.objectContaining({ via: 'ec2-event' }),
      }),
    ]);
    expect(after.events.filter((e) => e.type === 'replacement-requested')).toHaveLength(1);
    expect(after.annex).toMatchObject({
      requestedCount: 2,
      replacements: 1,
      maxReplacements: 1,
      expiresAt: before.annex.expiresAt,
      state: 'RUNNING',
    });
    const inEc2 = await runningInEc2(before.annex.id);
    expect(inEc2.filter((i) => i.batch === '2')).toHaveLength(1);
    expect(new Set(inEc2.map((i) => i.expiresAt))).toEqual(new Set([before.annex.expiresAt]));
  });

  it('counts an instance that EC2 terminated within one event, and ignores a late running event', async () => {
    // Prepare
    const before = await spotAnnex('spot-gone', { replaceInterrupted: false, maxReplacements: undefined });
    const gone = before.instances[0]?.instanceId ?? '';
    const launchedAt = new Date(Date.now() - 60_000);
    await enforcer.syncInstanceStates();
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [gone] }));

    // Act: the runner sees the difference and delivers the state change; then a stale `running`
    // (older event time) and a replay of the `terminated` arrive.
    const delivered = await enforcer.syncInstanceStates();
    const terminated = delivered.find(
      (e) => (e.detail as Record<string, unknown>)['instance-id'] === gone,
    ) as Record<string, unknown>;
    await enforcer.deliverEvent(ec2Event('state-change-running', gone, { time: launchedAt }));
    await enforcer.deliverEvent(terminated);

    // Assess
    expect((terminated.detail as Record<string, unknown>).state).toBe('terminated');
    const after = await detail('spot-gone');
    expect(after.annex).toMatchObject({ requestedCount: 2, runningCount: 1 });
    expect(after.instances.find((i) => i.instanceId === gone)).toMatchObject({ state: 'terminated' });
    expect(after.events.filter((e) => e.type === 'instance-state')).toHaveLength(1);
  });

  it('replaces at most maxReplacements times', async () => {
    // Prepare
    const before = await spotAnnex('spot-max', { count: 3 });
    const [a, b] = before.instances.map((i) => i.instanceId);

    // Act
    const [first] = (await enforcer.deliverEvent(
      ec2Event('spot-interruption-warning', a ?? '', { time: new Date() }),
    )) as { replacement?: string }[];
    const [second] = (await enforcer.deliverEvent(
      ec2Event('spot-interruption-warning', b ?? '', {
        time: new Date(),
        id: randomBytes(8).toString('hex'),
      }),
    )) as { replacement?: string }[];

    // Assess
    expect([first?.replacement, second?.replacement]).toEqual(['started', 'limit-reached']);
    expect((await runningInEc2(before.annex.id)).filter((i) => i.batch !== '1')).toHaveLength(1);
  });

  it('does not replace when 15 minutes or less of the lease are left', async () => {
    // Prepare
    const before = await spotAnnex('spot-late', { durationSeconds: 900 });

    // Act
    const [outcome] = (await enforcer.deliverEvent(
      ec2Event('spot-interruption-warning', before.instances[0]?.instanceId ?? '', { time: new Date() }),
    )) as { replacement?: string }[];

    // Assess
    expect(outcome?.replacement).toBe('lease-too-short');
    expect((await detail('spot-late')).annex).toMatchObject({ replacements: 0 });
    expect((await runningInEc2(before.annex.id)).filter((i) => i.batch !== '1')).toEqual([]);
  });

  it('shows a rate and a spend in the annex view and the listing, from what the sweep priced', async () => {
    // Prepare
    await create({ name: 'priced', count: 2, instanceTypes: ['m5.large'], durationSeconds: 3600 });

    // Act
    await reaper();
    const one = await detail('priced');
    const list = await alice.request<{ annexes: Record<string, unknown>[] }>('GET', '/v1/annexes');

    // Assess: m5.large from the bundled on-demand table, 0.096 USD per hour each.
    expect(one.annex).toMatchObject({ estimatedHourlyUsd: 0.192 });
    expect(one.annex.spendSoFarUsd).toBeGreaterThan(0);
    expect(list.body.annexes.find((a) => a.name === 'priced')).toMatchObject({
      estimatedHourlyUsd: 0.192,
      runningCount: 2,
    });
  });
});

describe('spot prices from moto', () => {
  it('answers DescribeSpotPriceHistory (a fixed fake price, or nothing) without failing', async () => {
    const book = new Ec2PriceBook(ec2, onDemandPrices());
    const price = await book.spotHourly('m5.large');
    expect(price === undefined || (price > 0 && price < 10)).toBe(true);
  });
});

describe('budget', () => {
  it('the sweep ends an annex whose spend reaches maxSpend, with the reason budget', async () => {
    // Prepare: prices from a stub (moto's spot price is a fixed fake), time from a shifted clock.
    const { annex } = await create({
      name: 'budgeted',
      count: 2,
      instanceTypes: ['m5.large'],
      durationSeconds: 6 * 3600,
      maxSpend: 1,
    });
    const prices: PriceBook = { onDemandHourly: () => 0.5, spotHourly: async () => undefined };
    let offset = 0;
    const clock = { now: () => new Date(Date.now() + offset * 1000) };
    const deps: SweepDeps = {
      store: new DynamoLeaseStore(dynamo, stack.tableName),
      clock,
      settings: {
        stage: stack.stage,
        maxDurationSeconds: 7 * 86400,
        maxInstancesPerAnnex: 50,
      },
      log: { info: () => {}, warn: () => {}, error: () => {} },
      compute: new Ec2Compute(ec2, stack.stage),
      secrets: new SsmSecretStore(new SSMClient(stack.clientConfig('moto')), stack.stage),
      schedules: stackSchedules(new SchedulerClient(stack.clientConfig('moto')), stack),
      sweep: { bootGraceSeconds: 7 * 86400, orphanMinAgeSeconds: 60, stuckAfterSeconds: 600, concurrency: 4 },
      launch: stackLaunchSettings(stack),
      prices,
    };
    const own = (r: { actions: { annexId: string; reason: string }[] }) =>
      r.actions.filter((a) => a.annexId === annex.id).map((a) => a.reason);

    // Act: priced now (2 × 0.5 USD/h), 50 minutes later (0.83 USD), then 65 minutes later (1.08 USD).
    const priced = await sweep(deps);
    offset = 50 * 60;
    const under = await sweep(deps);
    offset = 65 * 60;
    const over = await sweep(deps);

    // Assess
    expect([own(priced), own(under)]).toEqual([[], []]);
    expect(own(over)).toEqual(['budget']);
    const ended = await detail('budgeted');
    expect(ended.annex).toMatchObject({ state: 'TERMINATED', endReason: 'budget', estimatedHourlyUsd: 0 });
    expect(ended.annex.spendSoFarUsd).toBeGreaterThanOrEqual(1);
    expect(ended.events.find((e) => e.type === 'budget-reached')).toMatchObject({ reason: 'budget' });
    expect(await runningInEc2(annex.id)).toEqual([]);
  });
});
