/** The narrow ports the domain needs from the outside world. Adapters live in shared/aws. */
import type {
  AgentState,
  Annex,
  AnnexEvent,
  AnnexState,
  EndReason,
  InstanceMarket,
  InstanceRecord,
  InstanceNotice,
  InstanceState,
  LaunchSpec,
  Pool,
  PoolUsage,
  PriceSource,
} from './model.ts';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** Fields a state change may set on an annex; `version` is checked and bumped by the store. */
export type AnnexChanges = Partial<
  Pick<
    Annex,
    | 'state'
    | 'expiresAt'
    | 'idleSeconds'
    | 'launching'
    | 'requestedCount'
    | 'batches'
    | 'endedAt'
    | 'endReason'
    | 'updatedAt'
    | 'replacements'
    | 'spentUsd'
    | 'fleetIds'
  >
>;

export interface AddNodesClaim {
  key: string;
  batch: number;
  requestHash: string;
}

export interface LeaseStore {
  getPool(name: string, owner: string): Promise<Pool | undefined>;
  putPool(pool: Pool): Promise<void>;
  listPools(owner: string): Promise<Pool[]>;

  /**
   * Claims the name and writes the annex and its first event atomically; with `usage`, also the
   * owner's usage record of the pool, only if its stored version is still `usage.version` (a
   * lost race, or a concurrent transaction on it, is 'usage-changed': nothing was written).
   */
  createAnnex(
    annex: Annex,
    event: AnnexEvent,
    usage?: PoolUsage,
  ): Promise<'created' | 'exists' | 'name-taken' | 'usage-changed'>;
  getAnnex(id: string): Promise<Annex | undefined>;
  /** The owner's live annex of that name, or else the most recent ended one. */
  findAnnexByName(owner: string, name: string): Promise<Annex | undefined>;
  listAnnexesByOwner(owner: string): Promise<Annex[]>;
  listLiveAnnexes(): Promise<Annex[]>;
  /** Every instance record not yet terminated (the sparse liveInstances index; may lag slightly). */
  listLiveInstances(): Promise<InstanceRecord[]>;
  /**
   * Conditional update: succeeds only if the stored version is `annex.version`; returns the new
   * annex (version + 1). Ending states release the name and leave the live index. A lost race
   * is a Conflict.
   */
  updateAnnex(annex: Annex, changes: AnnexChanges, event?: AnnexEvent, usage?: PoolUsage): Promise<Annex>;
  /** Like updateAnnex, and records an add-nodes idempotency claim in the same transaction. */
  startBatch(
    annex: Annex,
    changes: AnnexChanges,
    claim: AddNodesClaim,
    event: AnnexEvent,
    usage?: PoolUsage,
  ): Promise<Annex>;

  /** The owner's usage record of a pool (version 0, empty, when there is none). */
  getUsage(owner: string, pool: string): Promise<PoolUsage>;
  /** Removes an ended annex's entry from the usage record; a missing entry is not an error. */
  releaseUsage(owner: string, pool: string, annexId: string): Promise<void>;
  getAddNodesClaim(annexId: string, key: string): Promise<AddNodesClaim | undefined>;

  /** Writes instance records, each with its instance → annex lookup (see findInstanceAnnex). */
  putInstances(instances: InstanceRecord[]): Promise<void>;
  setInstanceStates(annexId: string, instanceIds: string[], state: InstanceState, at: string): Promise<void>;
  listInstances(annexId: string): Promise<InstanceRecord[]>;
  /** The annex an instance was recorded on (a consistent read of one item, never a scan). */
  findInstanceAnnex(instanceId: string): Promise<string | undefined>;
  getInstance(annexId: string, instanceId: string): Promise<InstanceRecord | undefined>;
  /**
   * Records that the instance was bootstrapped, only if it never was: a conditional write, so of
   * any number of concurrent calls exactly one gets 'marked'.
   */
  markBootstrapped(
    annexId: string,
    instanceId: string,
    at: string,
  ): Promise<'marked' | 'already' | 'missing'>;
  /** Undoes markBootstrapped(at) when the credential could not be served; anything else is kept. */
  clearBootstrapped(annexId: string, instanceId: string, at: string): Promise<void>;
  /** Writes the heartbeat fields; false when the instance record does not exist. */
  recordHeartbeat(annexId: string, instanceId: string, heartbeat: HeartbeatRecord): Promise<boolean>;
  /**
   * Records an IDTOKEN issued to the instance (its jti appended to `tokenIds`, its expiry and
   * issue time; never the token) and `event`, in one transaction; false when the record does not exist.
   */
  recordTokenIssued(
    annexId: string,
    instanceId: string,
    token: IssuedToken,
    event: AnnexEvent,
  ): Promise<boolean>;
  /**
   * Applies what EC2 said about an instance to its record and, with `event`, records that event on
   * the annex in the same transaction. 'stale' (nothing written) when the record already has it or
   * something later: a replayed interruption or rebalance notice, a state-change event older than
   * the last one applied, or any state change after `terminated`.
   */
  applyInstanceNotice(
    annexId: string,
    instanceId: string,
    notice: InstanceNotice,
    event?: AnnexEvent,
  ): Promise<'applied' | 'stale' | 'missing'>;
  /** Writes an instance's estimated price, unless it already has one. */
  setInstancePrice(
    annexId: string,
    instanceId: string,
    hourlyUsd: number,
    source: PriceSource,
  ): Promise<void>;

