/** Wiring for pool registration: the lease table plus SSM for the pool credential. */
import { SSMClient } from '@aws-sdk/client-ssm';
import type { PoolDeps } from '../domain/pools.ts';
import { launchSettings } from '../config.ts';
import { readDeps } from './deps.ts';
import { SsmSecretStore } from './secrets.ts';

let pools: PoolDeps | undefined;

export const poolDeps = (): PoolDeps => {
  if (pools === undefined) {
    const base = readDeps();
    pools = {
      ...base,
      secrets: new SsmSecretStore(new SSMClient({}), base.settings.stage),
      launch: launchSettings(),
    };
  }
  return pools;
};
