/**
 * The sweep: every minute, converge EC2, SSM, Scheduler and the lease table, whatever state a
 * failed request or a lost event left them in. It lists the cloud first (every instance tagged
 * for this stage), then the live leases (the sparse `live` index, never a table scan), and then:
 *
 * - ends expired leases, and finishes terminations that stopped half-way;
 * - repairs launches stuck in REQUESTED/LAUNCHING (adopts the batch by tag, or fails cleanly);
 * - adopts only instances Annex launched (provenance.ts): anything else carrying a live annex's
 *   tags is forged, terminated and recorded as a `forged-instance` event, never recorded;
 * - terminates instances that never reported (boot timeout) or sat idle past the annex's idle time;
 * - terminates orphans: instances tagged with an annex id whose lease is missing or ended, older
 *   than a minute (never untagged instances, never another stage's);
 * - deletes leaked credential copies and schedules, and re-creates a missing expiry schedule;
 * - keeps the table in step with EC2 (instances gone, instances launched but never recorded).
 *
 * One failing annex never stops the sweep; NotFound is success; every action is logged with its
 * reason and recorded as an event on the annex.
 */
import type { TerminateDeps } from './annex-deps.ts';
import { endAnnex } from './annex-end.ts';
import { annexEvent } from './events.ts';
import { instanceRecord } from './instance-records.ts';
import { repairStuckLaunch } from './launch-capacity.ts';
import { mapLimit } from './concurrency.ts';
import { isEnded, isLive, toIso } from './lease.ts';
import type { Annex, EndReason, InstanceRecord } from './model.ts';
import { annexCost, roundUsd } from './cost.ts';
import type {
  Compute,
  ExpirySchedules,
  LaunchSettings,
  PriceBook,
  SecretStore,
  SweepSettings,
  TaggedInstance,
} from './ports.ts';
import { cachedPriceBook, priceInstances } from './pricing.ts';
import { sortByProvenance, terminateForged } from './provenance.ts';

export interface SweepDeps extends TerminateDeps {
  compute: Pick<
    Compute,
    | 'listAnnexInstances'
    | 'terminate'
    | 'listStageInstances'
    | 'retag'
    | 'findBatchInstances'
    | 'deleteLaunchTemplate'
    | 'listLaunchTemplates'
    | 'fleetClientToken'
  >;
  secrets: Pick<SecretStore, 'deleteAnnexCredential' | 'listAnnexCredentials'>;
  /** The stack's instance profile: every instance Annex launches runs with it (provenance). */
  launch: Pick<LaunchSettings, 'instanceProfileArn'>;
  schedules: ExpirySchedules;
  sweep: SweepSettings;
  /** Prices instance records that have none yet (for cost views and budgets); absent: no pricing. */
  prices?: PriceBook;
}

export type SweepActionKind =
  | 'end-annex'
  | 'finish-termination'
  | 'repair-launch'
  | 'terminate-instance'
  | 'terminate-orphan'
  | 'terminate-forged'
  | 'record-instance-gone'
  | 'adopt-instance'
  | 'retag'
  | 'delete-parameter'
  | 'delete-launch-template'
  | 'delete-schedule'
  | 'schedule-expiry';

export interface SweepAction {
  action: SweepActionKind;
  reason: EndReason | 'launch-stuck' | 'drift' | 'leak' | 'forged';
  annexId: string;
  instanceIds?: string[];
}

export interface SweepReport {
  startedAt: string;
  finishedAt: string;
  liveAnnexes: number;
  taggedInstances: number;
  actions: SweepAction[];
  errors: number;
}

const ageSeconds = (now: Date, iso: string | undefined): number =>
  iso === undefined ? Number.POSITIVE_INFINITY : (now.getTime() - Date.parse(iso)) / 1000;

const groupBy = <T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> => {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const group = groups.get(key(item));
    if (group === undefined) groups.set(key(item), [item]);
    else group.push(item);
  }
  return groups;
};

