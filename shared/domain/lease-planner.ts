/**
 * The sweep's rules, once, as pure functions: what a lease needs, given the lease, its instance
 * records, what EC2 runs under its tag, the time and the sweep's thresholds. The sweep plans on
 * the cheap listings to choose which leases to re-read consistently (an empty plan: nothing to
 * do), and plans again on the consistent read to decide what to do. Nothing here reads or writes.
 */
import type { Annex, EndReason, InstanceRecord } from './model.ts';
import type { SweepSettings, TaggedInstance } from './ports.ts';

/** The sweep's grace periods, each with its own name (defaults: the orphan age, as before they were split). */
export interface Graces {
  /** Untracked and orphaned instances, leaked parameters and templates younger than this are left alone. */
  orphanMinAgeSeconds: number;
  /** A TERMINATING lease untouched for this long stopped half-way: the sweep finishes it. */
  terminationStalledSeconds: number;
  /** A live record whose instance EC2 no longer lists, launched at least this long ago, is recorded gone. */
  instanceGoneSeconds: number;
  /** With the table unreadable, an instance whose `annex:expires-at` tag is this far past is terminated. */
  outageExpiryGraceSeconds: number;
}

/** Five minutes: an extension retags after it writes the lease, and clocks drift. */
export const DEFAULT_OUTAGE_EXPIRY_GRACE_SECONDS = 300;

export const gracesOf = (s: SweepSettings): Graces => ({
  orphanMinAgeSeconds: s.orphanMinAgeSeconds,
  terminationStalledSeconds: s.terminationStalledSeconds ?? s.orphanMinAgeSeconds,
  instanceGoneSeconds: s.instanceGoneSeconds ?? s.orphanMinAgeSeconds,
  outageExpiryGraceSeconds: s.outageExpiryGraceSeconds ?? DEFAULT_OUTAGE_EXPIRY_GRACE_SECONDS,
});

/** What to do to the lease itself; `then` says whether its instances are looked at afterwards. */
export type LeaseAction =
  | { kind: 'end-annex'; reason: EndReason }
  | { kind: 'finish-termination'; reason: EndReason }
  | { kind: 'repair-launch' }
  | { kind: 'check-budget' };

/** What to do to a lease's instances. */
export type InstanceAction =
  /** Running instances to terminate (boot-timeout, idle). */
  | { kind: 'terminate'; reason: EndReason; instanceIds: string[] }
  /** Recorded as pending, running in EC2: record them running. */
  | { kind: 'record-started'; instanceIds: string[] }
  /** Recorded as live, gone from EC2: record them terminated. */
  | { kind: 'record-gone'; instanceIds: string[] }
  /** Running under the annex's tag, never recorded (outside a pending batch): adopt them if Annex launched them. */
  | { kind: 'adopt'; instances: TaggedInstance[] }
  /** Tagged with an expiry other than the lease's: retag them. */
  | { kind: 'retag'; instances: TaggedInstance[] };

export type PlannedAction = LeaseAction | InstanceAction;

export const ageSeconds = (now: Date, iso: string | undefined): number =>
  iso === undefined ? Number.POSITIVE_INFINITY : (now.getTime() - Date.parse(iso)) / 1000;

export const isExpired = (annex: Pick<Annex, 'expiresAt'>, now: Date): boolean =>
  Date.parse(annex.expiresAt) <= now.getTime();

/**
 * The lease-level step: end an expired lease, finish a stalled termination, repair a stuck
 * launch. `instances` is false when nothing more is to be done (the lease ends, or is not one
 * whose instances the sweep enforces); a repair that fails the launch also stops there.
 */
export const planLease = (
  annex: Annex,
  now: Date,
  settings: SweepSettings,
): { actions: LeaseAction[]; instances: boolean } => {
  const graces = gracesOf(settings);
  if (isExpired(annex, now)) {
    const reason = annex.state === 'TERMINATING' ? (annex.endReason ?? 'expired') : 'expired';
    return { actions: [{ kind: 'end-annex', reason }], instances: false };
  }
  const idleFor = ageSeconds(now, annex.updatedAt);
  if (annex.state === 'TERMINATING') {
    const stalled = idleFor >= graces.terminationStalledSeconds;
    return {
      actions: stalled ? [{ kind: 'finish-termination', reason: annex.endReason ?? 'user' }] : [],
      instances: false,
    };
  }
  const actions: LeaseAction[] = [];
  if ((annex.state === 'REQUESTED' || annex.state === 'LAUNCHING') && idleFor >= settings.stuckAfterSeconds) {
    actions.push({ kind: 'repair-launch' });
  }
  const enforced = annex.state === 'RUNNING' || annex.state === 'LAUNCHING';
  // A budget needs every instance the annex had (terminated ones too): one Query per budgeted annex.
  if (enforced && annex.maxSpend !== undefined) actions.push({ kind: 'check-budget' });
  return { actions, instances: enforced };
};

