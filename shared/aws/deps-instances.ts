/**
 * Wiring for the instance routes (/v1/instances/self/*): the lease table, and SSM for bootstrap
 * and heartbeat (an IDTOKEN is minted from the annex's key copy). No EC2 client: these functions
 * never launch, tag or terminate anything.
 */
import { SSMClient } from '@aws-sdk/client-ssm';
import type { BootstrapDeps, HeartbeatDeps, InstanceReportDeps } from '../domain/instances.ts';
import { instanceSettings } from '../config.ts';
import { readDeps } from './deps.ts';
import { SsmSecretStore } from './secrets.ts';

let report: InstanceReportDeps | undefined;
let heartbeat: HeartbeatDeps | undefined;
let bootstrap: BootstrapDeps | undefined;

/** Interruption: DynamoDB only. */
export const instanceReportDeps = (): InstanceReportDeps => {
  if (report === undefined) {
    const { store, clock, log } = readDeps();
    report = { store, clock, log, instances: instanceSettings() };
  }
  return report;
};

/** Heartbeat: DynamoDB, and the annex's credential copy in SSM to renew an IDTOKEN. */
export const heartbeatDeps = (): HeartbeatDeps => {
  if (heartbeat === undefined) {
    const { store, clock, log, settings } = readDeps();
    heartbeat = {
      store,
      clock,
      log,
      instances: instanceSettings(),
      secrets: new SsmSecretStore(new SSMClient({}), settings.stage),
    };
  }
  return heartbeat;
};

/** Bootstrap: DynamoDB and the annex's credential copy in SSM. */
export const bootstrapDeps = (): BootstrapDeps => {
  if (bootstrap === undefined) {
    const { store, clock, log, settings } = readDeps();
    bootstrap = {
      store,
      clock,
      log,
      instances: instanceSettings(),
      secrets: new SsmSecretStore(new SSMClient({}), settings.stage),
    };
  }
  return bootstrap;
};