export const sweep = async (deps: SweepDeps): Promise<SweepReport> => {
  const startedAt = deps.clock.now();
  const actions: SweepAction[] = [];
  let errors = 0;
  const act = (a: SweepAction) => {
    actions.push(a);
    deps.log.info('sweep action', { ...a });
  };
  const guarded = async (what: string, annexId: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      errors++;
      deps.log.error('sweep step failed; the next sweep retries', {
        step: what,
        annexId,
        error: (e as Error | undefined)?.name,
        detail: (e as Error | undefined)?.message,
      });
    }
  };

  // EC2 first: an instance launched after the lease listing can then never be mistaken for an orphan.
  const tagged = await deps.compute.listStageInstances(deps.settings.stage);
  const [live, liveInstances] = await Promise.all([
    deps.store.listLiveAnnexes(),
    deps.store.listLiveInstances(),
  ]);
  const liveById = new Map(live.map((a) => [a.id, a]));
  // Instances launched since the last sweep get their price (spot prices asked once per type and zone).
  if (deps.prices !== undefined) {
    const book = cachedPriceBook(deps.prices);
    await guarded('prices', '*', async () => {
      await priceInstances(deps, book, liveInstances, deps.sweep.concurrency);
    });
  }
  const taggedByAnnex = groupBy(tagged, (i) => i.annexId);
  const recordsByAnnex = groupBy(liveInstances, (r) => r.annexId);

  // The listings decide which leases need work; in the steady state that is none, and the sweep
  // reads O(pages), not O(leases). A lease that does is re-read consistently before anything is
  // done (the indexes are eventually consistent and may predate an extension).
  const due = live.filter((listed) =>
    needsAttention(
      deps.sweep,
      listed,
      recordsByAnnex.get(listed.id) ?? [],
      taggedByAnnex.get(listed.id) ?? [],
      startedAt,
    ),
  );
  await mapLimit(due, deps.sweep.concurrency, (listed) =>
    guarded('lease', listed.id, async () => {
      const annex = await deps.store.getAnnex(listed.id);
      if (annex === undefined || isEnded(annex.state)) return;
      await checkLease(deps, annex, taggedByAnnex.get(annex.id) ?? [], act);
    }),
  );

  const orphans = tagged.filter(
    (i) => !liveById.has(i.annexId) && ageSeconds(startedAt, i.launchedAt) >= deps.sweep.orphanMinAgeSeconds,
  );
  await mapLimit([...groupBy(orphans, (i) => i.annexId)], deps.sweep.concurrency, ([annexId, instances]) =>
    guarded('orphans', annexId, () => terminateOrphans(deps, annexId, instances, act)),
  );

  await guarded('parameters', '*', () => deleteLeakedParameters(deps, liveById, act));
  await guarded('launch-templates', '*', () => deleteLeakedLaunchTemplates(deps, liveById, act));
  await guarded('schedules', '*', () => reconcileSchedules(deps, live, liveById, act));

  return {
    startedAt: toIso(startedAt),
    finishedAt: toIso(deps.clock.now()),
    liveAnnexes: live.length,
    taggedInstances: tagged.length,
    actions,
    errors,
  };
};

/** What the sweep would do to a lease's instances, given its records and what EC2 runs. */
interface InstancePlan {
  /** Running instances to terminate, by reason (boot-timeout, idle). */
  byReason: Map<EndReason, string[]>;
  /** Recorded as live, gone from EC2: record them terminated. */
  gone: string[];
  /** Recorded as pending, running in EC2: record them running. */
  started: string[];
  /** Running under the annex's tag, never recorded (outside a pending batch): adopt them if Annex launched them. */
  untracked: TaggedInstance[];
  /** Tagged with an expiry other than the lease's: retag them. */
  stale: TaggedInstance[];
}

const planInstances = (
  settings: SweepSettings,
  annex: Annex,
  records: InstanceRecord[],
  tagged: TaggedInstance[],
  now: Date,
): InstancePlan => {
  const inEc2 = new Map(tagged.map((i) => [i.instanceId, i]));
  const recorded = new Set(records.map((r) => r.instanceId));
  const plan: InstancePlan = { byReason: new Map(), gone: [], started: [], untracked: [], stale: [] };
  const terminating = new Set<string>();
  for (const r of records) {
    if (r.state === 'terminated') continue;
    const running = inEc2.get(r.instanceId);
    if (running === undefined) {
      // EC2 no longer runs it (it powered itself off, or was ended elsewhere).
      if (ageSeconds(now, r.launchedAt) >= settings.orphanMinAgeSeconds) plan.gone.push(r.instanceId);
      continue;
    }
    const reason = enforcementReason(r, annex, now, settings);
    if (reason !== undefined) {
      plan.byReason.set(reason, [...(plan.byReason.get(reason) ?? []), r.instanceId]);
      terminating.add(r.instanceId);
    } else if (r.state === 'pending' && running.state === 'running') {
      // Launched as pending; EC2 now runs it (on AWS the state-change events say so sooner).
      plan.started.push(r.instanceId);
    }
  }
  for (const i of tagged) {
    if (terminating.has(i.instanceId)) continue;
    if (
      !recorded.has(i.instanceId) &&
      annex.launching?.batch !== i.batch &&
      ageSeconds(now, i.launchedAt) >= settings.orphanMinAgeSeconds
    ) {
      plan.untracked.push(i);
    }
    if (i.expiresAtTag !== annex.expiresAt) plan.stale.push(i);
  }
  return plan;
};

