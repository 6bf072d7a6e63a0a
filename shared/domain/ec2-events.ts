/**
 * EC2's own events about annex instances, delivered by EventBridge (handlers/ec2-events.ts):
 * `EC2 Spot Instance Interruption Warning`, `EC2 Instance Rebalance Recommendation` and
 * `EC2 Instance State-change Notification`.
 *
 * - Which annex: the instance → annex lookup item written with the instance records (one
 *   consistent GetItem; an instance that is not an annex's costs that one read and nothing else).
 * - Recorded on the instance record and as an annex event in one conditional write
 *   (shared/domain/instance-notices.ts): EventBridge delivers at least once and in no particular
 *   order, so a replayed event writes nothing and a late `running` after `terminated` is ignored
 *   (state changes are ordered by EC2's event time, then by state).
 * - A state change moves the record's `state`, so `runningCount` follows within one event.
 * - With `replaceInterrupted`, an interruption warning for a spot instance starts a replacement
 *   batch of one under the same lease (same expiry, spec and tags), through the same batch launch
 *   as add-nodes, while more than 15 minutes of the lease are left and at most `maxReplacements`
 *   times. Its idempotency claim is derived from the interrupted instance's id, so a replayed
 *   warning (or the instance's own report followed by EC2's event) never launches twice.
 */
import * as z from 'zod/mini';
import type { LaunchDeps } from './annex-deps.ts';
import { provision } from './annex-launch.ts';
import { conflict, isAnnexError } from './errors.ts';
import { annexEvent } from './events.ts';
import { applyNotice } from './instance-notices.ts';
import { requestHash, toIso } from './lease.ts';
import type { Annex, InstanceNotice, InstanceRecord, InstanceState } from './model.ts';
import { DEFAULT_MAX_REPLACEMENTS, REPLACEMENT_MIN_LEASE_SECONDS } from './replacement.ts';

/** EC2 acts two minutes after it warns (the warning event carries no time of its own). */
const WARNING_LEAD_SECONDS = 120;

export const EC2_DETAIL_TYPES = {
  interruption: 'EC2 Spot Instance Interruption Warning',
  rebalance: 'EC2 Instance Rebalance Recommendation',
  stateChange: 'EC2 Instance State-change Notification',
} as const;

const instanceId = z.string().check(z.regex(/^i-[0-9a-f]{8,17}$/));
const STATES = ['pending', 'running', 'shutting-down', 'terminated', 'stopping', 'stopped'] as const;

/** The parts of an EventBridge event from `aws.ec2` this module reads (AWS's documented shapes). */
const Ec2EventSchema = z.discriminatedUnion('detail-type', [
  z.object({
    id: z.string(),
    source: z.literal('aws.ec2'),
    time: z.iso.datetime({ offset: true }),
    'detail-type': z.literal(EC2_DETAIL_TYPES.interruption),
    detail: z.object({
      'instance-id': instanceId,
      'instance-action': z.enum(['terminate', 'stop', 'hibernate']),
    }),
  }),
  z.object({
    id: z.string(),
    source: z.literal('aws.ec2'),
    time: z.iso.datetime({ offset: true }),
    'detail-type': z.literal(EC2_DETAIL_TYPES.rebalance),
    detail: z.object({ 'instance-id': instanceId }),
  }),
  z.object({
    id: z.string(),
    source: z.literal('aws.ec2'),
    time: z.iso.datetime({ offset: true }),
    'detail-type': z.literal(EC2_DETAIL_TYPES.stateChange),
    detail: z.object({ 'instance-id': instanceId, state: z.enum(STATES) }),
  }),
]);

export interface Ec2Event {
  eventId: string;
  instanceId: string;
  notice: InstanceNotice;
}

/** The event as a notice about one instance, or undefined for anything this function is not for. */
export const parseEc2Event = (raw: unknown): Ec2Event | undefined => {
  const parsed = Ec2EventSchema.safeParse(raw);
  if (!parsed.success) return undefined;
  const e = parsed.data;
  const at = toIso(new Date(e.time));
  const id = e.detail['instance-id'];
  switch (e['detail-type']) {
    case EC2_DETAIL_TYPES.interruption:
      return {
        eventId: e.id,
        instanceId: id,
        notice: {
          kind: 'interruption',
          at,
          interruption: {
            action: e.detail['instance-action'],
            time: toIso(new Date(Date.parse(at) + WARNING_LEAD_SECONDS * 1000)),
          },
        },
      };
    case EC2_DETAIL_TYPES.rebalance:
      return { eventId: e.id, instanceId: id, notice: { kind: 'rebalance', at } };
    case EC2_DETAIL_TYPES.stateChange:
      return {
        eventId: e.id,
        instanceId: id,
        notice: { kind: 'state', at, state: e.detail.state as InstanceState },
      };
  }
};

export type Ec2EventDeps = LaunchDeps;

export type ReplacementOutcome =
  | 'started'
  | 'already'
  | 'not-asked'
  | 'not-spot'
  | 'not-terminating'
  | 'annex-not-running'
  | 'lease-too-short'
  | 'limit-reached';

export interface Ec2EventOutcome {
  outcome: 'not-ours' | 'applied' | 'stale';
  annexId?: string;
  replacement?: ReplacementOutcome;
}

