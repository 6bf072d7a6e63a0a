/**
 * Per-user quotas in a pool: live instances, live vCPUs and estimated spend per calendar month.
 *
 * One usage record per (owner, pool) holds an entry per live annex (what it holds, until when)
 * and the spend committed per month. Create, add-nodes and extend compute the next record here
 * and write it, version-conditioned, in the same transaction that admits the request: two
 * concurrent requests cannot both be admitted against the same record, so together they cannot
 * exceed a quota. Ending an annex removes its entry; an entry whose annex died without that (a
 * crash) lapses at the annex's expiry, so no quota leaks beyond a lease.
 *
 * Spend is committed, not measured: at create, the instances × their hourly price × the lease
 * hours (capped by the annex's maxSpend, at which the sweep ends it); add-nodes commits the new
 * instances for the hours left, extend the live instances for the hours added. It counts in the
 * month (UTC) of the request. Prices are the on-demand table's (a spot instance costs at most
 * that); a type missing from the table is estimated per vCPU and GPU.
 */
import { limitExceeded } from './errors.ts';
import { instanceSize } from './instance-sizes.ts';
import type { InstanceRequirements, LaunchPolicy, Pool, PoolUsage, UsageEntry } from './model.ts';
import type { PriceBook } from './ports.ts';

/** Estimates for a type the price table does not have (about the m5 family's rate per vCPU). */
export const FALLBACK_USD_PER_VCPU_HOUR = 0.05;
export const FALLBACK_USD_PER_GPU_HOUR = 1;

export const monthOf = (at: Date): string => at.toISOString().slice(0, 7);

export const emptyUsage = (owner: string, pool: string): PoolUsage => ({
  owner,
  pool,
  annexes: {},
  spendByMonth: {},
  version: 0,
});

/** What one instance of a batch counts for: its vCPUs and its price per hour (the largest type's). */
export interface InstanceDemand {
  vCpus: number;
  hourlyUsd: number;
}

const round = (usd: number): number => Math.round(usd * 10_000) / 10_000;

/**
 * What one instance of a batch counts for. With several types the largest counts (EC2 may give
 * any). Refuses (422) a batch the quota cannot count: an unknown size under a vCPU quota, or
 * hardware needs without a vCPU maximum.
 */
export const instanceDemand = (
  pool: Pick<Pool, 'name'>,
  policy: LaunchPolicy,
  instanceTypes: readonly string[],
  requirements: InstanceRequirements | undefined,
  prices: Pick<PriceBook, 'onDemandHourly'> | undefined,
): InstanceDemand => {
  const name = `pool "${pool.name}"`;
  if (requirements !== undefined) {
    const vCpus = requirements.vCpus.max;
    if (vCpus === undefined) {
      if (policy.quota.maxVCpus !== undefined || policy.quota.maxMonthlySpendUsd !== undefined) {
        throw limitExceeded(
          `instanceRequirements.vCpus.max: required: ${name} counts vCPUs and spend per user`,
          'instanceRequirements.vCpus.max',
        );
      }
      return { vCpus: 0, hourlyUsd: 0 };
    }
    const gpus = requirements.gpus?.max ?? 0;
    return {
      vCpus,
      hourlyUsd: round(vCpus * FALLBACK_USD_PER_VCPU_HOUR + gpus * FALLBACK_USD_PER_GPU_HOUR),
    };
  }
  let demand: InstanceDemand = { vCpus: 0, hourlyUsd: 0 };
  for (const type of instanceTypes) {
    const size = instanceSize(type);
    if (size === undefined && policy.quota.maxVCpus !== undefined) {
      throw limitExceeded(
        `instanceTypes: ${name} counts vCPUs per user and the size of ${type} is not known`,
        'instanceTypes',
      );
    }
    const vCpus = size?.vCpus ?? 0;
    const hourlyUsd =
      prices?.onDemandHourly(type) ??
      round(vCpus * FALLBACK_USD_PER_VCPU_HOUR + (size?.gpus ?? 0) * FALLBACK_USD_PER_GPU_HOUR);
    demand = { vCpus: Math.max(demand.vCpus, vCpus), hourlyUsd: Math.max(demand.hourlyUsd, hourlyUsd) };
  }
  return demand;
};

