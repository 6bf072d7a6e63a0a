/**
 * The local stack as the integration tests start it: on the emulators the global setup started
 * (test/integration/global-setup.ts), under a stage of its own, with one SDK attempt so an emulator
 * gap fails fast; and the dev runner for it with its rate timers off, as the tests drive it.
 */
import { randomBytes } from 'node:crypto';
import { DescribeInstancesCommand, type EC2Client, type Instance } from '@aws-sdk/client-ec2';
import type { SchedulerClient } from '@aws-sdk/client-scheduler';
import { inject } from 'vitest';
import { startEnforcer, type Enforcer, type EnforcerOptions } from '../../scripts/devstack/enforcer.ts';
import { startLocalStack, type LocalStack, type LocalStackOptions } from '../../scripts/devstack/stack.ts';
import { SchedulerExpirySchedules } from '../../shared/aws/schedules.ts';
import type { LaunchSettings } from '../../shared/domain/ports.ts';

/** Starts the local stack under the stage `<prefix><6 hex digits>`; `options` change the rest. */
export const integrationStack = (
  prefix: string,
  options: Partial<LocalStackOptions> = {},
): Promise<LocalStack> =>
  startLocalStack({
    dynamoEndpoint: inject('dynamoEndpoint'),
    motoEndpoint: inject('motoEndpoint'),
    stage: `${prefix}${randomBytes(3).toString('hex')}`,
    maxAttempts: 1,
    ...options,
  });

/**
 * Re-registers the stack's shared `default` pool as its admin with `policy` over the shared
 * defaults (for suites that exercise what only an admin's policy allows, e.g. users' own user
 * data). Call it before any annex is created: the pool gets a new throw-away password.
 */
export const allowOnDefaultPool = async (
  stack: LocalStack,
  policy: Record<string, unknown>,
): Promise<void> => {
  const put = await stack.as('admin').request('PUT', '/v1/pools/default', {
    collectorHost: '127.0.0.1',
    collectorPort: 9618,
    credential: { type: 'password', value: randomBytes(24).toString('base64url') },
    policy,
  });
  if (put.status !== 200)
    throw new Error(`could not re-register the default pool: ${JSON.stringify(put.body)}`);
};

/** Starts the dev runner (schedules, sweep, events) for `stack`, without its timers. */
export const stackEnforcer = (stack: LocalStack, options: Partial<EnforcerOptions> = {}): Enforcer =>
  startEnforcer({
    motoEndpoint: stack.motoEndpoint,
    region: stack.region,
    stage: stack.stage,
    scheduleGroup: stack.scheduleGroup,
    timers: false,
    ...options,
  });

/** The launch settings the stack's handlers run with: its instance profile, image and network. */
export const stackLaunchSettings = (stack: LocalStack): LaunchSettings => ({
  instanceProfileArn: stack.instanceProfileArn,
  defaultImageId: stack.imageId,
  defaultSubnetIds: stack.subnetIds,
  defaultSecurityGroupIds: stack.securityGroupIds,
});

/** Expiry schedules targeting the stack's expire function, in its schedule group unless `group`. */
export const stackSchedules = (
  scheduler: SchedulerClient,
  stack: LocalStack,
  group = stack.scheduleGroup,
): SchedulerExpirySchedules =>
  new SchedulerExpirySchedules(scheduler, {
    group,
    functionArn: stack.expireFunctionArn,
    roleArn: stack.schedulerRoleArn,
  });

/** The annex's instances in EC2 (moto) in the given states (by default, those still running). */
export const annexInstances = async (
  ec2: EC2Client,
  annexId: string,
  states = ['pending', 'running'],
): Promise<Instance[]> => {
  const out = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: 'tag:annex:id', Values: [annexId] },
        { Name: 'instance-state-name', Values: states },
      ],
    }),
  );
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
};
