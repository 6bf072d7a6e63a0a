/**
 * The sweep's clean-up, run only while the invocation has time: credential copies and launch
 * templates of ended or unknown annexes, schedules of ended annexes or stale expiries, and the
 * expiry schedule a live lease lacks. Each deletion is confirmed by a consistent read.
 */
import { mapLimit } from './concurrency.ts';
import { isEnded, isLive } from './lease.ts';
import { ageSeconds, gracesOf } from './lease-planner.ts';
import type { Annex } from './model.ts';
import type { Act, SweepDeps } from './sweep-model.ts';

const isReallyEnded = async (deps: SweepDeps, annexId: string): Promise<boolean> => {
  const annex = await deps.store.getAnnex(annexId);
  return annex === undefined || isEnded(annex.state);
};

/** Deletes what `list` finds of annexes neither live nor young, once a consistent read says they ended. */
const deleteLeaked = async (
  deps: SweepDeps,
  liveById: Map<string, Annex>,
  list: () => Promise<{ annexId: string; since: string | undefined }[]>,
  remove: (annexId: string) => Promise<void>,
  done: (annexId: string) => void,
): Promise<void> => {
  const now = deps.clock.now();
  const minAge = gracesOf(deps.sweep).orphanMinAgeSeconds;
  const candidates = (await list()).filter(
    (c) => !liveById.has(c.annexId) && ageSeconds(now, c.since) >= minAge,
  );
  await mapLimit(candidates, deps.sweep.concurrency, async ({ annexId }) => {
    if (!(await isReallyEnded(deps, annexId))) return;
    await remove(annexId);
    done(annexId);
  });
};

/** Credential copies of ended or unknown annexes (ending deletes them; a failed request may have left one). */
export const deleteLeakedParameters = (
  deps: SweepDeps,
  liveById: Map<string, Annex>,
  act: Act,
): Promise<void> =>
  deleteLeaked(
    deps,
    liveById,
    async () =>
      (await deps.secrets.listAnnexCredentials()).map((p) => ({ annexId: p.annexId, since: p.lastModified })),
    (annexId) => deps.secrets.deleteAnnexCredential(annexId),
    (annexId) => act({ action: 'delete-parameter', reason: 'leak', annexId }),
  );

/** Launch templates of ended or unknown annexes (a fleet launch made them; ending missed them). */
export const deleteLeakedLaunchTemplates = (
  deps: SweepDeps,
  liveById: Map<string, Annex>,
  act: Act,
): Promise<void> =>
  deleteLeaked(
    deps,
    liveById,
    async () =>
      (await deps.compute.listLaunchTemplates()).map((t) => ({ annexId: t.annexId, since: t.createdAt })),
    (annexId) => deps.compute.deleteLaunchTemplate(annexId),
    (annexId) => act({ action: 'delete-launch-template', reason: 'leak', annexId }),
  );

/** Schedules of ended annexes and stale expiries go; a live lease without its schedule gets one. */
export const reconcileSchedules = async (
  deps: SweepDeps,
  live: Annex[],
  liveById: Map<string, Annex>,
  act: Act,
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
