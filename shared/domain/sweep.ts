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
import { mapLimit } from './concurrency.ts';
import { isEnded, toIso } from './lease.ts';
import { ageSeconds, gracesOf, plan } from './lease-planner.ts';
import type { Annex, InstanceRecord } from './model.ts';
import type { TaggedInstance } from './ports.ts';
import { cachedPriceBook, priceInstances } from './pricing.ts';
import { deleteLeakedLaunchTemplates, deleteLeakedParameters, reconcileSchedules } from './sweep-cleanup.ts';
import { checkLease, terminateOrphans } from './sweep-lease.ts';
import { groupBy, type Guard, type SweepAction, type SweepDeps, type SweepReport } from './sweep-model.ts';
import { enforceExpiryTags } from './sweep-outage.ts';

export type { SweepAction, SweepActionKind, SweepDeps, SweepReport } from './sweep-model.ts';

/** Clean-up (leaked parameters, templates, schedules) starts only with at least this much time left. */
export const CLEANUP_MIN_REMAINING_MS = 10_000;

export const sweep = async (deps: SweepDeps): Promise<SweepReport> => {
  const startedAt = deps.clock.now();
  const actions: SweepAction[] = [];
  const failedSteps: string[] = [];
  const skippedSteps: string[] = [];
  const act = (a: SweepAction) => {
    actions.push(a);
    deps.log.info('sweep action', { ...a });
  };
  const guarded: Guard = async (what, annexId, fn) => {
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
