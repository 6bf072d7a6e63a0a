/**
 * Cost visibility: what an annex costs per hour now and has cost so far, estimated from its
 * instance records alone (each carries its price per hour, written by the sweep: the on-demand
 * table or EC2's spot price history, see pricing.ts). Reading a cost therefore needs the lease
 * table only; no read path calls EC2.
 *
 * EC2 bills Linux instances per second with a one-minute minimum, from launch until the
 * instance is terminated; so does this estimate. An instance not priced yet (the sweep prices it
 * within a minute of launch) counts nothing, and the cost says how many such instances run
 * (`unpricedInstances`), so a view never shows a confident $0 for instances it cannot price yet.
 */
import { mapLimit } from './concurrency.ts';
import { isLive } from './lease.ts';
import type { Annex, InstanceRecord } from './model.ts';
import type { LeaseStore } from './ports.ts';

export interface AnnexCost {
  /** USD per hour of the instances running now. */
  estimatedHourlyUsd: number;
  /** USD spent so far, over every instance the annex ever had. */
  spendSoFarUsd: number;
  /**
   * Instances not terminated that the sweep has not priced yet (present only when there are any):
   * the two sums above leave them out, so they are lower bounds until the next sweep.
   */
  unpricedInstances?: number;
}

const MINIMUM_BILLED_SECONDS = 60;

/** Rounded to a hundredth of a cent: an estimate, not an invoice. */
export const roundUsd = (usd: number): number => Math.round(usd * 10_000) / 10_000;

const gone = (i: InstanceRecord): boolean => i.state === 'terminated';

/** When the instance stopped costing: its termination, as the table recorded it. */
const endOf = (i: InstanceRecord, now: Date): number => {
  if (!gone(i)) return now.getTime();
  return Date.parse(i.terminatedAt ?? i.updatedAt);
};

export const instanceSpend = (i: InstanceRecord, now: Date): number => {
  if (i.hourlyUsd === undefined) return 0;
  const seconds = Math.max(0, (endOf(i, now) - Date.parse(i.launchedAt)) / 1000);
  return (i.hourlyUsd * Math.max(MINIMUM_BILLED_SECONDS, seconds)) / 3600;
};

export const annexCost = (instances: readonly InstanceRecord[], now: Date): AnnexCost => {
  const live = instances.filter((i) => !gone(i));
  const unpriced = live.filter((i) => i.hourlyUsd === undefined).length;
  return {
    estimatedHourlyUsd: roundUsd(live.reduce((sum, i) => sum + (i.hourlyUsd ?? 0), 0)),
    spendSoFarUsd: roundUsd(instances.reduce((sum, i) => sum + instanceSpend(i, now), 0)),
    ...(unpriced === 0 ? {} : { unpricedInstances: unpriced }),
  };
};

/**
 * The annexes of a listing with what their views need: a live annex's instance records (one
 * Query each, a few at a time); an ended annex carries its final spend on its own item.
 */
export const withInstances = async (
  deps: { store: Pick<LeaseStore, 'listInstances'> },
  annexes: Annex[],
): Promise<{ annex: Annex; instances?: InstanceRecord[] }[]> =>
  mapLimit(annexes, 8, async (annex) =>
    isLive(annex.state) ? { annex, instances: await deps.store.listInstances(annex.id) } : { annex },
  );
