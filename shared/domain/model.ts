/** The lease model: what an annex, its instances, its events and a pool are. No AWS types here. */

export const ANNEX_STATES = [
  'REQUESTED',
  'LAUNCHING',
  'RUNNING',
  'TERMINATING',
  'TERMINATED',
  'FAILED',
] as const;
export type AnnexState = (typeof ANNEX_STATES)[number];

/** How one instance is bought. */
export type InstanceMarket = 'on-demand' | 'spot';
/** How an annex (or a batch) buys its instances: `mixed` is an on-demand base plus spot. */
export type Market = InstanceMarket | 'mixed';

/** How EC2 Fleet picks spot capacity pools (CreateFleet SpotOptions.AllocationStrategy). */
export type AllocationStrategy =
  'price-capacity-optimized' | 'capacity-optimized' | 'lowest-price' | 'diversified';

/** What to do when EC2 gives a batch fewer instances than asked for. */
export type CapacityPolicy = 'keep' | 'all-or-nothing';

/** EC2's accelerator manufacturers, as an annex's hardware needs name them. */
export const GPU_MANUFACTURERS = ['nvidia', 'amd', 'amazon-web-services', 'xilinx', 'habana'] as const;
export type GpuManufacturer = (typeof GPU_MANUFACTURERS)[number];

/** Hardware needs instead of instance types (EC2 attribute-based instance type selection). */
export interface InstanceRequirements {
  vCpus: { min: number; max?: number };
  memoryMiB: { min: number; max?: number };
  gpus?: { min?: number; max?: number };
  gpuManufacturers?: GpuManufacturer[];
  instanceGenerations?: ('current' | 'previous')[];
  burstablePerformance?: 'included' | 'excluded' | 'required';
  allowedInstanceTypes?: string[];
  excludedInstanceTypes?: string[];
}

/** Why an annex ended (or an enforcement action was taken). */
export type EndReason =
  | 'user'
  | 'expired'
  | 'idle'
  | 'boot-timeout'
  | 'orphan'
  | 'launch-failed'
  /** The annex's spend reached its `maxSpend`. */
  | 'budget'
  /** EC2 took a spot instance back (an interruption). */
  | 'interrupted';

export interface LaunchSpec {
  market: Market;
  /** Empty when the annex gives `instanceRequirements` instead. */
  instanceTypes: string[];
  instanceRequirements?: InstanceRequirements;
  /** Spot and mixed: how the fleet picks spot pools (default price-capacity-optimized). */
  allocationStrategy?: AllocationStrategy;
  /** Spot: the most it pays per instance-hour, in USD (a decimal string, as EC2 takes it). */
  maxPrice?: string;
  /** Mixed: how many instances of each batch are on-demand; the rest are spot. */
  onDemandBaseCount?: number;
  /** Default `keep`. */
  capacityPolicy?: CapacityPolicy;
  imageId: string;
  subnetIds: string[];
  /** Fleet launches without subnets: the zones to launch in (the default VPC's subnets there). */
  availabilityZones?: string[];
  securityGroupIds: string[];
  keyName?: string;
  /** The user's own user data, passed to EC2 byte for byte. Never returned by the API. */
  userData?: string;
  tags: Record<string, string>;
}

export interface Annex {
  id: string;
  name: string;
  owner: string;
  pool: string;
  /** SSM name of the pool credential this annex copied at creation. */
  poolCredentialParameter: string;
  state: AnnexState;
  spec: LaunchSpec;
  /** Instances asked for over all batches. */
  requestedCount: number;
  /** Launch batches started so far (1 after create, +1 per add-nodes). */
  batches: number;
  /** The batch being launched, while the annex is LAUNCHING. */
  launching?: PendingBatch;
  idleSeconds: number;
  createdAt: string;
  updatedAt: string;
  expiresAt: string;
  endedAt?: string;
  endReason?: EndReason;
  /** Hash of the create request, to tell an idempotent retry from a reused key. */
  requestHash: string;
  /** How its instances join the pool, fixed at creation (as the credential copy is). */
  condor?: AnnexCondor;
  /** Replace a spot instance EC2 interrupts (while more than 15 minutes of the lease are left). */
  replaceInterrupted?: boolean;
  /** At most this many replacements over the annex's life (with replaceInterrupted). */
  maxReplacements?: number;
  /** Replacement batches started so far. */
  replacements?: number;
  /** USD: the sweep ends the annex (reason `budget`) once its estimated spend reaches this. */
  maxSpend?: number;
  /** Estimated spend in USD, written when the annex ended (from its instances' rates and lifetimes). */
  spentUsd?: number;
  /**
   * Random, set at creation, never shown, tagged or logged: the key of the annex's EC2 client
   * tokens (lease.ts clientToken), so only Annex can launch an instance that passes provenance.
   * Absent on annexes created before it existed (their tokens are the bare, guessable form).
   */
  launchSecret?: string;
  /** The EC2 Fleet each fleet-launched batch came from, by batch number (as CreateFleet answered). */
  fleetIds?: Record<string, string>;
  version: number;
}

