/** The API's objects as the CLI reads them (docs/openapi.yaml). `--json` prints them unchanged. */

export type AnnexState = 'REQUESTED' | 'LAUNCHING' | 'RUNNING' | 'TERMINATING' | 'TERMINATED' | 'FAILED';

export interface Annex {
  id: string;
  name: string;
  owner: string;
  pool: string;
  state: AnnexState;
  market: string;
  instanceTypes: string[];
  imageId: string;
  subnetIds: string[];
  securityGroupIds: string[];
  keyName?: string;
  tags: Record<string, string>;
  userDataBytes: number;
  requestedCount: number;
  runningCount?: number;
  idleSeconds: number;
  createdAt: string;
  updatedAt: string;
  expiresAt: string;
  endedAt?: string;
  endReason?: string;
  allowedUsers?: string[];
  instanceRequirements?: Record<string, unknown>;
  allocationStrategy?: string;
  maxPrice?: string;
  onDemandBaseCount?: number;
  capacityPolicy?: string;
  replaceInterrupted?: boolean;
  maxReplacements?: number;
  replacements?: number;
  maxSpend?: number;
  /** The control plane's estimate, USD per hour of the running instances. */
  estimatedHourlyUsd?: number;
  spendSoFarUsd?: number;
  /** Live instances the control plane has not priced yet (the estimates leave them out). */
  unpricedInstances?: number;
  version: number;
}

export interface Instance {
  instanceId: string;
  batch: number;
  instanceType: string;
  market: string;
  state: string;
  launchedAt: string;
  updatedAt: string;
  availabilityZone?: string;
  privateIpAddress?: string;
  publicIpAddress?: string;
  /** Reported once the instance agent heartbeats (null before the first heartbeat). */
  lastHeartbeatAt?: string | null;
}

export interface AnnexEvent {
  at: string;
  type: string;
  message: string;
  reason?: string;
  detail?: Record<string, unknown>;
}

export interface AnnexDetail {
  annex: Annex;
  instances: Instance[];
  events: AnnexEvent[];
}

export interface Pool {
  name: string;
  scope: 'shared' | 'private';
  owner: string;
  collectorHost: string;
  collectorPort: number;
  credentialType: 'password' | 'idtokens-signing-key';
  createdAt: string;
  updatedAt: string;
}

export interface PoolCheck {
  pool: string;
  scope: 'shared' | 'private';
  collectorHost: string;
  collectorPort: number;
  reachable: boolean;
  latencyMs: number;
  timeoutMs: number;
  checkedAt: string;
  error?: { code: string; message: string };
}

export const isEnded = (state: AnnexState): boolean => state === 'TERMINATED' || state === 'FAILED';
