/**
 * The capacity policy of a batch: with `all-or-nothing`, a batch EC2 filled only in part is
 * given up (the first batch fails the annex, a later one is dropped and the annex keeps running);
 * with `keep`, what EC2 gave is kept. The same rule decides for a batch being launched, a batch
 * EC2 refused, and a batch left half-launched by a request that died.
 */
import type { AnnexError } from './errors.ts';
import { toIso } from './lease.ts';
import { sortByProvenance, terminateForged, type ProvenanceDeps } from './provenance.ts';
import type { Annex, AnnexEvent, PendingBatch } from './model.ts';
import type { Compute, LaunchedInstance } from './ports.ts';
import type { LaunchDeps, TerminateDeps } from './annex-deps.ts';
import { endAnnex } from './annex-end.ts';
import { instanceRecord } from './instance-records.ts';
import { annexEvent } from './events.ts';

/**
 * Whether a batch of which EC2 has `got` instances is kept: always with `keep`, and only when it
 * is whole with `all-or-nothing`.
 */
export const keepsBatch = (
  annex: Pick<Annex, 'spec'>,
  pending: Pick<PendingBatch, 'count'>,
  got: number,
): boolean => annex.spec.capacityPolicy !== 'all-or-nothing' || got >= pending.count;

/**
 * Whether a batch with no instances in EC2 may be launched: with `all-or-nothing`, not one an
 * earlier attempt launched short and terminated before it stopped (its records say so).
 */
export const mayLaunchBatch = async (
  deps: Pick<LaunchDeps, 'store'>,
  annex: Annex,
  pending: PendingBatch,
): Promise<boolean> =>
  annex.spec.capacityPolicy !== 'all-or-nothing' ||
  !(await deps.store.listInstances(annex.id)).some((i) => i.batch === pending.batch);

/** What the annex asks for without a batch it gave up (a replacement never added to it). */
const withoutBatch = (annex: Annex, pending: PendingBatch): number =>
  annex.requestedCount - (pending.replaces === undefined ? pending.count : 0);

/**
 * Gives a batch up (`cause` says why): the first batch (or none pending) ends the annex FAILED
 * (launch-failed); a later batch is dropped and the annex keeps running what it had.
 */
const giveUpBatch = async (
  deps: TerminateDeps,
  annex: Annex,
  pending: PendingBatch | undefined,
  cause: AnnexEvent,
): Promise<{ outcome: 'failed' | 'abandoned'; annex: Annex }> => {
  if (pending === undefined || pending.batch === 1) {
    return { outcome: 'failed', annex: await endAnnex(deps, annex, 'FAILED', 'launch-failed', cause) };
  }
  const abandoned = await deps.store.updateAnnex(
    annex,
    { state: 'RUNNING', launching: undefined, requestedCount: withoutBatch(annex, pending) },
    cause,
  );
  return { outcome: 'abandoned', annex: abandoned };
};

/**
 * `all-or-nothing` and EC2 gave fewer than asked: none are kept and the batch is given up.
 * Records come first, so a retry after a crash at any step finds the batch (running or
 * terminated) and never launches it again; the first batch's instances go with the annex.
 */
export const giveUpShortBatch = async (
  deps: LaunchDeps,
  annex: Annex,
  pending: PendingBatch,
  instances: LaunchedInstance[],
): Promise<Annex> => {
  const now = deps.clock.now();
  const ids = instances.map((i) => i.instanceId);
  const short = annexEvent(
    annex,
    now,
    'capacity-short',
    `batch ${pending.batch}: ${ids.length} of ${pending.count} instance(s); all-or-nothing, so none are kept`,
    { reason: 'launch-failed', detail: { batch: pending.batch, requested: pending.count, instanceIds: ids } },
  );
  if (pending.batch === 1) {
    await deps.store.putInstances(instances.map((i) => instanceRecord(annex, i, toIso(now))));
  } else {
    await deps.store.putInstances(
      instances.map((i) => ({ ...instanceRecord(annex, i, toIso(now)), state: 'terminated' as const })),
    );
    if (ids.length > 0) await deps.compute.terminate(ids);
  }
  return (await giveUpBatch(deps, annex, pending, short)).annex;
};

/** EC2 refused the pending batch outright (nothing was launched): it is given up. */
export const refuseBatch = async (deps: LaunchDeps, annex: Annex, error: AnnexError): Promise<void> => {
  const pending = annex.launching;
  if (pending === undefined) return;
  const refused = annexEvent(annex, deps.clock.now(), 'launch-refused', error.message, {
    reason: 'launch-failed',
    detail: { batch: pending.batch, code: error.code },
  });
  await giveUpBatch(deps, annex, pending, refused);
};

/**
 * Repairs an annex left in REQUESTED or LAUNCHING by a request that died: instances of the pending
 * batch that EC2 has (found by tag) and that Annex launched (provenance.ts) are adopted when the
 * capacity policy keeps them, any other instance with its tags is terminated as forged; with none
 * adopted, the batch is given up: the annex fails cleanly if it was the first batch, or returns
 * to RUNNING without it.
 */
export const repairStuckLaunch = async (
  deps: TerminateDeps &
    ProvenanceDeps & { compute: Pick<Compute, 'findBatchInstances' | 'fleetClientToken'> },
  annex: Annex,
): Promise<{ outcome: 'adopted' | 'failed' | 'abandoned'; annex: Annex }> => {
  const now = deps.clock.now();
  const pending = annex.launching;
  const sorted = await sortByProvenance(
    deps,
    annex,
    annex.state === 'LAUNCHING' && pending !== undefined
      ? await deps.compute.findBatchInstances(annex.id, pending.batch)
      : [],
  );
  await terminateForged(deps, annex, sorted.forged, now);
  const found = sorted.genuine;
  // A short batch the policy does not keep is not adopted; a later batch's instances go (the
  // first batch's go with the annex below).
  const short = pending !== undefined && !keepsBatch(annex, pending, found.length);
  if (short && found.length > 0 && pending.batch !== 1) {
    await deps.compute.terminate(found.map((i) => i.instanceId));
  }
  if (pending !== undefined && found.length > 0 && !short) {
    await deps.store.putInstances(found.map((i) => instanceRecord(annex, i, toIso(now))));
    const repaired = await deps.store.updateAnnex(
      annex,
      {
        state: 'RUNNING',
        launching: undefined,
        ...(Object.keys(sorted.fleetIds).length === 0
          ? {}
          : { fleetIds: { ...annex.fleetIds, ...sorted.fleetIds } }),
      },
      annexEvent(
        annex,
        now,
        'launch-repaired',
        `batch ${pending.batch}: adopted ${found.length} instance(s)`,
        {
          detail: { batch: pending.batch, instanceIds: found.map((i) => i.instanceId) },
        },
      ),
    );
    return { outcome: 'adopted', annex: repaired };
  }
  const stuck = annexEvent(
    annex,
    now,
    'launch-stuck',
    `${annex.state} since ${annex.updatedAt}; giving up the launch`,
    {
      reason: 'launch-failed',
      ...(pending === undefined ? {} : { detail: { batch: pending.batch } }),
    },
  );
  return giveUpBatch(deps, annex, pending, stuck);
};