/** Boot timeout, idleness, and keeping the instance records and tags in step with EC2. */
export const planInstances = (
  annex: Annex,
  records: readonly InstanceRecord[],
  tagged: readonly TaggedInstance[],
  now: Date,
  settings: SweepSettings,
): InstanceAction[] => {
  const graces = gracesOf(settings);
  const inEc2 = new Map(tagged.map((i) => [i.instanceId, i]));
  const recorded = new Set(records.map((r) => r.instanceId));
  const byReason = new Map<EndReason, string[]>();
  const gone: string[] = [];
  const started: string[] = [];
  const terminating = new Set<string>();
  for (const r of records) {
    if (r.state === 'terminated') continue;
    const running = inEc2.get(r.instanceId);
    if (running === undefined) {
      // EC2 no longer runs it (it powered itself off, or was ended elsewhere).
      if (ageSeconds(now, r.launchedAt) >= graces.instanceGoneSeconds) gone.push(r.instanceId);
      continue;
    }
    const reason = enforcementReason(r, annex, now, settings);
    if (reason !== undefined) {
      byReason.set(reason, [...(byReason.get(reason) ?? []), r.instanceId]);
      terminating.add(r.instanceId);
    } else if (r.state === 'pending' && running.state === 'running') {
      // Launched as pending; EC2 now runs it (on AWS the state-change events say so sooner).
      started.push(r.instanceId);
    }
  }
  const untracked: TaggedInstance[] = [];
  const stale: TaggedInstance[] = [];
  for (const i of tagged) {
    if (terminating.has(i.instanceId)) continue;
    if (
      !recorded.has(i.instanceId) &&
      annex.launching?.batch !== i.batch &&
      ageSeconds(now, i.launchedAt) >= graces.orphanMinAgeSeconds
    ) {
      untracked.push(i);
    }
    if (i.expiresAtTag !== annex.expiresAt) stale.push(i);
  }
  const actions: InstanceAction[] = [...byReason].map(([reason, instanceIds]) => ({
    kind: 'terminate' as const,
    reason,
    instanceIds,
  }));
  if (started.length > 0) actions.push({ kind: 'record-started', instanceIds: started });
  if (gone.length > 0) actions.push({ kind: 'record-gone', instanceIds: gone });
  if (untracked.length > 0) actions.push({ kind: 'adopt', instances: untracked });
  if (stale.length > 0) actions.push({ kind: 'retag', instances: stale });
  return actions;
};

/**
 * Everything the lease needs, by the rules above: the sweep's test for a consistent re-read
 * (on the listings) and the whole of what it then does (on the consistent read).
 */
export const plan = (
  annex: Annex,
  records: readonly InstanceRecord[],
  tagged: readonly TaggedInstance[],
  now: Date,
  settings: SweepSettings,
): PlannedAction[] => {
  const lease = planLease(annex, now, settings);
  if (!lease.instances) return lease.actions;
  return [...lease.actions, ...planInstances(annex, records, tagged, now, settings)];
};

/**
 * The table-outage fallback: with the lease table unreadable, the only expiry the sweep can know
 * is the `annex:expires-at` tag. Instances of this stage (the listing holds no other) whose tag
 * is more than the grace past are to be terminated; untagged-expiry instances are left alone.
 */
export const planOutage = (
  tagged: readonly TaggedInstance[],
  now: Date,
  settings: SweepSettings,
): TaggedInstance[] => {
  const grace = gracesOf(settings).outageExpiryGraceSeconds;
  return tagged.filter((i) => {
    if (i.expiresAtTag === undefined) return false;
    const expiresAt = Date.parse(i.expiresAtTag);
    return !Number.isNaN(expiresAt) && now.getTime() >= expiresAt + grace * 1000;
  });
};

const enforcementReason = (
  r: InstanceRecord,
  annex: Annex,
  now: Date,
  settings: SweepSettings,
): EndReason | undefined => {
  if (r.lastHeartbeatAt === undefined) {
    return ageSeconds(now, r.launchedAt) >= settings.bootGraceSeconds ? 'boot-timeout' : undefined;
  }
  if (
    (r.claimedSlots ?? 0) === 0 &&
    r.idleSince !== undefined &&
    ageSeconds(now, r.idleSince) >= annex.idleSeconds
  ) {
    return 'idle';
  }
  return undefined;
};
