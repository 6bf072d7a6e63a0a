/**
 * Every key of the lease table is built here and nowhere else (see DESIGN.md, "Lease table").
 */
import { createHash } from 'node:crypto';
import type { PoolScope } from '../domain/model.ts';

export interface Key {
  PK: string;
  SK: string;
}

/** Live annexes are spread over this many partitions of the sparse `live` index. */
export const LIVE_SHARDS = 4;

export const INDEX = { byOwner: 'byOwner', live: 'live', liveInstances: 'liveInstances' } as const;

const annexPk = (annexId: string): string => `ANNEX#${annexId}`;
const ownerPk = (owner: string): string => `OWNER#${owner}`;
const SHARED_OWNER = 'OWNER#*shared*';

export const keys = {
  annex: (annexId: string): Key => ({ PK: annexPk(annexId), SK: 'META' }),
  annexPartition: annexPk,
  instance: (annexId: string, instanceId: string): Key => ({
    PK: annexPk(annexId),
    SK: `INSTANCE#${instanceId}`,
  }),
  instancePrefix: 'INSTANCE#',
  /** Which annex an instance belongs to: read by instance id alone (bootstrap, heartbeat). */
  instanceLookup: (instanceId: string): Key => ({ PK: `INSTANCE#${instanceId}`, SK: 'ANNEX' }),
  event: (annexId: string, at: string, suffix: string): Key => ({
    PK: annexPk(annexId),
    SK: `EVENT#${at}#${suffix}`,
  }),
  eventPrefix: 'EVENT#',
  addNodesClaim: (annexId: string, idempotencyKey: string): Key => ({
    PK: annexPk(annexId),
    SK: `ADD#${idempotencyKey}`,
  }),
  nameClaim: (owner: string, name: string): Key => ({ PK: ownerPk(owner), SK: `NAME#${name}` }),
  /** One owner's quota usage in one pool (see shared/domain/quota.ts). */
  usage: (owner: string, pool: string): Key => ({ PK: `USAGE#${owner}`, SK: `POOL#${pool}` }),
  pool: (name: string, scope: PoolScope, owner: string): Key => ({
    PK: `POOL#${name}`,
    SK: scope === 'shared' ? 'SHARED' : ownerPk(owner),
  }),

  /** Slack: a Slack user's mapping to a principal, a seen request signature, an annex to notify. */
  slackIdentity: (teamId: string, userId: string): Key => ({
    PK: `SLACKUSER#${teamId}`,
    SK: `USER#${userId}`,
  }),
  slackNonce: (signature: string): Key => ({ PK: `SLACKNONCE#${signature}`, SK: 'NONCE' }),
  slackWatch: (annexId: string): Key => ({ PK: 'SLACKWATCH', SK: `ANNEX#${annexId}` }),
  slackWatchPartition: 'SLACKWATCH',

  /** byOwner index: an owner's annexes sort by name, then creation time. */
  ownerIndex: {
    annex: (owner: string, name: string, createdAt: string, annexId: string) => ({
      ownerPk: ownerPk(owner),
      ownerSk: `ANNEX#${name}#${createdAt}#${annexId}`,
    }),
    annexPrefix: (name?: string): string => (name === undefined ? 'ANNEX#' : `ANNEX#${name}#`),
    pool: (scope: PoolScope, owner: string, name: string) => ({
      ownerPk: scope === 'shared' ? SHARED_OWNER : ownerPk(owner),
      ownerSk: `POOL#${name}`,
    }),
    poolPrefix: 'POOL#',
    owner: ownerPk,
    shared: SHARED_OWNER,
  },

  /** live index: partition by shard, sorted by expiry. */
  liveShard: (annexId: string): string =>
    `LIVE#${createHash('sha256').update(annexId).digest().readUInt32BE(0) % LIVE_SHARDS}`,
  allLiveShards: (): string[] => Array.from({ length: LIVE_SHARDS }, (_, i) => `LIVE#${i}`),

  /** liveInstances index: instances not yet terminated, in their annex's shard, grouped by annex. */
  liveInstance: (annexId: string, instanceId: string) => ({
    liveInstanceShard: `LIVE#${createHash('sha256').update(annexId).digest().readUInt32BE(0) % LIVE_SHARDS}`,
    liveInstanceSk: `${annexId}#${instanceId}`,
  }),
};

/** Attributes that only exist for the table's sake and are stripped when items are read. */
export const KEY_ATTRIBUTES = [
  'PK',
  'SK',
  'ownerPk',
  'ownerSk',
  'liveShard',
  'liveInstanceShard',
  'liveInstanceSk',
  'entity',
  'ttl',
] as const;

/** An item without the table's own attributes: what the domain sees of a record. */
export const stripTableAttributes = <T>(item: Record<string, unknown>): T => {
  const copy = { ...item };
  for (const k of KEY_ATTRIBUTES) delete copy[k];
  return copy as T;
};