/** The pool an annex's instances join and whose jobs they run. */
export interface AnnexCondor {
  collectorHost: string;
  collectorPort: number;
  credentialType: CredentialType;
  /** HTCondor users whose jobs may run (`user` or `user@domain`); empty: any user of the pool. */
  allowedUsers: string[];
  /** The pool's TRUST_DOMAIN, when it is not the collector host (IDTOKENS). */
  trustDomain?: string;
}

export interface PendingBatch {
  batch: number;
  count: number;
  instanceTypes: string[];
  /** This batch's market and on-demand base, when add-nodes chose other than the annex's. */
  market?: Market;
  onDemandBaseCount?: number;
  /** The interrupted instance this batch replaces (a replacement does not add to requestedCount). */
  replaces?: string;
}

export type InstanceState = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

export interface InstanceRecord {
  instanceId: string;
  annexId: string;
  batch: number;
  instanceType: string;
  market: InstanceMarket;
  state: InstanceState;
  launchedAt: string;
  subnetId?: string;
  availabilityZone?: string;
  privateIpAddress?: string;
  publicIpAddress?: string;
  /**
   * The EC2 client token of the call that launched it (its RunInstances', or its fleet's
   * CreateFleet's), checked against the annex before it was recorded and again at bootstrap.
   */
  launchToken?: string;
  /** The EC2 Fleet that launched it (fleet launches). */
  fleetId?: string;
  updatedAt: string;
  /** Heartbeat fields, written by the instance agent (instance-side issue). */
  lastHeartbeatAt?: string;
  claimedSlots?: number;
  totalSlots?: number;
  /** Since when no slot has been claimed (absent while any slot is claimed). */
  idleSince?: string;
  /** What the agent said it is doing in its last heartbeat. */
  agentState?: AgentState;
  /** When the instance was given its pool credential (at most once: see shared/domain/instances.ts). */
  bootstrappedAt?: string;
  /** IDTOKENS pools: the jti of every token issued to the instance, oldest first (to revoke them). */
  tokenIds?: string[];
  /** When the newest of those tokens expires, and when it was issued. */
  tokenExpiresAt?: string;
  tokenIssuedAt?: string;
  /** When EC2 said it is about to take the instance back (first notice: EC2 event or the instance), and what it said. */
  interruptedAt?: string;
  interruption?: Interruption;
  /** When EC2 recommended rebalancing this spot instance (its EventBridge event time). */
  rebalanceRecommendedAt?: string;
  /**
   * Order of the last EC2 state-change event applied to `state`: `<event time ISO>#<state rank>`,
   * so a replayed or late (out-of-order) event never moves the state back.
   */
  stateEventKey?: string;
  /** When the instance was recorded terminated (for its cost). */
  terminatedAt?: string;
  /** Its estimated price in USD per hour, and where the price came from. */
  hourlyUsd?: number;
  priceSource?: PriceSource;
}

export type PriceSource = 'on-demand-table' | 'spot-price-history' | 'on-demand-table (no spot price)';

/** What EC2 said about an instance (an EventBridge event, or the instance's own report). */
export type InstanceNotice =
  | { kind: 'interruption'; at: string; interruption: Interruption }
  | { kind: 'rebalance'; at: string }
  | { kind: 'state'; at: string; state: InstanceState };

export type AgentState = 'booting' | 'joined' | 'draining';

