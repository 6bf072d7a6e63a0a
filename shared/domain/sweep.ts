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
 * The rules are lease-planner.ts's, once: planned on the listings to choose which leases to
 * re-read, planned again on the consistent read to act. Every step is guarded (a failure is
 * logged and counted, the others run); enforcement runs first and clean-up only while the
 * invocation has time left. With the table unreadable, instances past their `annex:expires-at`
 * tag (plus a grace) are terminated from the EC2 listing alone.
 *
 * One failing annex never stops the sweep; NotFound is success; every action is logged with its
 * reason and recorded as an event on the annex.
 */
import { endAnnex, instanceRecord, repairStuckLaunch, type TerminateDeps } from './annexes.ts';
import { mapLimit } from './concurrency.ts';
import { isEnded, isLive, toIso } from './lease.ts';
import {
  ageSeconds,
  gracesOf,
  plan,
  planInstances,
  planLease,
  planOutage,
  type InstanceAction,
} from './lease-planner.ts';
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
  /** Milliseconds the invocation has left (the Lambda's remaining time); absent: no time budget. */
  remainingMs?: () => number;
}

export type SweepActionKind =
  | 'end-annex'
  | 'finish-termination'
  | 'repair-launch'
  | 'terminate-instance'
  | 'terminate-orphan'
  | 'terminate-forged'
  | 'terminate-past-expiry'
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
  /** The steps that failed (logged with their error; the next sweep retries them). */
  failedSteps: string[];
  /** Clean-up steps left for the next sweep: the invocation was running out of time. */
  skippedSteps: string[];
  /** The lease table could not be read: only the expiry tags were enforced. */
  tableUnavailable: boolean;
}

/** Clean-up (leaked parameters, templates, schedules) starts only with at least this much time left. */
export const CLEANUP_MIN_REMAINING_MS = 10_000;

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
  const failedSteps: string[] = [];
  const skippedSteps: string[] = [];
  const act = (a: SweepAction) => {
    actions.push(a);
    deps.log.info('sweep action', { ...a });
  };
  const guarded = async (what: string, annexId: string, fn: () => Promise<void>): Promise<boolean> => {
    try {
      await fn();
      return true;
    } catch (e) {
      failedSteps.push(what);
      deps.log.error('sweep step failed; the next sweep retries', {
        step: what,
        annexId,
        error: (e as Error | undefined)?.name,
        detail: (e as Error | undefined)?.message,
      });
      return false;
    }
  };
  const report = (liveAnnexes: number, taggedInstances: number, tableUnavailable: boolean): SweepReport => ({
    startedAt: toIso(startedAt),
    finishedAt: toIso(deps.clock.now()),
    liveAnnexes,
    taggedInstances,
    actions,
    errors: failedSteps.length,
    failedSteps,
    skippedSteps,
    tableUnavailable,
  });

  // EC2 first: an instance launched after the lease listing can then never be mistaken for an orphan.
  // Without it, leases are still ended (endAnnex lists their instances itself); nothing else about
  // instances is decided.
  let tagged: TaggedInstance[] | undefined;
  await guarded('list-instances', '*', async () => {
    tagged = await deps.compute.listStageInstances(deps.settings.stage);
  });
  let live: Annex[] = [];
  let liveInstances: InstanceRecord[] = [];
  const tableRead = await guarded('list-leases', '*', async () => {
    [live, liveInstances] = await Promise.all([deps.store.listLiveAnnexes(), deps.store.listLiveInstances()]);
  });
  if (!tableRead) {
    if (tagged !== undefined) await enforceExpiryTags(deps, tagged, startedAt, guarded, act);
    return report(0, tagged?.length ?? 0, true);
  }
  const liveById = new Map(live.map((a) => [a.id, a]));
  // Instances launched since the last sweep get their price (spot prices asked once per type and zone).
  if (deps.prices !== undefined) {
    const book = cachedPriceBook(deps.prices);
    await guarded('prices', '*', async () => {
      await priceInstances(deps, book, liveInstances, deps.sweep.concurrency);
    });
  }
  const listing = tagged;
  const taggedByAnnex = groupBy(listing ?? [], (i) => i.annexId);
  const recordsByAnnex = groupBy(liveInstances, (r) => r.annexId);

  // The listings decide which leases need work; in the steady state that is none, and the sweep
  // reads O(pages), not O(leases). A lease that does is re-read consistently before anything is
  // done (the indexes are eventually consistent and may predate an extension).
  const due = live.filter(
    (listed) =>
      plan(
        listed,
        recordsByAnnex.get(listed.id) ?? [],
        taggedByAnnex.get(listed.id) ?? [],
        startedAt,
        deps.sweep,
      ).length > 0,
  );
  await mapLimit(due, deps.sweep.concurrency, (listed) =>
    guarded('lease', listed.id, async () => {
      const annex = await deps.store.getAnnex(listed.id);
      if (annex === undefined || isEnded(annex.state)) return;
      await checkLease(deps, annex, listing && (taggedByAnnex.get(annex.id) ?? []), act);
    }),
  );

  if (listing !== undefined) {
    const orphanAge = gracesOf(deps.sweep).orphanMinAgeSeconds;
    const orphans = listing.filter(
      (i) => !liveById.has(i.annexId) && ageSeconds(startedAt, i.launchedAt) >= orphanAge,
    );
    await mapLimit([...groupBy(orphans, (i) => i.annexId)], deps.sweep.concurrency, ([annexId, instances]) =>
      guarded('orphans', annexId, () => terminateOrphans(deps, annexId, instances, act)),
    );
  }

  // Clean-up last, and only while there is time: enforcement above must never wait for it.
  const cleanup: [string, () => Promise<void>][] = [
    ['parameters', () => deleteLeakedParameters(deps, liveById, act)],
    ['launch-templates', () => deleteLeakedLaunchTemplates(deps, liveById, act)],
    ['schedules', () => reconcileSchedules(deps, live, liveById, act)],
  ];
  for (const [step, fn] of cleanup) {
    if (deps.remainingMs !== undefined && deps.remainingMs() < CLEANUP_MIN_REMAINING_MS) {
      skippedSteps.push(step);
      deps.log.warn('sweep step skipped: out of time; the next sweep runs it', { step });
      continue;
    }
    await guarded(step, '*', fn);
  }

  return report(live.length, listing?.length ?? 0, false);
};

