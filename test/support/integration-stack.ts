/**
 * The local stack as the integration tests start it: on the emulators the global setup started
 * (test/integration/global-setup.ts), under a stage of its own, with one SDK attempt so an emulator
 * gap fails fast; and the dev runner for it with its rate timers off, as the tests drive it.
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { startEnforcer, type Enforcer, type EnforcerOptions } from '../../scripts/lib/enforcer.ts';
import { startLocalStack, type LocalStack, type LocalStackOptions } from '../../scripts/lib/stack.ts';

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
