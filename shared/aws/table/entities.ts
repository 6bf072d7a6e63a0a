/**
 * The lease table's entities and the rules of each of their transitions, in one place: whatever
 * path writes an item (a batch put, a sweep update, an EC2 event), it takes its table attributes
 * (entity, index keys, ttl) from here. Keys themselves come from ../keys.ts.
 */
import { isEnded } from '../../domain/lease.ts';
import type { Annex, AnnexEvent, InstanceRecord, Pool, PoolUsage } from '../../domain/model.ts';
import type { AddNodesClaim } from '../../domain/ports.ts';
import { keys, type Key } from '../keys.ts';
import { UpdateBuilder } from './update.ts';

type Item = Record<string, unknown>;

const DAY = 24 * 3600;
const epochSeconds = (iso: string): number => Math.floor(Date.parse(iso) / 1000);

/**
 * How long the table keeps history (DynamoDB TTL on `ttl`): each event for this long after it
 * happened; an ended annex's item and each terminated instance's record for this long after the
 * end. Live annexes and running instances never carry a ttl.
 */
export const HISTORY_RETENTION_SECONDS = 90 * DAY;
/** Add-nodes idempotency claims outlive any lease (7 days maximum) by a margin. */
export const CLAIM_TTL_SECONDS = 14 * DAY;
/** The longest an instance can live: a pool's longest lifetime (shared/http/schemas.ts allows 366 days). */
export const LONGEST_INSTANCE_LIFE_SECONDS = 366 * DAY;
/** Quota usage is kept while it counts anything: its live entries, this month's and last month's spend. */
const USAGE_TTL_SECONDS = 62 * DAY;

export const historyTtl = (iso: string): number => epochSeconds(iso) + HISTORY_RETENTION_SECONDS;

// ----- pool ----------------------------------------------------------------------------------

export const poolItem = (pool: Pool): Item => ({
  ...keys.pool(pool.name, pool.scope, pool.owner),
  ...keys.ownerIndex.pool(pool.scope, pool.owner, pool.name),
  entity: 'pool',
  ...pool,
});

// ----- annex and its name claim ----------------------------------------------------------------

/** A live annex is in the live index; an ended one is history, kept until its ttl. */
export const annexItem = (annex: Annex): Item => ({
  ...keys.annex(annex.id),
  ...keys.ownerIndex.annex(annex.owner, annex.name, annex.createdAt, annex.id),
  ...(isEnded(annex.state)
    ? { ttl: historyTtl(annex.endedAt ?? annex.updatedAt) }
    : { liveShard: keys.liveShard(annex.id) }),
  entity: 'annex',
  ...annex,
});

/**
 * The update of an annex from `before` to `after` (the fields in `changes`, the version, updatedAt):
 * ending it takes it out of the live index and starts its history retention.
 */
export function annexUpdate(before: Annex, after: Annex, changes: Record<string, unknown>): UpdateBuilder {
  const update = new UpdateBuilder({ aliasAll: true });
  const fields = { ...changes, version: after.version, updatedAt: after.updatedAt };
  for (const [field, value] of Object.entries(fields)) {
    if (value === undefined) update.remove(field);
    else update.set(field, value);
  }
  if (annexEnds(before, after)) {
    update.remove('liveShard');
    update.set('ttl', historyTtl(after.endedAt ?? after.updatedAt));
  }
  return update;
}

export const annexEnds = (before: Annex, after: Annex): boolean =>
  isEnded(after.state) && !isEnded(before.state);

export const nameClaimItem = (annex: Annex): Item => ({
  ...keys.nameClaim(annex.owner, annex.name),
  entity: 'name',
  annexId: annex.id,
});

// ----- add-nodes claim -------------------------------------------------------------------------

export const addNodesClaimItem = (annexId: string, claim: AddNodesClaim, at: string): Item => ({
  ...keys.addNodesClaim(annexId, claim.key),
  entity: 'add-claim',
  ...claim,
  ttl: epochSeconds(at) + CLAIM_TTL_SECONDS,
});

// ----- quota usage -----------------------------------------------------------------------------

/** The usage record as written over `usage.version`: the version bumped, kept while it counts. */
export function usageItem(usage: PoolUsage, at: string): Item {
  const latest = Math.max(
    Date.parse(at),
    ...Object.values(usage.annexes).map((e) => Date.parse(e.expiresAt)),
  );
  return {
    ...keys.usage(usage.owner, usage.pool),
    entity: 'usage',
    ...usage,
    version: usage.version + 1,
    ttl: Math.floor(latest / 1000) + USAGE_TTL_SECONDS,
  };
}

// ----- event -----------------------------------------------------------------------------------

export const eventItem = (event: AnnexEvent, suffix: string): Item => ({
  ...keys.event(event.annexId, event.at, suffix),
  entity: 'event',
  ...event,
  ttl: historyTtl(event.at),
});

// ----- instance and its lookup -----------------------------------------------------------------

/** When a terminated instance's record goes: history retention after it ended. */
export const instanceTtl = (record: InstanceRecord): number | undefined =>
  record.state === 'terminated' ? historyTtl(record.terminatedAt ?? record.updatedAt) : undefined;

/**
 * A record as a whole item: a running one in the live index, a terminated one out of it and with
 * its ttl (whichever path writes it whole).
 */
export function instanceItem(record: InstanceRecord): Item {
  const ttl = instanceTtl(record);
  return {
    ...keys.instance(record.annexId, record.instanceId),
    ...(ttl === undefined ? keys.liveInstance(record.annexId, record.instanceId) : { ttl }),
    entity: 'instance',
    ...record,
  };
}

/**
 * When an instance → annex lookup goes: with its ended record, or, while the instance may still
 * run, after the longest life an instance can have plus history retention, so that it outlives
 * its record and is never kept forever (it is written once, with the record, and not updated).
 */
export const lookupTtl = (record: InstanceRecord): number =>
  instanceTtl(record) ?? historyTtl(record.launchedAt) + LONGEST_INSTANCE_LIFE_SECONDS;

export const lookupItem = (record: InstanceRecord): Item => ({
  ...keys.instanceLookup(record.instanceId),
  entity: 'instance-lookup',
  annexId: record.annexId,
  ttl: lookupTtl(record),
});

/**
 * "instance → terminated", the one rule for every update path (the sweep, EC2's state-change
 * event): the state, when it ended (the first end wins: its cost stops there), its ttl, and out
 * of the liveInstances index.
 */
export function terminate(update: UpdateBuilder, at: string): UpdateBuilder {
  return update
    .set('state', 'terminated', 'state')
    .set('updatedAt', at, 'at')
    .setIfAbsent('terminatedAt', at, 'at')
    .setIfAbsent('ttl', historyTtl(at))
    .remove('liveInstanceShard')
    .remove('liveInstanceSk');
}

export type { Key };
