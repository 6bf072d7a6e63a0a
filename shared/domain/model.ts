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

export type Market = 'on-demand';

/** Why an annex ended (or an enforcement action was taken). */
export type EndReason = 'user' | 'expired' | 'idle' | 'boot-timeout' | 'orphan' | 'launch-failed';

export interface LaunchSpec {
  market: Market;
  instanceTypes: string[];
  imageId: string;
  subnetIds: string[];
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
}

export type InstanceState = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

export interface InstanceRecord {
  instanceId: string;
  annexId: string;
  batch: number;
  instanceType: string;
  market: Market;
  state: InstanceState;
  launchedAt: string;
  subnetId?: string;
  availabilityZone?: string;
  privateIpAddress?: string;
  publicIpAddress?: string;
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
  /** When the instance reported that EC2 is about to take it back, and what EC2 said. */
  interruptedAt?: string;
  interruption?: Interruption;
}

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
  createdAt: string;
  updatedAt: string;
}

/** Who is calling, as established by the HTTP layer from the request's IAM identity. */
export interface Caller {
  principalArn: string;
  admin: boolean;
}
