/**
 * Launching an annex's pending batch: convergent when a request stops half-way, since a retry
 * (or the sweep) finds launched instances by tag before it would ever launch again. What a
 * batch EC2 filled only in part becomes is decided in launch-capacity.ts.
 */
import { isAnnexError } from './errors.ts';
import { isLive, toIso } from './lease.ts';
import { fleetToken, sortByProvenance, terminateForged } from './provenance.ts';
import type { Annex, LaunchSpec, PendingBatch } from './model.ts';
import type { FleetError, LaunchedInstance } from './ports.ts';
import type { LaunchDeps } from './annex-deps.ts';
import { giveUpShortBatch, keepsBatch, mayLaunchBatch, refuseBatch } from './launch-capacity.ts';
import { instanceRecord } from './instance-records.ts';
import { annexEvent } from './events.ts';

/** Moves an annex from REQUESTED or LAUNCHING to RUNNING; a no-op in any other state. */
export const provision = async (deps: LaunchDeps, annex: Annex): Promise<Annex> => {
  let current = annex;
  if (current.state === 'REQUESTED') {
    const credential = await deps.secrets.getCredential(current.poolCredentialParameter);
    const parameter = await deps.secrets.putAnnexCredential(current.id, credential, {
      'annex:id': current.id,
      'annex:stage': deps.settings.stage,
    });
    // The exact-expiry schedule exists before any instance does.
    await deps.schedules.schedule(current.id, current.expiresAt);
    current = await deps.store.updateAnnex(
      current,
      { state: 'LAUNCHING' },
      annexEvent(current, deps.clock.now(), 'credentials-stored', `pool credential copied to ${parameter}`),
    );
  }
  if (current.state === 'LAUNCHING') current = await runBatch(deps, current);
  return current;
};

/** The spec one batch launches with: the annex's, with the batch's types and market. */
const batchSpec = (spec: LaunchSpec, pending: PendingBatch): LaunchSpec => {
  const market = pending.market ?? spec.market;
  const { onDemandBaseCount: annexBase, instanceRequirements, ...rest } = spec;
  const onDemandBaseCount = pending.onDemandBaseCount ?? annexBase;
  return {
    ...rest,
    market,
    instanceTypes: pending.instanceTypes,
    ...(pending.instanceTypes.length === 0 && instanceRequirements !== undefined
      ? { instanceRequirements }
      : {}),
    ...(market === 'mixed' && onDemandBaseCount !== undefined ? { onDemandBaseCount } : {}),
  };
};

/**
 * Launches the pending batch, unless EC2 already has its instances (found by tag, and kept only
 * when Annex launched them: see provenance.ts; others are terminated as forged). A batch EC2
 * filled only in part is kept (`capacityPolicy: keep`), or given up (`all-or-nothing`).
 */
export const runBatch = async (deps: LaunchDeps, annex: Annex): Promise<Annex> => {
  const pending = annex.launching;
  if (pending === undefined) {
    return deps.store.updateAnnex(annex, { state: 'RUNNING' });
  }
  const found = await sortByProvenance(
    deps,
    annex,
    await deps.compute.findBatchInstances(annex.id, pending.batch),
  );
  await terminateForged(deps, annex, found.forged, deps.clock.now());
  let instances: (LaunchedInstance & { launchToken?: string })[] = found.genuine;
  let fleetIds = found.fleetIds;
  let attempts: { instanceType: string; subnetId?: string; error: string }[] = [];
  let fleetErrors: FleetError[] = [];
  if (instances.length > 0) {
    deps.log.info('batch already launched; adopting its instances', {
      annexId: annex.id,
      batch: pending.batch,
      instanceIds: instances.map((i) => i.instanceId),
    });
  } else if (!(await mayLaunchBatch(deps, annex, pending))) {
    // Launched short and terminated by an earlier attempt that stopped before giving it up: never again.
    deps.log.info('batch was launched and terminated before; giving it up', {
      annexId: annex.id,
      batch: pending.batch,
    });
  } else {
    try {
      const result = await deps.compute.launch({
        annexId: annex.id,
        annexName: annex.name,
        owner: annex.owner,
        stage: deps.settings.stage,
        batch: pending.batch,
        count: pending.count,
        expiresAt: annex.expiresAt,
        spec: batchSpec(annex.spec, pending),
        ...(deps.launch.instanceProfileArn === undefined
          ? {}
          : { instanceProfileArn: deps.launch.instanceProfileArn }),
        ...(annex.launchSecret === undefined ? {} : { launchSecret: annex.launchSecret }),
      });
      // EC2's answer to Annex's own call: the fleet it names is the batch's.
      const { fleetId } = result;
      if (fleetId !== undefined) fleetIds = { [String(pending.batch)]: fleetId };
      instances = result.instances.map((i) => {
        const launchToken = fleetId === undefined ? i.clientToken : fleetToken(annex, pending.batch);
        return {
          ...i,
          ...(fleetId === undefined ? {} : { fleetId }),
          ...(launchToken === undefined ? {} : { launchToken }),
        };
      });
      attempts = result.attempts;
      fleetErrors = result.fleetErrors ?? [];
    } catch (e) {
      // A definite refusal launched nothing: record it and release what the batch reserved.
      if (isAnnexError(e, 'ValidationError') || isAnnexError(e, 'LimitExceeded')) {
        await refuseBatch(deps, annex, e);
      }
      // Anything else has an unknown outcome: the annex stays LAUNCHING, and a retry (or the
      // sweep) looks for the batch by tag before launching again.
      throw e;
    }
  }

  // Each reason the fleet gave for what it could not launch is on the annex's record.
  for (const error of fleetErrors) {
    await deps.store.appendEvent(
      annexEvent(
        annex,
        deps.clock.now(),
        'capacity-error',
        `batch ${pending.batch}: ${error.code}: ${error.message}`,
        {
          detail: { batch: pending.batch, ...error },
        },
      ),
    );
  }
  if (!keepsBatch(annex, pending, instances.length)) {
    return giveUpShortBatch(deps, annex, pending, instances);
  }

  const now = toIso(deps.clock.now());
  await deps.store.putInstances(instances.map((i) => instanceRecord(annex, i, now)));
  const ids = instances.map((i) => i.instanceId);
  const short = ids.length < pending.count ? ` of ${pending.count} requested` : '';
  const withFleets =
    Object.keys(fleetIds).length === 0 ? {} : { fleetIds: { ...annex.fleetIds, ...fleetIds } };
  try {
    return await deps.store.updateAnnex(
      annex,
      { state: 'RUNNING', launching: undefined, ...withFleets },
      annexEvent(
        annex,
        deps.clock.now(),
        'launched',
        `batch ${pending.batch}: ${ids.length} instance(s)${short}`,
        {
          detail: {
            batch: pending.batch,
            requested: pending.count,
            instanceIds: ids,
            capacityErrors: attempts,
            ...(fleetErrors.length === 0 ? {} : { fleetErrors: fleetErrors.map((e) => e.code) }),
          },
        },
      ),
    );
  } catch (e) {
    if (!isAnnexError(e, 'Conflict')) throw e;
    // Someone ended the annex while it launched: what this call launched must not outlive it.
    const latest = await deps.store.getAnnex(annex.id);
    if (latest === undefined || !isLive(latest.state) || latest.state === 'TERMINATING') {
      deps.log.warn('annex ended during launch; terminating what was launched', {
        annexId: annex.id,
        instanceIds: ids,
      });
      await deps.compute.terminate(ids);
      await deps.store.setInstanceStates(annex.id, ids, 'terminated', toIso(deps.clock.now()));
    }
    throw e;
  }
};
