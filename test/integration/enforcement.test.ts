// Enforcement on the local stack, in real time, as on AWS: the exact-expiry schedule (created in
// moto's EventBridge Scheduler, fired by the dev runner at a seeded random point of the minute it
// names, as the Scheduler fires) invokes the real expire handler up to two minutes early, which
// waits and ends a 125 s annex at its expiry; and the sweep (run as its rate(1 minute) rule would) terminates an instance someone
// started by hand with an unknown annex id of this stage, and nothing else.
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { GetScheduleCommand, ListSchedulesCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Enforcer } from '../../scripts/devstack/enforcer.ts';
import type { LocalStack } from '../../scripts/devstack/stack.ts';
import { integrationStack, stackEnforcer } from '../support/integration-stack.ts';

let stack: LocalStack;
let enforcer: Enforcer;
let ec2: EC2Client;
let ssm: SSMClient;
let scheduler: SchedulerClient;
const enforcerLog: string[] = [];

beforeAll(async () => {
  stack = await integrationStack('en');
  enforcer = stackEnforcer(stack, {
    pollMs: 500,
    precisionMs: 60_000,
    seed: 14,
    log: (line) => enforcerLog.push(line),
  });
  ec2 = new EC2Client(stack.clientConfig('moto'));
  ssm = new SSMClient(stack.clientConfig('moto'));
  scheduler = new SchedulerClient(stack.clientConfig('moto'));
});

afterAll(async () => {
  await enforcer?.stop();
  await stack?.stop();
});

const state = async (instanceId: string) => {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return out.Reservations?.[0]?.Instances?.[0]?.State?.Name;
};

const startByHand = async (tags: Record<string, string>) => {
  const out = await ec2.send(
    new RunInstancesCommand({
      ImageId: stack.imageId,
      InstanceType: 'm5.large',
      MinCount: 1,
      MaxCount: 1,
      ...(Object.keys(tags).length === 0
        ? {}
        : {
            TagSpecifications: [
              {
                ResourceType: 'instance',
                Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
              },
            ],
          }),
    }),
  );
  return out.Instances?.[0]?.InstanceId ?? '';
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('enforcement on the local stack', () => {
  it('ends a 125 s annex at its expiry through its schedule despite the minute precision, and the sweep kills only true orphans', async () => {
    // Prepare: a stranger's instance claiming an unknown annex of this stage, one of another
    // stage, one untagged; and an annex of 125 s (so its schedule's minute is ahead of the write).
    const orphan = await startByHand({ 'annex:id': 'ax-00000000000000000000', 'annex:stage': stack.stage });
    const otherStage = await startByHand({
      'annex:id': 'ax-00000000000000000001',
      'annex:stage': 'elsewhere',
    });
    const untagged = await startByHand({});
    const alice = stack.as('alice');
    const created = await alice.request<{ annex: { id: string; expiresAt: string } }>('POST', '/v1/annexes', {
      name: 'one-minute',
      count: 2,
      instanceTypes: ['m5.large'],
      durationSeconds: 125,
    });
    expect(created.status).toBe(201);
    const { id, expiresAt } = created.body.annex;
    const scheduleName = `${id}-${Math.ceil(Date.parse(expiresAt) / 1000)}`;
    const schedule = await scheduler.send(
      new GetScheduleCommand({ GroupName: stack.scheduleGroup, Name: scheduleName }),
    );
    // The latest minute that ends by the expiry: the Scheduler fires somewhere in it.
    const minute = Math.floor((Date.parse(expiresAt) - 60_000) / 60_000) * 60_000;
    expect(schedule.ScheduleExpression).toBe(`at(${new Date(minute).toISOString().slice(0, 19)})`);
    expect(schedule.Target?.Arn).toBe(stack.expireFunctionArn);

    // Act: time passes with the dev runner polling the schedules, as EventBridge Scheduler fires.
    let endedAt: number | undefined;
    while (endedAt === undefined && Date.now() < Date.parse(expiresAt) + 15_000) {
      await enforcer.fireDueSchedules();
      const got = await alice.request<{ annex: { state: string } }>('GET', '/v1/annexes/one-minute');
      if (got.body.annex.state === 'TERMINATED') endedAt = Date.now();
      else await sleep(500);
    }

    // Assess: ended within seconds of its expiry and not before, by the schedule (not the sweep),
    // which fired before the expiry, and audited.
    expect(endedAt, enforcerLog.join('\n')).toBeDefined();
    expect((endedAt ?? 0) - Date.parse(expiresAt)).toBeLessThan(5_000);
    expect(enforcer.fireTime(scheduleName, minute)).toBeLessThan(Date.parse(expiresAt));
    const detail = await alice.request<{
      annex: { state: string; endReason: string };
      instances: { state: string }[];
      events: { type: string; reason?: string }[];
    }>('GET', '/v1/annexes/one-minute');
    expect(detail.body.annex).toMatchObject({ state: 'TERMINATED', endReason: 'expired' });
    expect(detail.body.instances.every((i) => i.state === 'terminated')).toBe(true);
    expect(detail.body.events).toContainEqual(
      expect.objectContaining({ type: 'expired', reason: 'expired' }),
    );
    const expired = detail.body.events.find((e) => e.type === 'expired') as { at?: string } | undefined;
    expect(Date.parse(expired?.at ?? '')).toBeGreaterThanOrEqual(Date.parse(expiresAt));
    await expect(
      ssm.send(new GetParameterCommand({ Name: `/annex/${stack.stage}/annexes/${id}/pool-credentials` })),
    ).rejects.toMatchObject({ name: 'ParameterNotFound' });
    const left = await scheduler.send(new ListSchedulesCommand({ GroupName: stack.scheduleGroup }));
    expect(left.Schedules?.map((s) => s.Name)).not.toContain(scheduleName);

    // The orphan is now more than a minute old: the next sweep terminates it, and nothing else.
    await enforcer.runRateFunctions();
    expect(await state(orphan)).toBe('terminated');
    expect(await state(otherStage)).toBe('running');
    expect(await state(untagged)).toBe('running');
  }, 200_000);

  it('a schedule that fires after the lease was extended ends nothing', async () => {
    const alice = stack.as('alice');
    const created = await alice.request<{ annex: { id: string; expiresAt: string } }>('POST', '/v1/annexes', {
      name: 'extended',
      count: 1,
      instanceTypes: ['m5.large'],
      durationSeconds: 600,
    });
    const { id, expiresAt } = created.body.annex;
    const extended = await alice.request<{ annex: { expiresAt: string } }>(
      'POST',
      '/v1/annexes/extended/extend',
      {
        durationSeconds: 3600,
      },
    );
    expect(extended.status).toBe(200);
    const names = (
      await scheduler.send(new ListSchedulesCommand({ GroupName: stack.scheduleGroup }))
    ).Schedules?.map((s) => s.Name);
    expect(names).toContain(`${id}-${Math.ceil(Date.parse(extended.body.annex.expiresAt) / 1000)}`);
    expect(names).not.toContain(`${id}-${Math.ceil(Date.parse(expiresAt) / 1000)}`);

    // The old schedule's target, fired late anyway (as a stale schedule would): a no-op.
    const { handler } = await import('../../handlers/expire.ts');
    const result = await handler({ annexId: id, expiresAt });
    expect(result.state).toBe('RUNNING');
    expect(
      (await alice.request<{ annex: { state: string } }>('GET', '/v1/annexes/extended')).body.annex.state,
    ).toBe('RUNNING');
    expect((await alice.request('DELETE', '/v1/annexes/extended')).status).toBe(202);
  });
});