export interface Interruption {
  action: 'terminate' | 'stop' | 'hibernate';
  /** When EC2 said it will act (ISO 8601). */
  time: string;
}

export interface AnnexEvent {
  annexId: string;
  at: string;
  type: string;
  message: string;
  reason?: EndReason;
  detail?: Record<string, unknown>;
}

export type CredentialType = 'password' | 'idtokens-signing-key';
export type PoolScope = 'shared' | 'private';

export interface Pool {
  name: string;
  scope: PoolScope;
  /** Principal that registered it (for a private pool, the only one who may use it). */
  owner: string;
  collectorHost: string;
  collectorPort: number;
  credentialType: CredentialType;
  credentialParameter: string;
  /** The HTCondor user an annex in this pool runs jobs for unless the annex names its own. */
  condorUser?: string;
  /** The pool's TRUST_DOMAIN when it is not the collector host (IDTOKENS only). */
  trustDomain?: string;
  /**
   * What annexes of this pool may launch, set by whoever registered it. Absent on pools registered
   * before launch policies existed: they get their scope's defaults (see launch-policy.ts).
   */
  policy?: LaunchPolicy;
  createdAt: string;
  updatedAt: string;
}

/**
 * A pool's launch policy: what its annexes may launch and how much of it one user may hold.
 * Stored fully resolved (defaults filled in at registration), so what `GET /v1/pools` shows is
 * exactly what create, add-nodes and extend enforce.
 */
export interface LaunchPolicy {
  /** Images an annex may use (the stack's default image unless the registrar said otherwise). */
  allowedImageIds: string[];
  /** Subnets and security groups an annex may launch into (the stack's defaults unless said otherwise). */
  allowedSubnetIds: string[];
  allowedSecurityGroupIds: string[];
  /** Instance type patterns (`m5.large`, `g5.*`); empty: any type (within the vCPU/GPU limits). */
  allowedInstanceTypes: string[];
  /** Most vCPUs / GPUs one instance may have; absent: no limit. */
  maxVCpusPerInstance?: number;
  maxGpusPerInstance?: number;
  /** Longest lease one create or extend may ask for, and longest total life (creation to expiry). */
  maxLeaseSeconds: number;
  maxLifetimeSeconds: number;
  /** Whether users may give an image of their own (any image), their own user data, a key pair. */
  allowUserImage: boolean;
  allowUserData: boolean;
  allowKeyPair: boolean;
  /** Whether every create must give `maxSpend`. */
  requireMaxSpend: boolean;
  /** Per (user, pool): what one user's live annexes of this pool may hold together. */
  quota: UserQuota;
}

/** Per-user limits in one pool; an absent limit is no limit. */
export interface UserQuota {
  /** Live instances (asked for by live annexes) at once. */
  maxInstances?: number;
  /** Live vCPUs at once. */
  maxVCpus?: number;
  /** Estimated spend committed per calendar month (UTC), in USD. */
  maxMonthlySpendUsd?: number;
}

/** What one user's annexes hold in one pool, as the quota counts it. */
export interface PoolUsage {
  owner: string;
  pool: string;
  /** Per live annex: what it holds and until when (an entry lapses at its expiry). */
  annexes: Record<string, UsageEntry>;
  /** Estimated spend committed per calendar month (`2026-12`), in USD. */
  spendByMonth: Record<string, number>;
  /** 0 when never written. */
  version: number;
}

export interface UsageEntry {
  instances: number;
  vCpus: number;
  expiresAt: string;
  /** Estimated spend this annex committed so far, in USD (never more than its maxSpend). */
  committedUsd: number;
}

/** Who is calling, as established by the HTTP layer from the request's IAM identity. */
export interface Caller {
  /**
   * The OWNER identity (shared/domain/identity.ts): what every ownership check, `annex:owner` tag
   * and name claim uses. For a role whose sessions are not owned one by one, the role ARN.
   */
  principalArn: string;
  /**
   * The ARN the request was signed with, as IAM reports it (for an instance, the assumed-role ARN
   * whose session name is its instance id). Absent when no request was signed: a Slack user acting
   * as its mapped principal, or a script calling the domain directly.
   */
  sessionArn?: string;
  admin: boolean;
}