/** The instances and vCPUs a user's live annexes hold in the pool now (lapsed entries left out). */
export const liveUsage = (usage: PoolUsage, now: Date): { instances: number; vCpus: number } => {
  let instances = 0;
  let vCpus = 0;
  for (const entry of Object.values(usage.annexes)) {
    if (Date.parse(entry.expiresAt) <= now.getTime()) continue;
    instances += entry.instances;
    vCpus += entry.vCpus;
  }
  return { instances, vCpus };
};

/** What a request adds to one annex's entry. */
export interface Admission {
  annexId: string;
  instances: number;
  vCpus: number;
  /** The annex's expiry after the request. */
  expiresAt: string;
  /** Estimated spend the request commits, before the annex's maxSpend caps it. */
  spendUsd: number;
  /** The annex's maxSpend: what it commits in all is never more. */
  maxSpend?: number;
  /** The request fields a refusal names: for instances and vCPUs, and for spend. */
  fields: { count: string; spend: string };
}

/**
 * The usage record with the request admitted, or a 422 naming the quota it would exceed. Entries
 * that lapsed and months before the previous one are dropped from the record on the way.
 */
export const admit = (
  pool: Pick<Pool, 'name'>,
  policy: LaunchPolicy,
  usage: PoolUsage,
  request: Admission,
  now: Date,
): PoolUsage => {
  const name = `pool "${pool.name}"`;
  const { maxInstances, maxVCpus, maxMonthlySpendUsd } = policy.quota;
  const live = liveUsage(usage, now);
  if (
    request.instances > 0 &&
    maxInstances !== undefined &&
    live.instances + request.instances > maxInstances
  ) {
    throw limitExceeded(
      `${request.fields.count}: ${name} allows ${maxInstances} live instances per user; you hold ${live.instances} and this asks for ${request.instances}`,
      request.fields.count,
    );
  }
  if (request.vCpus > 0 && maxVCpus !== undefined && live.vCpus + request.vCpus > maxVCpus) {
    throw limitExceeded(
      `${request.fields.count}: ${name} allows ${maxVCpus} live vCPUs per user; you hold ${live.vCpus} and this asks for ${request.vCpus}`,
      request.fields.count,
    );
  }
  const previous: UsageEntry | undefined = usage.annexes[request.annexId];
  const committedBefore = previous?.committedUsd ?? 0;
  const cap = request.maxSpend ?? Number.POSITIVE_INFINITY;
  const spend = round(Math.max(0, Math.min(committedBefore + request.spendUsd, cap) - committedBefore));
  const month = monthOf(now);
  const spent = usage.spendByMonth[month] ?? 0;
  if (spend > 0 && maxMonthlySpendUsd !== undefined && spent + spend > maxMonthlySpendUsd) {
    throw limitExceeded(
      `${request.fields.spend}: ${name} allows $${maxMonthlySpendUsd} of estimated spend per user per month; ` +
        `$${round(spent)} is committed in ${month} and this commits $${spend}`,
      request.fields.spend,
    );
  }
  const annexes: Record<string, UsageEntry> = {};
  for (const [id, entry] of Object.entries(usage.annexes)) {
    if (Date.parse(entry.expiresAt) > now.getTime()) annexes[id] = entry;
  }
  annexes[request.annexId] = {
    instances: (previous?.instances ?? 0) + request.instances,
    vCpus: (previous?.vCpus ?? 0) + request.vCpus,
    expiresAt: request.expiresAt,
    committedUsd: round(committedBefore + spend),
  };
  const lastMonth = monthOf(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)));
  const spendByMonth: Record<string, number> = {};
  for (const [m, usd] of Object.entries(usage.spendByMonth)) if (m >= lastMonth) spendByMonth[m] = usd;
  spendByMonth[month] = round(spent + spend);
  return { ...usage, annexes, spendByMonth };
};

/** Spend of `instances` at `hourlyUsd` each for `seconds`. */
export const spendFor = (instances: number, hourlyUsd: number, seconds: number): number =>
  round((instances * hourlyUsd * Math.max(0, seconds)) / 3600);
