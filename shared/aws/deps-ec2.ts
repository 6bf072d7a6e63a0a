/** Wiring for the functions that launch, retag or terminate instances (the only EC2 users). */
import { EC2Client } from '@aws-sdk/client-ec2';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { ExtendDeps, LaunchDeps, TerminateDeps } from '../domain/annexes.ts';
import type { SweepDeps } from '../domain/sweep.ts';
import { launchSettings, scheduleSettings, sweepSettings } from '../config.ts';
import { readDeps } from './deps.ts';
import { Ec2Compute } from './ec2.ts';
import { SchedulerExpirySchedules } from './schedules.ts';
import { SsmSecretStore } from './secrets.ts';

let compute: Ec2Compute | undefined;
const ec2 = (): Ec2Compute => (compute ??= new Ec2Compute(new EC2Client({}), readDeps().settings.stage));

let secrets: SsmSecretStore | undefined;
const ssm = (): SsmSecretStore =>
  (secrets ??= new SsmSecretStore(new SSMClient({}), readDeps().settings.stage));

let expiries: SchedulerExpirySchedules | undefined;
const schedules = (): SchedulerExpirySchedules =>
  (expiries ??= new SchedulerExpirySchedules(new SchedulerClient({}), scheduleSettings()));

export const launchDeps = (): LaunchDeps => ({
  ...readDeps(),
  compute: ec2(),
  secrets: ssm(),
  schedules: schedules(),
  launch: launchSettings(),
});

export const extendDeps = (): ExtendDeps => ({ ...readDeps(), compute: ec2(), schedules: schedules() });

export const terminateDeps = (): TerminateDeps => ({
  ...readDeps(),
  compute: ec2(),
  secrets: ssm(),
  schedules: schedules(),
});

export const sweepDeps = (): SweepDeps => ({
  ...readDeps(),
  compute: ec2(),
  secrets: ssm(),
  schedules: schedules(),
  sweep: sweepSettings(),
});