const isEmpty = (plan: InstancePlan): boolean =>
  plan.byReason.size === 0 &&
  plan.gone.length === 0 &&
  plan.started.length === 0 &&
  plan.untracked.length === 0 &&
  plan.stale.length === 0;

/**
 * Whether the listed lease may need an action: the same rules as checkLease, evaluated on the
 * listings alone (a false positive only costs a consistent read).
 */
const needsAttention = (
  settings: SweepSettings,
  annex: Annex,
  records: InstanceRecord[],
  tagged: TaggedInstance[],
  now: Date,
): boolean => {
  if (Date.parse(annex.expiresAt) <= now.getTime()) return true;
  const idleFor = ageSeconds(now, annex.updatedAt);
  if (annex.state === 'TERMINATING') return idleFor >= settings.orphanMinAgeSeconds;
  if ((annex.state === 'REQUESTED' || annex.state === 'LAUNCHING') && idleFor >= settings.stuckAfterSeconds) {
    return true;
  }
  if (annex.state !== 'RUNNING' && annex.state !== 'LAUNCHING') return false;
  // A budget needs every instance the annex had (terminated ones too): one Query per budgeted annex.
  if (annex.maxSpend !== undefined) return true;
  return !isEmpty(planInstances(settings, annex, records, tagged, now));
};

const checkLease = async (
  deps: SweepDeps,
  annex: Annex,
  tagged: TaggedInstance[],
  act: (a: SweepAction) => void,
): Promise<void> => {
  const now = deps.clock.now();
  if (Date.parse(annex.expiresAt) <= now.getTime()) {
    const reason = annex.state === 'TERMINATING' ? (annex.endReason ?? 'expired') : 'expired';
    await endAnnex(
      deps,
      annex,
      'TERMINATED',
      reason,
      annexEvent(annex, now, 'expired', `lease ended at ${annex.expiresAt}; ended by the sweep`, { reason }),
    );
    act({
      action: 'end-annex',
      reason,
      annexId: annex.id,
      instanceIds: tagged.map((i) => i.instanceId),
    });
    return;
  }
  const idleFor = ageSeconds(now, annex.updatedAt);
  if (annex.state === 'TERMINATING' && idleFor >= deps.sweep.orphanMinAgeSeconds) {
    const reason = annex.endReason ?? 'user';
    await endAnnex(
      deps,
      annex,
      'TERMINATED',
      reason,
      annexEvent(
        annex,
        now,
        'termination-resumed',
        'termination had stopped half-way; finished by the sweep',
        {
          reason,
        },
      ),
    );
    act({ action: 'finish-termination', reason, annexId: annex.id });
    return;
  }
  if (
    (annex.state === 'REQUESTED' || annex.state === 'LAUNCHING') &&
    idleFor >= deps.sweep.stuckAfterSeconds
  ) {
    const { outcome } = await repairStuckLaunch(deps, annex);
    act({ action: 'repair-launch', reason: 'launch-stuck', annexId: annex.id });
    if (outcome === 'failed') return;
  }
  if (annex.state !== 'RUNNING' && annex.state !== 'LAUNCHING') return;
  if (await overBudget(deps, annex, tagged, act)) return;
  await checkInstances(deps, annex, tagged, act);
};