export const handleEc2Event = async (deps: Ec2EventDeps, event: Ec2Event): Promise<Ec2EventOutcome> => {
  const annexId = await deps.store.findInstanceAnnex(event.instanceId);
  if (annexId === undefined) return { outcome: 'not-ours' };
  const instance = await deps.store.getInstance(annexId, event.instanceId);
  if (instance === undefined) return { outcome: 'not-ours', annexId };
  const applied = await applyNotice(deps, instance, event.notice, 'ec2-event', event.notice.at);
  const fields = { annexId, instanceId: event.instanceId, eventId: event.eventId, kind: event.notice.kind };
  if (applied === 'missing') return { outcome: 'not-ours', annexId };
  deps.log.info(applied === 'applied' ? 'ec2 event recorded' : 'ec2 event already known or older', {
    ...fields,
    ...(event.notice.kind === 'state' ? { state: event.notice.state } : {}),
  });
  const outcome = applied;
  if (event.notice.kind !== 'interruption') return { outcome, annexId };
  // Whether this delivery or an earlier one (or the instance's own report) recorded the notice,
  // the replacement is decided here, idempotently: a retry after a failed launch resumes it.
  const replacement = await replaceInterrupted(deps, annexId, {
    ...instance,
    interruption: instance.interruption ?? event.notice.interruption,
  });
  deps.log.info('interruption replacement', { ...fields, replacement });
  return { outcome, annexId, replacement };
};

const claimKey = (instanceId: string): string => `replace-${instanceId}`;

/**
 * Starts (or resumes) the replacement of an interrupted spot instance: a batch of one under the
 * same lease, claimed with an idempotency key derived from the instance, launched by `provision`
 * (the add-nodes path). A lost race for the annex's version is retried on a fresh read.
 */
export const replaceInterrupted = async (
  deps: Ec2EventDeps,
  annexId: string,
  instance: InstanceRecord,
): Promise<ReplacementOutcome> => {
  const key = claimKey(instance.instanceId);
  for (let attempt = 0; ; attempt++) {
    const annex = await deps.store.getAnnex(annexId);
    if (annex === undefined) return 'annex-not-running';
    const claim = await deps.store.getAddNodesClaim(annexId, key);
    if (claim !== undefined) {
      // Replayed: resume the batch if it is still launching, else it was done once already.
      if (annex.launching?.batch === claim.batch) await provision(deps, annex);
      return 'already';
    }
    const refusal = whyNotReplace(annex, instance, deps.clock.now());
    if (refusal !== undefined) return refusal;
    // Another batch is being launched: EventBridge delivers the event again (Lambda's async retries).
    if (annex.state === 'LAUNCHING') throw conflict(`annex ${annex.name} is launching another batch; retry`);
    try {
      const started = await startReplacement(deps, annex, instance, key);
      await provision(deps, started);
      return 'started';
    } catch (e) {
      // Another writer moved the annex on (or is launching a batch): read again, a few times;
      // after that the error goes back to EventBridge, which delivers the event again.
      if (!isAnnexError(e, 'Conflict') || attempt >= 2) throw e;
    }
  }
};

const whyNotReplace = (
  annex: Annex,
  instance: InstanceRecord,
  now: Date,
): Exclude<ReplacementOutcome, 'started' | 'already'> | undefined => {
  if (annex.replaceInterrupted !== true) return 'not-asked';
  if (instance.market !== 'spot') return 'not-spot';
  if (instance.interruption?.action !== 'terminate') return 'not-terminating';
  if (annex.state !== 'RUNNING' && annex.state !== 'LAUNCHING') return 'annex-not-running';
  if (Date.parse(annex.expiresAt) - now.getTime() <= REPLACEMENT_MIN_LEASE_SECONDS * 1000) {
    return 'lease-too-short';
  }
  if ((annex.replacements ?? 0) >= (annex.maxReplacements ?? DEFAULT_MAX_REPLACEMENTS))
    return 'limit-reached';
  return undefined;
};

const startReplacement = (deps: Ec2EventDeps, annex: Annex, instance: InstanceRecord, key: string) => {
  const batch = annex.batches + 1;
  const replacements = (annex.replacements ?? 0) + 1;
  const at = toIso(deps.clock.now());
  return deps.store.startBatch(
    annex,
    {
      state: 'LAUNCHING',
      batches: batch,
      replacements,
      // A replacement keeps the annex at the size it asked for: requestedCount does not change.
      launching: {
        batch,
        count: 1,
        instanceTypes: annex.spec.instanceTypes,
        market: 'spot',
        replaces: instance.instanceId,
      },
    },
    { key, batch, requestHash: requestHash({ replaces: instance.instanceId }) },
    annexEvent(
      annex,
      at,
      'replacement-requested',
      `batch ${batch}: replacing interrupted instance ${instance.instanceId} (${replacements} of at most ${annex.maxReplacements ?? DEFAULT_MAX_REPLACEMENTS})`,
      {
        reason: 'interrupted',
        detail: { batch, replaces: instance.instanceId, replacements, expiresAt: annex.expiresAt },
      },
    ),
  );
};
