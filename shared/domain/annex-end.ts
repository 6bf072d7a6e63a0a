/**
 * Ending an annex: by its owner (or an admin), by its expiry schedule, or by the sweep. Every
 * path goes through `endAnnex`, which is safe to repeat from any point.
 */
import { isAnnexError } from './errors.ts';
import { assertTransition, isEnded, toIso } from './lease.ts';
import type { Annex, AnnexEvent, Caller, EndReason } from './model.ts';
import { annexCost } from './cost.ts';
import type { AnnexRef, TerminateDeps } from './annex-deps.ts';
import { resolveAnnex } from './annex-read.ts';
import { instanceRecord, mayHaveLaunchTemplate } from './instance-records.ts';
import { annexEvent } from './events.ts';
import type { LaunchedInstance } from './ports.ts';

export const deleteAnnex = async (deps: TerminateDeps, caller: Caller, ref: AnnexRef): Promise<Annex> => {
  for (let attempt = 0; ; attempt++) {
    const annex = await resolveAnnex(deps, caller, ref);
    if (isEnded(annex.state)) return annex;
    try {
      return await endAnnex(
        deps,
        annex,
        'TERMINATED',
        'user',
        annexEvent(annex, deps.clock.now(), 'terminate-requested', `ended by ${caller.principalArn}`, {
          reason: 'user',
        }),
      );
    } catch (e) {
      // A concurrent writer moved the version on; re-read and go again (bounded).
      if (!isAnnexError(e, 'Conflict') || attempt >= 2) throw e;
    }
  }
};

/** Best effort: a schedule left behind fires into an ended annex (a no-op) or the sweep deletes it. */
const cancelSchedule = async (
  deps: Pick<TerminateDeps, 'schedules' | 'log'>,
  annex: Annex,
): Promise<void> => {
  try {
    await deps.schedules.cancel(annex.id, annex.expiresAt);
  } catch (e) {
    deps.log.warn('could not cancel the expiry schedule', { annexId: annex.id, error: String(e) });
  }
};

/** How the expire function waits for the exact second of an expiry it was invoked early for. */
export interface ExpiryWait {
  sleep(ms: number): Promise<void>;
  /** Waits end this long after the invocation at the latest (the function's timeout allows it). */
  maxWaitMs: number;
}

const NO_WAIT: ExpiryWait = { sleep: () => Promise.resolve(), maxWaitMs: 0 };

/**
 * Ends an annex whose expiry schedule fired: the schedule names a minute that ends by the expiry,
 * so it fires up to two minutes early and this waits (`wait`) until the exact second, re-reading
 * the lease after every wait. Idempotent, and safe when it fires twice, late, or after an
 * extension or a deletion: an ended annex is left alone; an expiry moved beyond the wait is made
 * sure to be scheduled and nothing else is done.
 */
export const expireAnnex = async (
  deps: TerminateDeps,
  annexId: string,
  wait: ExpiryWait = NO_WAIT,
): Promise<Annex | undefined> => {
  const waitUntil = deps.clock.now().getTime() + wait.maxWaitMs;
  for (let attempt = 0, waits = 0; ;) {
    const annex = await deps.store.getAnnex(annexId);
    if (annex === undefined || isEnded(annex.state)) return annex;
    const now = deps.clock.now();
    const expiresAt = Date.parse(annex.expiresAt);
    if (expiresAt > now.getTime()) {
      if (expiresAt <= waitUntil && waits++ < 10) {
        await wait.sleep(expiresAt - now.getTime());
        continue;
      }
      deps.log.info('expiry fired for an extended lease; nothing to end', {
        annexId,
        expiresAt: annex.expiresAt,
      });
      await deps.schedules.schedule(annex.id, annex.expiresAt);
      return annex;
    }
    try {
      return await endAnnex(
        deps,
        annex,
        'TERMINATED',
        'expired',
        annexEvent(annex, now, 'expired', `lease ended at ${annex.expiresAt}`, { reason: 'expired' }),
      );
    } catch (e) {
      if (!isAnnexError(e, 'Conflict') || attempt++ >= 2) throw e;
    }
  }
};