/**
 * The table-outage fallback: the table cannot say what a lease is, but every instance carries its
 * expiry. Those past it by more than the grace are terminated (no event: the table is down).
 */
const enforceExpiryTags = async (
  deps: SweepDeps,
  tagged: TaggedInstance[],
  now: Date,
  guarded: (what: string, annexId: string, fn: () => Promise<void>) => Promise<boolean>,
  act: (a: SweepAction) => void,
): Promise<void> => {
  const due = groupBy(planOutage(tagged, now, deps.sweep), (i) => i.annexId);
  await mapLimit([...due], deps.sweep.concurrency, ([annexId, instances]) =>
    guarded('expiry-tags', annexId, async () => {
      const ids = instances.map((i) => i.instanceId);
      await deps.compute.terminate(ids);
      act({ action: 'terminate-past-expiry', reason: 'expired', annexId, instanceIds: ids });
    }),
  );
};

/** Acts on the consistent read: the lease step, then (unless it ended the lease) its instances. */
const checkLease = async (
  deps: SweepDeps,
  annex: Annex,
  tagged: TaggedInstance[] | undefined,
  act: (a: SweepAction) => void,
): Promise<void> => {
  const now = deps.clock.now();
  const lease = planLease(annex, now, deps.sweep);
  for (const action of lease.actions) {
    switch (action.kind) {
      case 'end-annex':
        await endAnnex(
          deps,
          annex,
          'TERMINATED',
          action.reason,
          {
            annexId: annex.id,
            at: toIso(now),
            type: 'expired',
            message: `lease ended at ${annex.expiresAt}; ended by the sweep`,
            reason: action.reason,
          },
          tagged,
        );
        act({
          action: 'end-annex',
          reason: action.reason,
          annexId: annex.id,
          instanceIds: (tagged ?? []).map((i) => i.instanceId),
        });
        return;
      case 'finish-termination':
        await endAnnex(
          deps,
          annex,
          'TERMINATED',
          action.reason,
          {
            annexId: annex.id,
            at: toIso(now),
            type: 'termination-resumed',
            message: 'termination had stopped half-way; finished by the sweep',
            reason: action.reason,
          },
          tagged,
        );
        act({ action: 'finish-termination', reason: action.reason, annexId: annex.id });
        return;
      case 'repair-launch': {
        const { outcome } = await repairStuckLaunch(deps, annex);
        act({ action: 'repair-launch', reason: 'launch-stuck', annexId: annex.id });
        if (outcome === 'failed') return;
        break;
      }
      case 'check-budget':
        if (await overBudget(deps, annex, tagged, act)) return;
        break;
    }
  }
  // Without the EC2 listing nothing is known about the instances: the next sweep looks.
  if (!lease.instances || tagged === undefined) return;
  const records = await deps.store.listInstances(annex.id);
  for (const action of planInstances(annex, records, tagged, now, deps.sweep)) {
    await applyInstanceAction(deps, annex, action, now, act);
  }
};

