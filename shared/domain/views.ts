/** What the API shows of the model: never a credential, a parameter name or the user data. */
import type { Annex, AnnexEvent, InstanceRecord, Pool } from './model.ts';

export interface AnnexView {
  id: string;
  name: string;
  owner: string;
  pool: string;
  state: Annex['state'];
  market: Annex['spec']['market'];
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
  endReason?: Annex['endReason'];
  version: number;
}

const ACTIVE = new Set(['pending', 'running']);

export const annexView = (annex: Annex, instances?: InstanceRecord[]): AnnexView => ({
  id: annex.id,
  name: annex.name,
  owner: annex.owner,
  pool: annex.pool,
  state: annex.state,
  market: annex.spec.market,
  instanceTypes: annex.spec.instanceTypes,
  imageId: annex.spec.imageId,
  subnetIds: annex.spec.subnetIds,
  securityGroupIds: annex.spec.securityGroupIds,
  ...(annex.spec.keyName === undefined ? {} : { keyName: annex.spec.keyName }),
  tags: annex.spec.tags,
  userDataBytes: annex.spec.userData === undefined ? 0 : Buffer.byteLength(annex.spec.userData, 'utf8'),
  requestedCount: annex.requestedCount,
  ...(instances === undefined ? {} : { runningCount: instances.filter((i) => ACTIVE.has(i.state)).length }),
  idleSeconds: annex.idleSeconds,
  createdAt: annex.createdAt,
  updatedAt: annex.updatedAt,
  expiresAt: annex.expiresAt,
  ...(annex.endedAt === undefined ? {} : { endedAt: annex.endedAt }),
  ...(annex.endReason === undefined ? {} : { endReason: annex.endReason }),
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
});

export const eventView = (e: AnnexEvent) => ({
  at: e.at,
  type: e.type,
  message: e.message,
  ...(e.reason === undefined ? {} : { reason: e.reason }),
  ...(e.detail === undefined ? {} : { detail: e.detail }),
});

/** A pool as anyone may see it: no credential and no parameter name. */
export const poolView = (p: Pool) => ({
  name: p.name,
  scope: p.scope,
  owner: p.owner,
  collectorHost: p.collectorHost,
  collectorPort: p.collectorPort,
  credentialType: p.credentialType,
  createdAt: p.createdAt,
  updatedAt: p.updatedAt,
});
