// What the benchmark sections that talk to the emulators share: the handlers' log redirection, and
// the local stack with the real adapters (shared/aws/*) wired to SDK clients this process owns.
//
// Why own clients: the handlers build their clients once per process (shared/aws/deps*.ts caches
// them, as a Lambda container does), from the environment of the first local stack started in this
// process. The sections run one after another, each on fresh emulators, so only the first could
// use the handlers' cached deps; the later sections build the same deps (same classes, same
// settings, same client configuration as `startLocalStack` gives the handlers) themselves.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { CreateScheduleGroupCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { LaunchDeps } from '../../shared/domain/annex-deps.ts';
import type { SweepDeps } from '../../shared/domain/sweep.ts';
import type { Logger, SweepSettings } from '../../shared/domain/ports.ts';
import { systemClock } from '../../shared/domain/ports.ts';
import { DynamoLeaseStore } from '../../shared/aws/leases.ts';
import { Ec2Compute } from '../../shared/aws/ec2.ts';
import { Ec2PriceBook, onDemandPrices } from '../../shared/aws/prices.ts';
import { SsmSecretStore } from '../../shared/aws/secrets.ts';
import { SchedulerExpirySchedules } from '../../shared/aws/schedules.ts';
import { putPool } from '../../shared/domain/pools.ts';
import { logger } from '../../shared/log.ts';
import { sweepSettings } from '../../shared/config.ts';
import { startEmulators, type Emulators } from '../devstack/emulators.ts';
import { startLocalStack, type LocalStack } from '../devstack/stack.ts';
import { createLeaseTable } from '../devstack/table.ts';

/**
 * The handlers log JSON lines to stdout, as in Lambda. During a section they go to a file instead
 * (written synchronously, like stdout to a file), so the benchmark's own output stays readable and
 * every path still pays for the logging it does.
 */
export function redirectStdout(file: string): { restore: () => number } {
  mkdirSync(dirname(file), { recursive: true });
  const fd = openSync(file, 'w');
  const original = process.stdout.write;
  let lines = 0;
  const write = (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    for (const c of text) if (c === '\n') lines++;
    writeSync(fd, text);
    const callback = rest.find((r): r is () => void => typeof r === 'function');
    callback?.();
    return true;
  };
  process.stdout.write = write as typeof process.stdout.write;
  return {
    restore: () => {
      process.stdout.write = original;
      closeSync(fd);
      return lines;
    },
  };
}

export interface BenchStack {
  emulators: Emulators;
  stack: LocalStack;
}

/**
 * Starts DynamoDB Local and moto, and the local stack (stage `bench`, `maxAttempts: 1`) on them,
 * runs `fn`, and stops everything again whatever happens. The handlers' logs (and anything else
 * written to stdout) go to `logFile`; returns `fn`'s value and the number of lines logged.
 */
export async function withBenchStack<T>(
  section: string,
  log: (line: string) => void,
  logFile: string,
  fn: (bench: BenchStack) => Promise<T>,
): Promise<{ value: T; logLines: number }> {
  let emulators: Emulators | undefined;
  let stack: LocalStack | undefined;
  const redirect = redirectStdout(logFile);
  let lines = 0;
  let value: { v: T } | undefined;
  try {
    log(`${section}: starting emulators (DynamoDB Local, moto)`);
    emulators = await startEmulators({ log: (line) => log(`emulators: ${line}`) });
    log(`${section}: starting the local stack`);
    stack = await startLocalStack({
      dynamoEndpoint: emulators.dynamoEndpoint,
      motoEndpoint: emulators.motoEndpoint,
      stage: 'bench',
      maxAttempts: 1,
      // The default pool is registered through the handlers, whose cached clients may belong to an
      // earlier section's emulators: this section registers its pools itself (`registerPool`).
      seedPool: false,
      log: (line) => process.stdout.write(`[gateway] ${line}\n`),
    });
    value = { v: await fn({ emulators, stack }) };
  } finally {
    try {
      if (stack !== undefined) await stack.stop();
    } finally {
      if (emulators !== undefined) {
        log(`${section}: stopping emulators`);
        await emulators.stop();
      }
      lines = redirect.restore();
    }
  }
  return { value: value.v, logLines: lines };
}

