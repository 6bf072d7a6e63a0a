/**
 * Quota admission for the annex use cases: an admission re-checks the owner's usage record when a
 * concurrent request of the same owner moved it on, and never counts a request twice.
 */
import { conflict, isAnnexError } from './errors.ts';
import { policyOf } from './launch-policy.ts';
import type { Annex, LaunchPolicy, LaunchSpec, Pool, PoolUsage } from './model.ts';
import type { LaunchSettings, PriceBook } from './ports.ts';
import { instanceDemand, type InstanceDemand } from './quota.ts';
import type { ReadDeps } from './annex-deps.ts';

/** How often an admission re-reads the usage record after losing a race for it, before giving up. */
const ADMISSION_ATTEMPTS = 12;

/**
 * Runs an admission (read the usage record, check the quota, write it with the request) until it
 * is not undone by a concurrent one (`attempt` answers undefined), with a short random pause
 * between attempts so concurrent requests of one user spread out. A quota refusal ends it.
 */
export const admitted = async <T>(
  deps: Pick<ReadDeps, 'log'>,
  attempt: () => Promise<T | undefined>,
): Promise<T> => {
  for (let i = 0; ; i++) {
    const result = await attempt();
    if (result !== undefined) return result;
    if (i + 1 >= ADMISSION_ATTEMPTS) {
      throw conflict('too many concurrent requests for this pool; retry');
    }
    deps.log.info('quota usage changed under an admission; re-checking', { attempt: i + 1 });
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * (i + 1)));
  }
};

/**
 * An update of `annex` that also writes the owner's usage record (`usage`, computed from the
 * record as read): retried with a fresh record when only the usage record moved on, so a lost
 * race for the quota is re-checked, not reported; the annex itself changing is the caller's Conflict.
 */
export const admittedUpdate = (
  deps: Pick<ReadDeps, 'log' | 'store'>,
  annex: Annex,
  usage: (record: PoolUsage) => PoolUsage,
  write: (usage: PoolUsage) => Promise<Annex>,
): Promise<Annex> =>
  admitted(deps, async () => {
    const record = await deps.store.getUsage(annex.owner, annex.pool);
    try {
      return await write(usage(record));
    } catch (e) {
      if (!isAnnexError(e, 'Conflict')) throw e;
      // Only a usage record that moved on is retried; anything else is the caller's Conflict.
      const [latest, again] = await Promise.all([
        deps.store.getAnnex(annex.id),
        deps.store.getUsage(annex.owner, annex.pool),
      ]);
      if (latest?.version !== annex.version || again.version === record.version) throw e;
      return undefined;
    }
  });

/** The pool an annex belongs to and its policy; undefined for a pool no longer registered. */
export const poolPolicy = async (
  deps: ReadDeps & { launch: LaunchSettings },
  annex: Annex,
): Promise<{ pool: Pool; policy: LaunchPolicy } | undefined> => {
  const pool = await deps.store.getPool(annex.pool, annex.owner);
  return pool === undefined ? undefined : { pool, policy: policyOf(pool, deps.launch, deps.settings) };
};

/** What one instance of an existing annex counts for (nothing, for one the quota cannot count). */
export const existingDemand = (
  found: { pool: Pool; policy: LaunchPolicy },
  spec: Pick<LaunchSpec, 'instanceTypes' | 'instanceRequirements'>,
  prices: Pick<PriceBook, 'onDemandHourly'> | undefined,
): InstanceDemand => {
  try {
    return instanceDemand(found.pool, found.policy, spec.instanceTypes, spec.instanceRequirements, prices);
  } catch (e) {
    if (!isAnnexError(e, 'LimitExceeded')) throw e;
    return { vCpus: 0, hourlyUsd: 0 };
  }
};
