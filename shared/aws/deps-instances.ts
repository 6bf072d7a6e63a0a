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
let withSecrets: (BootstrapDeps & HeartbeatDeps) | undefined;

/** Interruption: DynamoDB only. */
export const instanceReportDeps = (): InstanceReportDeps => {
  if (report === undefined) {
    const { store, clock, log } = readDeps();
    report = { store, clock, log, instances: instanceSettings() };
  }
  return report;
};

/** DynamoDB and the annex's credential copy in SSM. */
const secretDeps = (): BootstrapDeps & HeartbeatDeps => {
  if (withSecrets === undefined) {
    const { store, clock, log, settings } = readDeps();
    withSecrets = {
      store,
      clock,
      log,
      instances: instanceSettings(),
      secrets: new SsmSecretStore(new SSMClient({}), settings.stage),
    };
  }
  return withSecrets;
};

/** Bootstrap: the pool password, or the key an IDTOKEN is minted from. */
export const bootstrapDeps = (): BootstrapDeps => secretDeps();

/** Heartbeat: the key a renewed IDTOKEN is minted from. */
export const heartbeatDeps = (): HeartbeatDeps => secretDeps();