export interface Clients {
  dynamo: DynamoDBClient;
  ec2: EC2Client;
  ssm: SSMClient;
  scheduler: SchedulerClient;
}

/** Clients configured as `startLocalStack` configures the handlers' (endpoints, keys, 1 attempt). */
export function benchClients(stack: LocalStack): Clients {
  return {
    dynamo: new DynamoDBClient(stack.clientConfig('dynamodb')),
    ec2: new EC2Client(stack.clientConfig('moto')),
    ssm: new SSMClient(stack.clientConfig('moto')),
    scheduler: new SchedulerClient(stack.clientConfig('moto')),
  };
}

export const destroyClients = (c: Clients): void => {
  for (const client of [c.dynamo, c.ec2, c.ssm, c.scheduler]) client.destroy();
};

export interface StageTarget {
  stage: string;
  tableName: string;
  scheduleGroup: string;
}

/**
 * The deps the expire and reaper handlers build (`terminateDeps()` / `sweepDeps()` in
 * shared/aws/deps-ec2.ts), and `launchDeps()` for creating annexes, for one stage of the local
 * stack, on the given clients. `sweep` defaults to `sweepSettings()` from the environment.
 */
export function stageDeps(
  stack: LocalStack,
  target: StageTarget,
  clients: Clients,
  {
    log = logger as Logger,
    sweep = sweepSettings() as SweepSettings,
    store = new DynamoLeaseStore(clients.dynamo, target.tableName),
  }: { log?: Logger; sweep?: SweepSettings; store?: DynamoLeaseStore } = {},
): LaunchDeps & SweepDeps {
  return {
    store,
    clock: systemClock,
    settings: {
      stage: target.stage,
      maxDurationSeconds: 7 * 24 * 3600,
      maxInstancesPerAnnex: 50,
    },
    log,
    compute: new Ec2Compute(clients.ec2, target.stage),
    // As the reaper has them: instances are priced once, by the first sweep after their launch.
    prices: new Ec2PriceBook(clients.ec2, onDemandPrices()),
    secrets: new SsmSecretStore(clients.ssm, target.stage),
    schedules: new SchedulerExpirySchedules(clients.scheduler, {
      group: target.scheduleGroup,
      functionArn: `arn:aws:lambda:${stack.region}:123456789012:function:annex-${target.stage}-expire`,
      roleArn: stack.schedulerRoleArn,
    }),
    launch: {
      instanceProfileArn: stack.instanceProfileArn,
      defaultImageId: stack.imageId,
      defaultSubnetIds: stack.subnetIds,
      defaultSecurityGroupIds: stack.securityGroupIds,
    },
    sweep,
  };
}

/** The target of the stack's own stage (`bench`). */
export const mainStage = (stack: LocalStack): StageTarget => ({
  stage: stack.stage,
  tableName: stack.tableName,
  scheduleGroup: stack.scheduleGroup,
});

/** A second stage in the same emulators: its own lease table and schedule group. */
export async function addStage(stack: LocalStack, clients: Clients, stage: string): Promise<StageTarget> {
  const target = { stage, tableName: `annex-${stage}-leases`, scheduleGroup: `annex-${stage}` };
  await createLeaseTable(clients.dynamo, target.tableName);
  try {
    await clients.scheduler.send(new CreateScheduleGroupCommand({ Name: target.scheduleGroup }));
  } catch (e) {
    if ((e as { name?: string }).name !== 'ConflictException') throw e;
  }
  return target;
}

/** Registers the shared `default` pool of a stage as the admin does (`PUT /v1/pools/default`). */
export async function registerPool(stack: LocalStack, deps: LaunchDeps): Promise<void> {
  const admin = stack.users.find((u) => u.admin === true);
  if (admin === undefined) throw new Error('the local stack has no admin user');
  await putPool(
    {
      store: deps.store,
      secrets: deps.secrets,
      clock: deps.clock,
      settings: deps.settings,
      launch: deps.launch,
    },
    { principalArn: admin.principalArn, admin: true },
    'default',
    {
      collectorHost: '127.0.0.1',
      collectorPort: 9618,
      credential: { type: 'password', value: 'bench-pool-password-not-a-secret' },
    },
  );
}
