/** Adding a batch of nodes to a running annex (idempotent by Idempotency-Key). */
import { conflict, limitExceeded } from './errors.ts';
import { assertTransition, requestHash } from './lease.ts';
import { checkHardware, definedOnly } from './launch-policy.ts';
import type { Annex, Caller, Market, PendingBatch, PoolUsage } from './model.ts';
import type { AnnexChanges } from './ports.ts';
import { admit, instanceDemand, spendFor } from './quota.ts';
import { admittedUpdate, poolPolicy } from './annex-admission.ts';
import type { AnnexRef, LaunchDeps } from './annex-deps.ts';
import { checkMarket } from './annex-create.ts';
import { provision, runBatch } from './annex-launch.ts';
import { resolveAnnex } from './annex-read.ts';
import { annexEvent } from './events.ts';

export interface AddNodesInput {
  count: number;
  instanceTypes?: string[];
  /** This batch's market (default: the annex's) and, for mixed, its on-demand base. */
  market?: Market;
  onDemandBaseCount?: number;
}

export const addNodes = async (
  deps: LaunchDeps,
  caller: Caller,
  ref: AnnexRef,
  input: AddNodesInput,
  idempotencyKey?: string,
): Promise<Annex> => {
  let annex = await resolveAnnex(deps, caller, ref);
  const hash = requestHash(input);
  if (idempotencyKey !== undefined) {
    const claim = await deps.store.getAddNodesClaim(annex.id, idempotencyKey);
    if (claim !== undefined) {
      if (claim.requestHash !== hash)
        throw conflict('this Idempotency-Key was already used for a different request');
      // A retry of a batch this key started: resume it if it is still launching.
      if (annex.launching?.batch === claim.batch) return provision(deps, annex);
      const launched = (await deps.store.listInstances(annex.id)).some((i) => i.batch === claim.batch);
      if (!launched) {
        // The sweep gave the batch up (its request died before launching): say so, don't pretend.
        throw conflict(`batch ${claim.batch} of this Idempotency-Key was abandoned; retry with a new key`);
      }
      return annex;
    }
  }
  if (annex.state !== 'RUNNING') {
    throw conflict(`annex ${annex.name} is ${annex.state}; nodes can be added only while it is RUNNING`);
  }
  if (annex.requestedCount + input.count > deps.settings.maxInstancesPerAnnex) {
    throw limitExceeded(
      `annex ${annex.name} would have ${annex.requestedCount + input.count} instances; the limit is ${deps.settings.maxInstancesPerAnnex}`,
    );
  }
  assertTransition(annex, 'LAUNCHING');
  const batch = annex.batches + 1;
  const instanceTypes = input.instanceTypes ?? annex.spec.instanceTypes;
  const market = input.market ?? annex.spec.market;
  const onDemandBaseCount =
    market === 'mixed' ? (input.onDemandBaseCount ?? annex.spec.onDemandBaseCount) : input.onDemandBaseCount;
  checkMarket(
    {
      market,
      instanceTypes,
      ...definedOnly({
        instanceRequirements: input.instanceTypes === undefined ? annex.spec.instanceRequirements : undefined,
        onDemandBaseCount,
      }),
    },
    input.count,
  );
  const found = await poolPolicy(deps, annex);
  const inherited = input.instanceTypes === undefined ? annex.spec.instanceRequirements : undefined;
  const demand =
    found === undefined
      ? undefined
      : instanceDemand(found.pool, found.policy, instanceTypes, inherited, deps.prices);
  if (found !== undefined) checkHardware(found.pool, found.policy, instanceTypes, inherited);
  const launching: PendingBatch = {
    batch,
    count: input.count,
    instanceTypes,
    ...(input.market === undefined ? {} : { market }),
    ...(input.onDemandBaseCount === undefined ? {} : { onDemandBaseCount: input.onDemandBaseCount }),
  };
  const changes: AnnexChanges = {
    state: 'LAUNCHING',
    batches: batch,
    requestedCount: annex.requestedCount + input.count,
    launching,
  };
  const now = deps.clock.now();
  const requested = annexEvent(annex, now, 'nodes-requested', `batch ${batch}: ${input.count} more`, {
    detail: { batch, count: input.count, instanceTypes, market },
  });
  const write = (usage?: PoolUsage): Promise<Annex> =>
    idempotencyKey === undefined
      ? deps.store.updateAnnex(annex, changes, requested, usage)
      : deps.store.startBatch(
          annex,
          changes,
          { key: idempotencyKey, batch, requestHash: hash },
          requested,
          usage,
        );
  const current = annex;
  annex =
    found === undefined || demand === undefined
      ? await write()
      : await admittedUpdate(
          deps,
          current,
          (record) =>
            admit(
              found.pool,
              found.policy,
              record,
              {
                annexId: current.id,
                instances: input.count,
                vCpus: input.count * demand.vCpus,
                expiresAt: current.expiresAt,
                spendUsd: spendFor(
                  input.count,
                  demand.hourlyUsd,
                  (Date.parse(current.expiresAt) - now.getTime()) / 1000,
                ),
                ...definedOnly({ maxSpend: current.maxSpend }),
                fields: { count: 'count', spend: 'count' },
              },
              now,
            ),
          write,
        );
  return runBatch(deps, annex);
};
