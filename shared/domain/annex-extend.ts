/** Extending an annex's lease: checked against the pool's policy and the owner's spend quota. */
import { conflict } from './errors.ts';
import { isLive, leaseExpiry, toIso } from './lease.ts';
import { checkLease, definedOnly } from './launch-policy.ts';
import type { Annex, Caller } from './model.ts';
import type { AnnexChanges } from './ports.ts';
import { admit, spendFor } from './quota.ts';
import { admittedUpdate, existingDemand, poolPolicy } from './annex-admission.ts';
import type { AnnexRef, ExtendDeps } from './annex-deps.ts';
import { resolveAnnex } from './annex-read.ts';
import { annexEvent } from './events.ts';

export interface ExtendAnnexInput {
  durationSeconds?: number;
  expiresAt?: string;
  idleSeconds?: number;
}

export const extendAnnex = async (
  deps: ExtendDeps,
  caller: Caller,
  ref: AnnexRef,
  input: ExtendAnnexInput,
): Promise<Annex> => {
  const annex = await resolveAnnex(deps, caller, ref);
  if (!isLive(annex.state) || annex.state === 'TERMINATING') {
    throw conflict(`annex ${annex.name} is ${annex.state}; it can no longer be extended`);
  }
  const now = deps.clock.now();
  const { expiresAt } = leaseExpiry(now, input, deps.settings.maxDurationSeconds);
  const changes: AnnexChanges = { expiresAt: toIso(expiresAt) };
  if (input.idleSeconds !== undefined) changes.idleSeconds = input.idleSeconds;
  const extended = annexEvent(annex, now, 'extended', `lease now ends at ${toIso(expiresAt)}`, {
    detail: {
      from: annex.expiresAt,
      to: toIso(expiresAt),
      idleSeconds: input.idleSeconds ?? annex.idleSeconds,
    },
  });
  const found = await poolPolicy(deps, annex);
  let updated: Annex;
  if (found === undefined) {
    updated = await deps.store.updateAnnex(annex, changes, extended);
  } else {
    const field = input.expiresAt === undefined ? 'durationSeconds' : 'expiresAt';
    checkLease(
      found.pool,
      found.policy,
      (expiresAt.getTime() - now.getTime()) / 1000,
      (expiresAt.getTime() - Date.parse(annex.createdAt)) / 1000,
      field,
    );
    const demand = existingDemand(found, annex.spec, deps.prices);
    const added = (expiresAt.getTime() - Math.max(Date.parse(annex.expiresAt), now.getTime())) / 1000;
    updated = await admittedUpdate(
      deps,
      annex,
      (record) =>
        admit(
          found.pool,
          found.policy,
          record,
          {
            annexId: annex.id,
            instances: 0,
            vCpus: 0,
            expiresAt: toIso(expiresAt),
            spendUsd: spendFor(annex.requestedCount, demand.hourlyUsd, added),
            ...definedOnly({ maxSpend: annex.maxSpend }),
            fields: { count: field, spend: field },
          },
          now,
        ),
      (usage) => deps.store.updateAnnex(annex, changes, extended, usage),
    );
  }
  const live = (await deps.store.listInstances(annex.id)).filter((i) => i.state !== 'terminated');
  if (live.length > 0) {
    await deps.compute.retag(
      live.map((i) => i.instanceId),
      { 'annex:expires-at': updated.expiresAt },
    );
  }
  // Schedules are named by expiry: add the new one, then drop the old. A crash in between leaves
  // a stale schedule that finds the lease extended when it fires; the sweep covers a missing one.
  try {
    await deps.schedules.move(annex.id, annex.expiresAt, updated.expiresAt);
  } catch (e) {
    // The lease is extended either way; the sweep re-creates a missing schedule and drops a stale one.
    deps.log.warn('could not move the expiry schedule', { annexId: annex.id, error: String(e) });
  }
  return updated;
};
