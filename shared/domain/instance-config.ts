/**
 * The HTCondor configuration an annex's instances get (rendered by shared/boot/condor-config.ts):
 * how they join the pool, fixed when the annex was created. No secret is in it.
 */
import { renderCondorConfig, PLACEHOLDER_INSTANCE_ID } from '../boot/condor-config.ts';
import type { AnnexRef, ReadDeps } from './annex-deps.ts';
import { resolveAnnex } from './annex-read.ts';
import { conflict } from './errors.ts';
import type { Annex, AnnexCondor, Caller } from './model.ts';
import type { LeaseStore } from './ports.ts';

/** How the annex's instances join its pool: fixed at creation; read from the pool for older annexes. */
export const annexCondor = async (
  deps: { store: Pick<LeaseStore, 'getPool'> },
  annex: Annex,
): Promise<AnnexCondor> => {
  if (annex.condor !== undefined) return annex.condor;
  const pool = await deps.store.getPool(annex.pool, annex.owner);
  if (pool === undefined)
    throw conflict(`the pool ${annex.pool} of annex ${annex.name} is no longer registered`);
  return {
    collectorHost: pool.collectorHost,
    collectorPort: pool.collectorPort,
    credentialType: pool.credentialType,
    allowedUsers: pool.condorUser === undefined ? [] : [pool.condorUser],
    ...(pool.trustDomain === undefined ? {} : { trustDomain: pool.trustDomain }),
  };
};

export const configFor = (
  annex: Annex,
  condor: AnnexCondor,
  instance: { instanceId: string; publicIpAddress?: string },
): string =>
  renderCondorConfig({
    annexId: annex.id,
    annexName: annex.name,
    owner: annex.owner,
    expiresAt: annex.expiresAt,
    instanceId: instance.instanceId,
    ...(instance.publicIpAddress === undefined ? {} : { publicIpAddress: instance.publicIpAddress }),
    idleSeconds: annex.idleSeconds,
    collector: { host: condor.collectorHost, port: condor.collectorPort },
    credentialType: condor.credentialType,
    allowedUsers: condor.allowedUsers,
    ...(condor.trustDomain === undefined ? {} : { trustDomain: condor.trustDomain }),
  });

/**
 * GET /v1/annexes/{name}/condor-config: the fragment an instance of the annex gets, for people
 * building their own images. No secret is in it; the instance id is a placeholder.
 */
export const annexCondorConfig = async (
  deps: ReadDeps,
  caller: Caller,
  ref: AnnexRef,
): Promise<{ annex: Annex; condorConfig: string }> => {
  const annex = await resolveAnnex(deps, caller, ref);
  const condor = await annexCondor(deps, annex);
  return { annex, condorConfig: configFor(annex, condor, { instanceId: PLACEHOLDER_INSTANCE_ID }) };
};