  appendEvent(event: AnnexEvent): Promise<void>;
  listEvents(annexId: string, limit: number): Promise<AnnexEvent[]>;
}

/** An IDTOKEN as the lease table records it: never the token itself. */
export interface IssuedToken {
  tokenId: string;
  expiresAt: string;
  issuedAt: string;
}

/** What a heartbeat writes on an instance record. */
export interface HeartbeatRecord {
  at: string;
  claimedSlots: number;
  totalSlots: number;
  agentState: AgentState;
  /** Given: set `idleSince` to this unless it is already set. Absent: remove `idleSince`. */
  idleSince?: string;
}

export interface LaunchRequest {
  annexId: string;
  annexName: string;
  owner: string;
  stage: string;
  batch: number;
  count: number;
  expiresAt: string;
  spec: LaunchSpec;
  instanceProfileArn?: string;
  /** The annex's launch secret: the key of the batch's client tokens (never sent to EC2 as such). */
  launchSecret?: string;
}

export interface LaunchedInstance {
  instanceId: string;
  instanceType: string;
  /** How EC2 sold it (a fleet answer or the instance's lifecycle); absent: as the annex asked. */
  market?: InstanceMarket;
  state: InstanceState;
  batch: number;
  launchedAt: string;
  subnetId?: string;
  availabilityZone?: string;
  privateIpAddress?: string;
  publicIpAddress?: string;
  /**
   * Provenance, as EC2 reports it: the instance's own client token (RunInstances; for a fleet
   * launch, the fleet's token as Annex sent it), the instance profile it runs with, and the fleet
   * that launched it (the `aws:ec2:fleet-id` tag EC2 sets, which no one else can set).
   */
  clientToken?: string;
  instanceProfileArn?: string;
  fleetId?: string;
}

/** An instance as the sweep sees it in EC2: with the annex and expiry its tags claim. */
export interface TaggedInstance extends LaunchedInstance {
  annexId: string;
  expiresAtTag?: string;
}

export interface LaunchResult {
  instances: LaunchedInstance[];
  /** Capacity errors met on the way (one per instance type / subnet tried before success). */
  attempts: { instanceType: string; subnetId?: string; error: string }[];
  /**
   * What an EC2 Fleet could not launch (its `Errors`): with fewer instances than asked for, the
   * reasons for the shortfall. Absent for RunInstances launches.
   */
  fleetErrors?: FleetError[];
  /** The EC2 Fleet CreateFleet answered with (fleet launches). */
  fleetId?: string;
}

export interface FleetError {
  /** EC2's error code, e.g. InsufficientInstanceCapacity, MaxSpotInstanceCountExceeded. */
  code: string;
  message: string;
  market?: InstanceMarket;
  instanceType?: string;
  subnetId?: string;
  availabilityZone?: string;
}

/** A per-annex launch template as EC2 has it (metadata only). */
export interface AnnexLaunchTemplate {
  annexId: string;
  createdAt?: string;
}