/** Ends the annex like an expiry, with the reason `budget`, once its estimated spend reaches maxSpend. */
const overBudget = async (
  deps: SweepDeps,
  annex: Annex,
  tagged: TaggedInstance[],
  act: (a: SweepAction) => void,
): Promise<boolean> => {
  if (annex.maxSpend === undefined) return false;
  const now = deps.clock.now();
  const { spendSoFarUsd } = annexCost(await deps.store.listInstances(annex.id), now);
  if (spendSoFarUsd < annex.maxSpend) return false;
  await endAnnex(
    deps,
    annex,
    'TERMINATED',
    'budget',
    annexEvent(
      annex,
      now,
      'budget-reached',
      `estimated spend ${roundUsd(spendSoFarUsd)} USD reached maxSpend ${annex.maxSpend} USD; ended by the sweep`,
      { reason: 'budget', detail: { spendSoFarUsd, maxSpend: annex.maxSpend } },
    ),
  );
  act({
    action: 'end-annex',
    reason: 'budget',
    annexId: annex.id,
    instanceIds: tagged.map((i) => i.instanceId),
  });
  return true;
};

/** Boot timeout, idleness, and keeping the instance records in step with EC2. */
const checkInstances = async (
  deps: SweepDeps,
  annex: Annex,
  tagged: TaggedInstance[],
  act: (a: SweepAction) => void,
): Promise<void> => {
  const now = deps.clock.now();
  const records = await deps.store.listInstances(annex.id);
  const { byReason, gone, started, untracked, stale } = planInstances(
    deps.sweep,
    annex,
    records,
    tagged,
    now,
  );
  for (const [reason, ids] of byReason) {
    await deps.compute.terminate(ids);
    await deps.store.setInstanceStates(annex.id, ids, 'terminated', toIso(now));
    await deps.store.appendEvent(
      annexEvent(
        annex,
        now,
        'instances-terminated',
        reason === 'idle'
          ? `${ids.length} instance(s) idle for more than ${annex.idleSeconds} s`
          : `${ids.length} instance(s) never reported within ${deps.sweep.bootGraceSeconds} s of launch`,
        { reason, detail: { instanceIds: ids } },
      ),
    );
    act({ action: 'terminate-instance', reason, annexId: annex.id, instanceIds: ids });
  }
  if (started.length > 0) await deps.store.setInstanceStates(annex.id, started, 'running', toIso(now));
  if (gone.length > 0) {
    await deps.store.setInstanceStates(annex.id, gone, 'terminated', toIso(now));
    await deps.store.appendEvent(
      annexEvent(annex, now, 'instances-gone', `${gone.length} instance(s) no longer running in EC2`, {
        detail: { instanceIds: gone },
      }),
    );
    act({ action: 'record-instance-gone', reason: 'drift', annexId: annex.id, instanceIds: gone });
  }
  if (untracked.length > 0) {
    const { genuine, forged } = await sortByProvenance(deps, annex, untracked);
    if (forged.length > 0) {
      await terminateForged(deps, annex, forged, now);
      act({
        action: 'terminate-forged',
        reason: 'forged',
        annexId: annex.id,
        instanceIds: forged.map((f) => f.instance.instanceId),
      });
    }
    if (genuine.length > 0) {
      await deps.store.putInstances(genuine.map((i) => instanceRecord(annex, i, toIso(now))));
      act({
        action: 'adopt-instance',
        reason: 'drift',
        annexId: annex.id,
        instanceIds: genuine.map((i) => i.instanceId),
      });
    }
  }
  // An extension whose retagging did not finish: the tags follow the lease.
  if (stale.length > 0) {
    await deps.compute.retag(
      stale.map((i) => i.instanceId),
      { 'annex:expires-at': annex.expiresAt },
    );
    act({ action: 'retag', reason: 'drift', annexId: annex.id, instanceIds: stale.map((i) => i.instanceId) });
  }
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

/** Orphans: the live index says no lease; a consistent read confirms before anything is terminated. */
const terminateOrphans = async (
  deps: SweepDeps,
  annexId: string,
  instances: TaggedInstance[],
  act: (a: SweepAction) => void,
): Promise<void> => {
  const annex = await deps.store.getAnnex(annexId);
  if (annex !== undefined && isLive(annex.state)) return; // created after the listing: not an orphan
  const ids = instances.map((i) => i.instanceId);
  await deps.compute.terminate(ids);
  if (annex !== undefined) {
    const now = toIso(deps.clock.now());
    const known = new Set((await deps.store.listInstances(annexId)).map((r) => r.instanceId));
    const untracked = instances.filter((i) => !known.has(i.instanceId));
    if (untracked.length > 0) {
      await deps.store.putInstances(
        untracked.map((i) => ({ ...instanceRecord(annex, i, now), state: 'terminated' as const })),
      );
    }
    await deps.store.setInstanceStates(annexId, ids, 'terminated', now);
    await deps.store.appendEvent(
      annexEvent(
        annex,
        now,
        'orphans-terminated',
        `${ids.length} instance(s) still running after the annex ended`,
        {
          reason: 'orphan',
          detail: { instanceIds: ids },
        },
      ),
    );
  }
  act({ action: 'terminate-orphan', reason: 'orphan', annexId, instanceIds: ids });
};

const isReallyEnded = async (deps: SweepDeps, annexId: string): Promise<boolean> => {
  const annex = await deps.store.getAnnex(annexId);
  return annex === undefined || isEnded(annex.state);
};

const deleteLeakedParameters = async (
  deps: SweepDeps,
  liveById: Map<string, Annex>,
  act: (a: SweepAction) => void,
): Promise<void> => {
  const now = deps.clock.now();
  const candidates = (await deps.secrets.listAnnexCredentials()).filter(
    (p) => !liveById.has(p.annexId) && ageSeconds(now, p.lastModified) >= deps.sweep.orphanMinAgeSeconds,
  );
  await mapLimit(candidates, deps.sweep.concurrency, async ({ annexId }) => {
    if (!(await isReallyEnded(deps, annexId))) return;
    await deps.secrets.deleteAnnexCredential(annexId);
    act({ action: 'delete-parameter', reason: 'leak', annexId });
  });
};

/** Launch templates of ended or unknown annexes (a fleet launch made them; ending missed them). */
const deleteLeakedLaunchTemplates = async (
  deps: SweepDeps,
  liveById: Map<string, Annex>,
  act: (a: SweepAction) => void,
): Promise<void> => {
  const now = deps.clock.now();
  const candidates = (await deps.compute.listLaunchTemplates()).filter(
    (t) => !liveById.has(t.annexId) && ageSeconds(now, t.createdAt) >= deps.sweep.orphanMinAgeSeconds,
  );
  await mapLimit(candidates, deps.sweep.concurrency, async ({ annexId }) => {
    if (!(await isReallyEnded(deps, annexId))) return;
    await deps.compute.deleteLaunchTemplate(annexId);
    act({ action: 'delete-launch-template', reason: 'leak', annexId });
  });
};

/** Schedules of ended annexes and stale expiries go; a live lease without its schedule gets one. */
const reconcileSchedules = async (
  deps: SweepDeps,
  live: Annex[],
  liveById: Map<string, Annex>,
  act: (a: SweepAction) => void,
): Promise<void> => {
  const existing = await deps.schedules.list();
  const fireSecond = (iso: string) => Math.ceil(Date.parse(iso) / 1000);
  const scheduled = new Set(existing.map((s) => `${s.annexId}@${fireSecond(s.fireAt)}`));
  await mapLimit(existing, deps.sweep.concurrency, async (s) => {
    const listed = liveById.get(s.annexId);
    if (listed !== undefined && fireSecond(listed.expiresAt) === fireSecond(s.fireAt)) return;
    // About to delete: confirm with a consistent read (the index lags, and may predate an extension).
    const annex = await deps.store.getAnnex(s.annexId);
    if (annex !== undefined && isLive(annex.state) && fireSecond(annex.expiresAt) === fireSecond(s.fireAt))
      return;
    await deps.schedules.cancel(s.annexId, s.fireAt);
    act({ action: 'delete-schedule', reason: 'leak', annexId: s.annexId });
  });
  const now = deps.clock.now().getTime();
  const missing = live.filter(
    (a) =>
      a.state !== 'TERMINATING' &&
      Date.parse(a.expiresAt) > now &&
      !scheduled.has(`${a.id}@${fireSecond(a.expiresAt)}`),
  );
  await mapLimit(missing, deps.sweep.concurrency, async (listed) => {
    // The listing is from the start of the sweep: an annex ended since must not get one back.
    const a = await deps.store.getAnnex(listed.id);
    if (a === undefined || !isLive(a.state) || a.state === 'TERMINATING' || Date.parse(a.expiresAt) <= now)
      return;
    await deps.schedules.schedule(a.id, a.expiresAt);
    act({ action: 'schedule-expiry', reason: 'drift', annexId: a.id });
  });
};