/**
 * Ends an annex: marks it TERMINATING, terminates every instance it has (recorded or tagged),
 * deletes its credential copy, then records the final state, which frees the name. Safe to
 * repeat from any point: every step converges on a second run.
 */
export const endAnnex = async (
  deps: TerminateDeps,
  annex: Annex,
  finalState: 'TERMINATED' | 'FAILED',
  reason: EndReason,
  cause: AnnexEvent,
  /** What EC2 runs under the annex's tag, when the caller has just listed it (the sweep); absent: listed here. */
  listed?: readonly LaunchedInstance[],
): Promise<Annex> => {
  let current = annex;
  if (current.state !== 'TERMINATING') {
    assertTransition(current, 'TERMINATING');
    current = await deps.store.updateAnnex(current, { state: 'TERMINATING', endReason: reason }, cause);
  } else {
    // Resuming a termination that stopped half-way: the audit trail says who resumed it and why.
    await deps.store.appendEvent(cause);
  }
  const [recorded, tagged] = await Promise.all([
    deps.store.listInstances(current.id),
    listed ?? deps.compute.listAnnexInstances(current.id),
  ]);
  const ids = [
    ...new Set([
      ...recorded.filter((i) => i.state !== 'terminated').map((i) => i.instanceId),
      ...tagged.map((i) => i.instanceId),
    ]),
  ];
  if (ids.length > 0) await deps.compute.terminate(ids);
  const now = deps.clock.now();
  const known = new Set(recorded.map((i) => i.instanceId));
  const untracked = tagged.filter((i) => !known.has(i.instanceId));
  if (untracked.length > 0) {
    // Launched in a window the table never heard of: record them so the table agrees with EC2.
    await deps.store.putInstances(
      untracked.map((i) => ({ ...instanceRecord(current, i, toIso(now)), state: 'terminated' as const })),
    );
  }
  await deps.store.setInstanceStates(
    current.id,
    ids.filter((id) => known.has(id)),
    'terminated',
    toIso(now),
  );
  try {
    await deps.secrets.deleteAnnexCredential(current.id);
  } catch (e) {
    // A clean-up error never stops termination; the sweep deletes leaked parameters.
    deps.log.warn('could not delete the annex credential', { annexId: current.id, error: String(e) });
  }
  await cancelSchedule(deps, current);
  // Fleet launches made a launch template; a plain on-demand annex never had one, and asking to
  // delete a template that never existed is an error to log for nothing (on AWS, with a
  // resource-tag condition, an access denial). What this misses, the sweep deletes.
  if (mayHaveLaunchTemplate(current, recorded)) {
    try {
      await deps.compute.deleteLaunchTemplate(current.id);
    } catch (e) {
      deps.log.warn('could not delete the launch template', { annexId: current.id, error: String(e) });
    }
  }
  assertTransition(current, finalState);
  // IDTOKENS: every token the instances were given, for an admin who wants them revoked now
  // rather than at their expiry (SEC_TOKEN_REVOCATION_EXPR = member(jti, {...})).
  const tokenIds = recorded.flatMap((i) => i.tokenIds ?? []);
  const ended = await deps.store.updateAnnex(
    current,
    {
      state: finalState,
      endedAt: toIso(now),
      endReason: reason,
      launching: undefined,
      // What it cost, kept on the annex: its instance records are no longer read for its view.
      spentUsd: annexCost(recorded, now).spendSoFarUsd,
    },
    annexEvent(
      current,
      now,
      finalState === 'FAILED' ? 'failed' : 'terminated',
      `${ids.length} instance(s) terminated` +
        (tokenIds.length === 0 ? '' : `; IDTOKEN jti(s) to revoke: ${tokenIds.join(' ')}`),
      {
        reason,
        detail: { instanceIds: ids, ...(tokenIds.length === 0 ? {} : { tokenIds }) },
      },
    ),
  );
  // Its instances and vCPUs stop counting toward the owner's quota (its committed spend stays).
  // Missed here (a crash), the entry lapses at the annex's expiry.
  try {
    await deps.store.releaseUsage(ended.owner, ended.pool, ended.id);
  } catch (e) {
    deps.log.warn('could not release the quota usage', { annexId: ended.id, error: String(e) });
  }
  return ended;
};