export interface Compute {
  /** Instances of this batch that EC2 already has (not terminated): found by tag, never by token alone. */
  findBatchInstances(annexId: string, batch: number): Promise<LaunchedInstance[]>;
  /** Every non-terminated instance tagged with this annex id. */
  listAnnexInstances(annexId: string): Promise<LaunchedInstance[]>;
  launch(request: LaunchRequest): Promise<LaunchResult>;
  /** Overwrites tags; instances that no longer exist are skipped. */
  retag(instanceIds: string[], tags: Record<string, string>): Promise<void>;
  /** Terminates; instances that no longer exist count as terminated. */
  terminate(instanceIds: string[]): Promise<void>;
  /** Every instance not yet shutting down that is tagged with an annex id and this stage. */
  listStageInstances(stage: string): Promise<TaggedInstance[]>;
  /** Deletes the annex's launch template (fleet launches create it); a missing one counts as deleted. */
  deleteLaunchTemplate(annexId: string): Promise<void>;
  /** Every per-annex launch template of this stage (found by its `annex:stage` tag). */
  listLaunchTemplates(): Promise<AnnexLaunchTemplate[]>;
  /** The client token an EC2 Fleet was created with; undefined when EC2 has no such fleet. */
  fleetClientToken(fleetId: string): Promise<string | undefined>;
}

/** The one-time EventBridge Scheduler schedules that end annexes at their exact expiry. */
export interface ExpirySchedules {
  /** Creates the schedule that fires at `expiresAt` for this annex; an existing one is kept. */
  schedule(annexId: string, expiresAt: string): Promise<void>;
  /** Deletes that schedule; a missing one counts as deleted. */
  cancel(annexId: string, expiresAt: string): Promise<void>;
  /** Schedules `to`, then cancels `from` unless both fire in the same second (the same schedule). */
  move(annexId: string, from: string, to: string): Promise<void>;
  /** Every expiry schedule of this stage. */
  list(): Promise<{ annexId: string; fireAt: string }[]>;
}

export interface SecretStore {
  /** Writes (or overwrites) a pool's credential. */
  putPoolCredential(parameterName: string, value: string, tags: Record<string, string>): Promise<void>;
  getCredential(parameterName: string): Promise<string>;
  /** The value of the per-annex copy (what an instance of that annex joins the pool with). */
  getAnnexCredential(annexId: string): Promise<string>;
  /** Writes the per-annex copy; re-writing the same annex's copy is not an error. */
  putAnnexCredential(annexId: string, value: string, tags: Record<string, string>): Promise<string>;
  /** Deletes the per-annex copy; a missing parameter counts as deleted. */
  deleteAnnexCredential(annexId: string): Promise<void>;
  /** Every per-annex copy of this stage (metadata only, never a value). */
  listAnnexCredentials(): Promise<{ annexId: string; lastModified?: string }[]>;
}

/** Prices in USD per instance-hour, for the cost estimate and the budget (see shared/pricing). */
export interface PriceBook {
  /** The on-demand price of the type in this region, from the configured table. */
  onDemandHourly(instanceType: string): number | undefined;
  /** The current spot price of the type (in the zone, when given); undefined when EC2 has none. */
  spotHourly(instanceType: string, availabilityZone?: string): Promise<number | undefined>;
}

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface Settings {
  stage: string;
  maxDurationSeconds: number;
  maxInstancesPerAnnex: number;
}

export interface SweepSettings {
  /** An instance that has not reported by then failed to join (condor_annex: 15 min). */
  bootGraceSeconds: number;
  /** Instances younger than this are never treated as orphans (EC2 and the table may lag). */
  orphanMinAgeSeconds: number;
  /** A TERMINATING lease untouched for this long stopped half-way (absent: orphanMinAgeSeconds). */
  terminationStalledSeconds?: number;
  /** A live record EC2 no longer lists, this old, is recorded gone (absent: orphanMinAgeSeconds). */
  instanceGoneSeconds?: number;
  /** Table unreadable: instances this far past their `annex:expires-at` tag are terminated (absent: 300). */
  outageExpiryGraceSeconds?: number;
  /** REQUESTED/LAUNCHING for longer than this is stuck: repaired forward or failed. */
  stuckAfterSeconds: number;
  /** How many annexes the sweep works on at once. */
  concurrency: number;
}

/** Who an annex instance is, as API Gateway sees it, and how often it reports. */
export interface InstanceSettings {
  /** The role annex instances run with: callers are `assumed-role/<this>/<instance id>`. */
  instanceRoleName: string;
  heartbeatIntervalSeconds: number;
}

export interface LaunchSettings {
  instanceProfileArn?: string;
  defaultImageId?: string;
  defaultSubnetIds: string[];
  defaultSecurityGroupIds: string[];
  /**
   * The only subnets and security groups the stack's launch roles may use (IAM repeats them):
   * what a pool's policy may choose from. Absent: the defaults.
   */
  launchSubnetIds?: string[];
  launchSecurityGroupIds?: string[];
}

export type { AnnexState, EndReason };
