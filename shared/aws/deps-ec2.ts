/** Wiring for the functions that launch, retag or terminate instances (the only EC2 users). */
import { EC2Client } from '@aws-sdk/client-ec2';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { ExtendDeps, LaunchDeps, TerminateDeps } from '../domain/annex-deps.ts';
import type { SweepDeps } from '../domain/sweep.ts';
import { launchSettings, priceOverrides, scheduleSettings, sweepSettings } from '../config.ts';
import { readDeps } from './deps.ts';
import { Ec2Compute } from './ec2.ts';
import { Ec2PriceBook, onDemandPrices } from './prices.ts';
import { SchedulerExpirySchedules } from './schedules.ts';
import { SsmSecretStore } from './secrets.ts';

let ec2Client: EC2Client | undefined;
const client = (): EC2Client => (ec2Client ??= new EC2Client({}));

let compute: Ec2Compute | undefined;
const ec2 = (): Ec2Compute => (compute ??= new Ec2Compute(client(), readDeps().settings.stage));

let priceBook: Ec2PriceBook | undefined;
const prices = (): Ec2PriceBook =>
  (priceBook ??= new Ec2PriceBook(client(), onDemandPrices(priceOverrides()), readDeps().clock));

let secrets: SsmSecretStore | undefined;
const ssm = (): SsmSecretStore =>
  (secrets ??= new SsmSecretStore(new SSMClient({}), readDeps().settings.stage));

let expiries: SchedulerExpirySchedules | undefined;
const schedules = (): SchedulerExpirySchedules =>
  (expiries ??= new SchedulerExpirySchedules(new SchedulerClient({}), scheduleSettings(), readDeps().clock));

export const launchDeps = (): LaunchDeps => ({
  ...readDeps(),
  compute: ec2(),
  secrets: ssm(),
  schedules: schedules(),
  launch: launchSettings(),
  prices: prices(),
});

export const extendDeps = (): ExtendDeps => ({
  ...readDeps(),
  compute: ec2(),
  schedules: schedules(),
  launch: launchSettings(),
  prices: prices(),
});

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
  launch: launchSettings(),
  prices: prices(),
});
