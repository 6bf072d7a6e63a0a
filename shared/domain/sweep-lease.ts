/**
 * The sweep's enforcement on one lease, as lease-planner.ts plans it on the consistent read (end
 * it, finish its termination, repair its launch, end it over budget; then its instances: boot
 * timeout, idleness, records and tags in step with EC2), and on orphans (instances tagged for a
 * lease that is missing or ended).
 */
import { endAnnex } from './annex-end.ts';
import { annexEvent } from './events.ts';
import { instanceRecord } from './instance-records.ts';
import { repairStuckLaunch } from './launch-capacity.ts';
import { annexCost, roundUsd } from './cost.ts';
import { isLive, toIso } from './lease.ts';
import { planInstances, planLease, type InstanceAction } from './lease-planner.ts';
import type { Annex, AnnexEvent, EndReason } from './model.ts';
import type { TaggedInstance } from './ports.ts';
import { sortByProvenance, terminateForged } from './provenance.ts';
import type { Act, SweepDeps } from './sweep-model.ts';

/** Acts on the consistent read: the lease step, then (unless it ended the lease) its instances. */
export const checkLease = async (
  deps: SweepDeps,
  annex: Annex,
  tagged: TaggedInstance[] | undefined,
  act: Act,
): Promise<void> => {
  const now = deps.clock.now();
  const lease = planLease(annex, now, deps.sweep);
  for (const action of lease.actions) {
    switch (action.kind) {
      case 'end-annex':
        await endBySweep(deps, annex, action.reason, tagged, now, {
          type: 'expired',
          message: `lease ended at ${annex.expiresAt}; ended by the sweep`,
        });
        act({
          action: 'end-annex',
          reason: action.reason,
          annexId: annex.id,
          instanceIds: (tagged ?? []).map((i) => i.instanceId),
        });
        return;
      case 'finish-termination':
        await endBySweep(deps, annex, action.reason, tagged, now, {
          type: 'termination-resumed',
          message: 'termination had stopped half-way; finished by the sweep',
        });
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

/** Ends the annex as TERMINATED for `reason`, with the sweep's EC2 listing and an event saying why. */
const endBySweep = async (
  deps: SweepDeps,
  annex: Annex,
  reason: EndReason,
  tagged: TaggedInstance[] | undefined,
  now: Date,
  { type, message, detail }: Pick<AnnexEvent, 'type' | 'message' | 'detail'>,
): Promise<void> => {
  const cause = annexEvent(annex, now, type, message, {
    reason,
    ...(detail === undefined ? {} : { detail }),
  });
  await endAnnex(deps, annex, 'TERMINATED', reason, cause, tagged);
};

/** Ends the annex like an expiry, with the reason `budget`, once its estimated spend reaches maxSpend. */
const overBudget = async (
  deps: SweepDeps,
  annex: Annex,
  tagged: TaggedInstance[] | undefined,
  act: Act,
): Promise<boolean> => {
  if (annex.maxSpend === undefined) return false;
  const now = deps.clock.now();
  const { spendSoFarUsd } = annexCost(await deps.store.listInstances(annex.id), now);
  if (spendSoFarUsd < annex.maxSpend) return false;
  await endBySweep(deps, annex, 'budget', tagged, now, {
    type: 'budget-reached',
    message: `estimated spend ${roundUsd(spendSoFarUsd)} USD reached maxSpend ${annex.maxSpend} USD; ended by the sweep`,
    detail: { spendSoFarUsd, maxSpend: annex.maxSpend },
  });
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
  act: Act,
): Promise<void> => {
  switch (action.kind) {
    case 'terminate': {
      const { reason, instanceIds: ids } = action;
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
      return;
    }
    case 'record-started':
      await deps.store.setInstanceStates(annex.id, action.instanceIds, 'running', toIso(now));
      return;
    case 'record-gone': {
      const gone = action.instanceIds;
      await deps.store.setInstanceStates(annex.id, gone, 'terminated', toIso(now));
      await deps.store.appendEvent(
        annexEvent(annex, now, 'instances-gone', `${gone.length} instance(s) no longer running in EC2`, {
          detail: { instanceIds: gone },
        }),
      );
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
export const terminateOrphans = async (
  deps: SweepDeps,
  annexId: string,
  instances: TaggedInstance[],
  act: Act,
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
