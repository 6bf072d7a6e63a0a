/** What the API shows of the model: never a credential, a parameter name or the user data. */
import { annexCost } from './cost.ts';
import type { Annex, AnnexEvent, InstanceRecord, LaunchPolicy, Pool } from './model.ts';

export interface AnnexView {
  id: string;
  name: string;
  owner: string;
  pool: string;
  state: Annex['state'];
  market: Annex['spec']['market'];
  instanceTypes: string[];
  instanceRequirements?: Annex['spec']['instanceRequirements'];
  allocationStrategy?: Annex['spec']['allocationStrategy'];
  maxPrice?: string;
  onDemandBaseCount?: number;
  capacityPolicy: NonNullable<Annex['spec']['capacityPolicy']>;
  imageId: string;
  subnetIds: string[];
  availabilityZones?: string[];
  securityGroupIds: string[];
  keyName?: string;
  tags: Record<string, string>;
  /** HTCondor users whose jobs its instances run (empty: any user of the pool). */
  allowedUsers?: string[];
  userDataBytes: number;
  requestedCount: number;
  runningCount?: number;
  idleSeconds: number;
  createdAt: string;
  updatedAt: string;
  expiresAt: string;
  endedAt?: string;
  endReason?: Annex['endReason'];
  replaceInterrupted?: boolean;
  maxReplacements?: number;
  replacements?: number;
  maxSpend?: number;
  /** USD per hour of its running instances (estimate: see shared/domain/cost.ts). */
  estimatedHourlyUsd?: number;
  /** USD spent so far (estimate). */
  spendSoFarUsd?: number;
  /** Live instances not priced yet, only when there are any: the two estimates above omit them. */
  unpricedInstances?: number;
  version: number;
}

const ACTIVE = new Set(['pending', 'running']);

/** From the instances when they were read (at `now`), else from what an ended annex kept. */
const costOf = (annex: Annex, instances: InstanceRecord[] | undefined, now: Date | undefined) => {
  if (instances !== undefined && now !== undefined) return annexCost(instances, now);
  if (annex.spentUsd !== undefined) return { estimatedHourlyUsd: 0, spendSoFarUsd: annex.spentUsd };
  return {};
};

export const annexView = (annex: Annex, instances?: InstanceRecord[], now?: Date): AnnexView => ({
  id: annex.id,
  name: annex.name,
  owner: annex.owner,
  pool: annex.pool,
  state: annex.state,
  market: annex.spec.market,
  instanceTypes: annex.spec.instanceTypes,
  ...(annex.spec.instanceRequirements === undefined
    ? {}
    : { instanceRequirements: annex.spec.instanceRequirements }),
  ...(annex.spec.market === 'on-demand'
    ? {}
    : { allocationStrategy: annex.spec.allocationStrategy ?? 'price-capacity-optimized' }),
  ...(annex.spec.maxPrice === undefined ? {} : { maxPrice: annex.spec.maxPrice }),
  ...(annex.spec.onDemandBaseCount === undefined ? {} : { onDemandBaseCount: annex.spec.onDemandBaseCount }),
  capacityPolicy: annex.spec.capacityPolicy ?? 'keep',
  imageId: annex.spec.imageId,
  subnetIds: annex.spec.subnetIds,
  ...(annex.spec.availabilityZones === undefined ? {} : { availabilityZones: annex.spec.availabilityZones }),
  securityGroupIds: annex.spec.securityGroupIds,
  ...(annex.spec.keyName === undefined ? {} : { keyName: annex.spec.keyName }),
  tags: annex.spec.tags,
  ...(annex.condor === undefined ? {} : { allowedUsers: annex.condor.allowedUsers }),
  userDataBytes: annex.spec.userData === undefined ? 0 : Buffer.byteLength(annex.spec.userData, 'utf8'),
  requestedCount: annex.requestedCount,
  ...(instances === undefined ? {} : { runningCount: instances.filter((i) => ACTIVE.has(i.state)).length }),
  idleSeconds: annex.idleSeconds,
  createdAt: annex.createdAt,
  updatedAt: annex.updatedAt,
  expiresAt: annex.expiresAt,
  ...(annex.endedAt === undefined ? {} : { endedAt: annex.endedAt }),
  ...(annex.endReason === undefined ? {} : { endReason: annex.endReason }),
  ...(annex.replaceInterrupted === undefined
    ? {}
    : {
        replaceInterrupted: annex.replaceInterrupted,
        maxReplacements: annex.maxReplacements ?? 0,
        replacements: annex.replacements ?? 0,
      }),
  ...(annex.maxSpend === undefined ? {} : { maxSpend: annex.maxSpend }),
  ...costOf(annex, instances, now),
  version: annex.version,
});

export const instanceView = (i: InstanceRecord) => ({
  instanceId: i.instanceId,
  batch: i.batch,
  instanceType: i.instanceType,
  market: i.market,
  state: i.state,
  launchedAt: i.launchedAt,
  updatedAt: i.updatedAt,
  ...(i.availabilityZone === undefined ? {} : { availabilityZone: i.availabilityZone }),
  ...(i.privateIpAddress === undefined ? {} : { privateIpAddress: i.privateIpAddress }),
  ...(i.publicIpAddress === undefined ? {} : { publicIpAddress: i.publicIpAddress }),
  // What the instance itself reported (never its credential).
  ...(i.bootstrappedAt === undefined ? {} : { bootstrappedAt: i.bootstrappedAt }),
  // null until the agent's first heartbeat: clients wait on it to know the instance joined the pool.
  lastHeartbeatAt: i.lastHeartbeatAt ?? null,
  ...(i.agentState === undefined ? {} : { agentState: i.agentState }),
  ...(i.claimedSlots === undefined ? {} : { claimedSlots: i.claimedSlots }),
  ...(i.totalSlots === undefined ? {} : { totalSlots: i.totalSlots }),
  ...(i.idleSince === undefined ? {} : { idleSince: i.idleSince }),
  ...(i.interruption === undefined ? {} : { interruption: i.interruption }),
  ...(i.rebalanceRecommendedAt === undefined ? {} : { rebalanceRecommendedAt: i.rebalanceRecommendedAt }),
  ...(i.terminatedAt === undefined ? {} : { terminatedAt: i.terminatedAt }),
  ...(i.hourlyUsd === undefined ? {} : { hourlyUsd: i.hourlyUsd, priceSource: i.priceSource }),
});

export const eventView = (e: AnnexEvent) => ({
  at: e.at,
  type: e.type,
  message: e.message,
  ...(e.reason === undefined ? {} : { reason: e.reason }),
  ...(e.detail === undefined ? {} : { detail: e.detail }),
});

/** A pool as anyone may see it: no credential and no parameter name. */
export const poolView = (p: Pool & { policy: LaunchPolicy }) => ({
  name: p.name,
  scope: p.scope,
  owner: p.owner,
  collectorHost: p.collectorHost,
  collectorPort: p.collectorPort,
  credentialType: p.credentialType,
  ...(p.condorUser === undefined ? {} : { condorUser: p.condorUser }),
  ...(p.trustDomain === undefined ? {} : { trustDomain: p.trustDomain }),
  policy: p.policy,
  createdAt: p.createdAt,
  updatedAt: p.updatedAt,
});