/** Ends the annex like an expiry, with the reason `budget`, once its estimated spend reaches maxSpend. */
const overBudget = async (
  deps: SweepDeps,
  annex: Annex,
  tagged: TaggedInstance[] | undefined,
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
    {
      annexId: annex.id,
      at: toIso(now),
      type: 'budget-reached',
      message: `estimated spend ${roundUsd(spendSoFarUsd)} USD reached maxSpend ${annex.maxSpend} USD; ended by the sweep`,
      reason: 'budget',
      detail: { spendSoFarUsd, maxSpend: annex.maxSpend },
    },
    tagged,
  );
  act({
    action: 'end-annex',
    reason: 'budget',
    annexId: annex.id,
    instanceIds: (tagged ?? []).map((i) => i.instanceId),
  });
  return true;
};

/** Boot timeout, idleness, and keeping the instance records in step with EC2, as planned. */
const applyInstanceAction = async (
  deps: SweepDeps,
  annex: Annex,
  action: InstanceAction,
  now: Date,
  act: (a: SweepAction) => void,
): Promise<void> => {
  switch (action.kind) {
    case 'terminate': {
      const { reason, instanceIds: ids } = action;
      await deps.compute.terminate(ids);
      await deps.store.setInstanceStates(annex.id, ids, 'terminated', toIso(now));
      await deps.store.appendEvent({
        annexId: annex.id,
        at: toIso(now),
        type: 'instances-terminated',
        message:
          reason === 'idle'
            ? `${ids.length} instance(s) idle for more than ${annex.idleSeconds} s`
            : `${ids.length} instance(s) never reported within ${deps.sweep.bootGraceSeconds} s of launch`,
        reason,
        detail: { instanceIds: ids },
      });
      act({ action: 'terminate-instance', reason, annexId: annex.id, instanceIds: ids });
      return;
    }
    case 'record-started':
      await deps.store.setInstanceStates(annex.id, action.instanceIds, 'running', toIso(now));
      return;
    case 'record-gone': {
      const gone = action.instanceIds;
      await deps.store.setInstanceStates(annex.id, gone, 'terminated', toIso(now));
      await deps.store.appendEvent({
        annexId: annex.id,
        at: toIso(now),
        type: 'instances-gone',
        message: `${gone.length} instance(s) no longer running in EC2`,
        detail: { instanceIds: gone },
      });
      act({ action: 'record-instance-gone', reason: 'drift', annexId: annex.id, instanceIds: gone });
      return;
    }
    case 'adopt': {
      const { genuine, forged } = await sortByProvenance(deps, annex, action.instances);
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
      return;
    }
    case 'retag': {
      // An extension whose retagging did not finish: the tags follow the lease.
      const ids = action.instances.map((i) => i.instanceId);
      await deps.compute.retag(ids, { 'annex:expires-at': annex.expiresAt });
      act({ action: 'retag', reason: 'drift', annexId: annex.id, instanceIds: ids });
      return;
    }
  }
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
    await deps.store.appendEvent({
      annexId,
      at: now,
      type: 'orphans-terminated',
      message: `${ids.length} instance(s) still running after the annex ended`,
      reason: 'orphan',
      detail: { instanceIds: ids },
    });
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
    (p) =>
      !liveById.has(p.annexId) && ageSeconds(now, p.lastModified) >= gracesOf(deps.sweep).orphanMinAgeSeconds,
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
    (t) =>
      !liveById.has(t.annexId) && ageSeconds(now, t.createdAt) >= gracesOf(deps.sweep).orphanMinAgeSeconds,
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
