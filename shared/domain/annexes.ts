/**
 * Annex use cases: create, read, extend, add nodes, end. Each takes its ports as `deps` and
 * leaves the system convergent when it stops half-way: a retry with the same Idempotency-Key
 * resumes the same annex and the same launch batch, and finds launched instances by tag before
 * it would ever launch again.
 */
import {
  conflict,
  isAnnexError,
  limitExceeded,
  notFound,
  validationError,
  type AnnexError,
} from './errors.ts';
import {
  annexIdFor,
  assertTransition,
  DEFAULT_IDLE_SECONDS,
  isEnded,
  isLive,
  launchesThroughFleet,
  leaseExpiry,
  newLaunchSecret,
  requestHash,
  toIso,
} from './lease.ts';
import { fleetToken, sortByProvenance, terminateForged, type ProvenanceDeps } from './provenance.ts';
import type {
  AllocationStrategy,
  Annex,
  AnnexEvent,
  Caller,
  CapacityPolicy,
  EndReason,
  InstanceRecord,
  InstanceRequirements,
  LaunchPolicy,
  LaunchSpec,
  Market,
  PendingBatch,
  Pool,
  PoolUsage,
} from './model.ts';
import { translateSpotFleetConfig } from './spot-fleet-config.ts';
import { checkCreate, checkHardware, checkLease, policyOf } from './launch-policy.ts';
import { admit, instanceDemand, spendFor, type InstanceDemand } from './quota.ts';
import { annexCost } from './cost.ts';
import { DEFAULT_MAX_REPLACEMENTS } from './replacement.ts';
import type {
  AnnexChanges,
  Clock,
  Compute,
  ExpirySchedules,
  FleetError,
  LaunchedInstance,
  LaunchSettings,
  LeaseStore,
  Logger,
  PriceBook,
  SecretStore,
  Settings,
} from './ports.ts';

export interface ReadDeps {
  store: LeaseStore;
  clock: Clock;
  settings: Settings;
  log: Logger;
}

export interface ExtendDeps extends ReadDeps {
  compute: Pick<Compute, 'retag'>;
  schedules: ExpirySchedules;
  /** The stack's defaults, for the policy of a pool registered before pools had one. */
  launch: LaunchSettings;
  /** Prices for the spend quota (its on-demand table); absent: estimated per vCPU (see quota.ts). */
  prices?: PriceBook;
}

export interface TerminateDeps extends ReadDeps {
  compute: Pick<Compute, 'listAnnexInstances' | 'terminate' | 'deleteLaunchTemplate'>;
  secrets: Pick<SecretStore, 'deleteAnnexCredential'>;
  schedules: ExpirySchedules;
}

export interface LaunchDeps extends ReadDeps {
  compute: Compute;
  secrets: SecretStore;
  schedules: ExpirySchedules;
  launch: LaunchSettings;
  /** Prices for the spend quota (its on-demand table); absent: estimated per vCPU (see quota.ts). */
  prices?: PriceBook;
}

export interface CreateAnnexInput {
  name: string;
  pool: string;
  /** Required unless `spotFleetConfig` gives a TargetCapacity. */
  count?: number;
  /** Instance types, or else `instanceRequirements` (or a `spotFleetConfig` naming either). */
  instanceTypes?: string[];
  instanceRequirements?: InstanceRequirements;
  /** Default on-demand (or what `spotFleetConfig` implies). */
  market?: Market;
  allocationStrategy?: AllocationStrategy;
  maxPrice?: string;
  onDemandBaseCount?: number;
  capacityPolicy?: CapacityPolicy;
  /** condor_annex's -aws-spot-fleet-config-file: fields given in the request take precedence. */
  spotFleetConfig?: Record<string, unknown>;
  imageId?: string;
  subnetIds?: string[];
  securityGroupIds?: string[];
  keyName?: string;
  durationSeconds?: number;
  idleSeconds?: number;
  userData?: string;
  tags?: Record<string, string>;
  /** HTCondor users whose jobs the annex runs; default: the pool's condorUser (if it has one). */
  allowedUsers?: string[];
  /** Replace interrupted spot instances under the same lease (at most maxReplacements times). */
  replaceInterrupted?: boolean;
  maxReplacements?: number;
  /** USD: end the annex (reason budget) once its estimated spend reaches this. */
  maxSpend?: number;
}

export interface ExtendAnnexInput {
  durationSeconds?: number;
  expiresAt?: string;
  idleSeconds?: number;
}

export interface AddNodesInput {
  count: number;
  instanceTypes?: string[];
  /** This batch's market (default: the annex's) and, for mixed, its on-demand base. */
  market?: Market;
  onDemandBaseCount?: number;
}

/** A create request with its spot fleet config (if any) applied and the defaults filled in. */
type ResolvedCreate = Omit<CreateAnnexInput, 'spotFleetConfig'> & {
  count: number;
  instanceTypes: string[];
  market: Market;
  availabilityZones?: string[];
};

const defined = <T extends object>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

const resolveCreate = (input: CreateAnnexInput): ResolvedCreate => {
  const { spotFleetConfig, ...explicit } = input;
  const fromConfig = spotFleetConfig === undefined ? {} : translateSpotFleetConfig(spotFleetConfig);
  const merged = { ...fromConfig, ...defined(explicit) };
  if (merged.count === undefined) throw validationError('count', 'required');
  const resolved: ResolvedCreate = {
    ...merged,
    name: input.name,
    pool: input.pool,
    count: merged.count,
    instanceTypes: merged.instanceTypes ?? [],
    market: merged.market ?? 'on-demand',
  };
  checkMarket(resolved, resolved.count);
  return resolved;
};

/** The rules between market, types and the spot options (both for create and for a batch). */
const checkMarket = (
  spec: Pick<
    ResolvedCreate,
    | 'market'
    | 'instanceTypes'
    | 'instanceRequirements'
    | 'onDemandBaseCount'
    | 'maxPrice'
    | 'allocationStrategy'
  >,
  count: number,
): void => {
  if (spec.instanceTypes.length === 0 && spec.instanceRequirements === undefined) {
    throw validationError('instanceTypes', 'give instanceTypes or instanceRequirements');
  }
  if (spec.instanceTypes.length > 0 && spec.instanceRequirements !== undefined) {
    throw validationError('instanceRequirements', 'give instanceTypes or instanceRequirements, not both');
  }
  if (spec.market === 'mixed') {
    if (spec.onDemandBaseCount === undefined) {
      throw validationError('onDemandBaseCount', 'required with market mixed');
    }
    if (spec.onDemandBaseCount > count) {
      throw validationError('onDemandBaseCount', `must not exceed count (${count})`);
    }
  } else if (spec.onDemandBaseCount !== undefined) {
    throw validationError('onDemandBaseCount', 'only with market mixed');
  }
  if (spec.market === 'on-demand') {
    if (spec.maxPrice !== undefined) throw validationError('maxPrice', 'only with market spot or mixed');
    if (spec.allocationStrategy !== undefined) {
      throw validationError('allocationStrategy', 'only with market spot or mixed');
    }
  }
};

/** "3 × m5.large|c5.large (spot)" for events and logs. */
const describeBatch = (count: number, spec: Pick<LaunchSpec, 'instanceTypes' | 'market'>): string =>
  `${count} × ${spec.instanceTypes.length > 0 ? spec.instanceTypes.join('|') : 'instance requirements'}${
    spec.market === 'on-demand' ? '' : ` (${spec.market})`
  }`;

/** How often an admission re-reads the usage record after losing a race for it, before giving up. */
const ADMISSION_ATTEMPTS = 12;

/**
 * Runs an admission (read the usage record, check the quota, write it with the request) until it
 * is not undone by a concurrent one (`attempt` answers undefined), with a short random pause
 * between attempts so concurrent requests of one user spread out. A quota refusal ends it.
 */
const admitted = async <T>(
  deps: Pick<ReadDeps, 'log'>,
  attempt: () => Promise<T | undefined>,
): Promise<T> => {
  for (let i = 0; ; i++) {
    const result = await attempt();
    if (result !== undefined) return result;
    if (i + 1 >= ADMISSION_ATTEMPTS) {
      throw conflict('too many concurrent requests for this pool; retry');
    }
    deps.log.info('quota usage changed under an admission; re-checking', { attempt: i + 1 });
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * (i + 1)));
  }
};

/**
 * An update of `annex` that also writes the owner's usage record (`usage`, computed from the
 * record as read): retried with a fresh record when only the usage record moved on, so a lost
 * race for the quota is re-checked, not reported; the annex itself changing is the caller's Conflict.
 */
const admittedUpdate = (
  deps: Pick<ReadDeps, 'log' | 'store'>,
  annex: Annex,
  usage: (record: PoolUsage) => PoolUsage,
  write: (usage: PoolUsage) => Promise<Annex>,
): Promise<Annex> =>
  admitted(deps, async () => {
    const record = await deps.store.getUsage(annex.owner, annex.pool);
    try {
      return await write(usage(record));
    } catch (e) {
      if (!isAnnexError(e, 'Conflict')) throw e;
      // Only a usage record that moved on is retried; anything else is the caller's Conflict.
      const [latest, again] = await Promise.all([
        deps.store.getAnnex(annex.id),
        deps.store.getUsage(annex.owner, annex.pool),
      ]);
      if (latest?.version !== annex.version || again.version === record.version) throw e;
      return undefined;
    }
  });

/** The pool an annex belongs to and its policy; undefined for a pool no longer registered. */
const poolPolicy = async (
  deps: ReadDeps & { launch: LaunchSettings },
  annex: Annex,
): Promise<{ pool: Pool; policy: LaunchPolicy } | undefined> => {
  const pool = await deps.store.getPool(annex.pool, annex.owner);
  return pool === undefined ? undefined : { pool, policy: policyOf(pool, deps.launch, deps.settings) };
};

/** What one instance of an existing annex counts for (nothing, for one the quota cannot count). */
const existingDemand = (
  found: { pool: Pool; policy: LaunchPolicy },
  spec: Pick<LaunchSpec, 'instanceTypes' | 'instanceRequirements'>,
  prices: Pick<PriceBook, 'onDemandHourly'> | undefined,
): InstanceDemand => {
  try {
    return instanceDemand(found.pool, found.policy, spec.instanceTypes, spec.instanceRequirements, prices);
  } catch (e) {
    if (!isAnnexError(e, 'LimitExceeded')) throw e;
    return { vCpus: 0, hourlyUsd: 0 };
  }
};

/** The interruption and budget settings of a create request, checked (see ec2-events.ts, cost.ts). */
const replacementAndBudget = (
  input: Pick<CreateAnnexInput, 'replaceInterrupted' | 'maxReplacements' | 'maxSpend'>,
): Pick<Annex, 'replaceInterrupted' | 'maxReplacements' | 'replacements' | 'maxSpend'> => {
  if (input.maxReplacements !== undefined && input.replaceInterrupted !== true) {
    throw validationError('maxReplacements', 'only with replaceInterrupted: true');
  }
  return {
    ...(input.replaceInterrupted === undefined
      ? {}
      : {
          replaceInterrupted: input.replaceInterrupted,
          maxReplacements: input.replaceInterrupted ? (input.maxReplacements ?? DEFAULT_MAX_REPLACEMENTS) : 0,
          replacements: 0,
        }),
    ...(input.maxSpend === undefined ? {} : { maxSpend: input.maxSpend }),
  };
};

/** Which annex a name-addressed request is about: the caller's own, or (admins) `owner`'s. */
export interface AnnexRef {
  name: string;
  owner?: string;
}

const event = (
  annex: Pick<Annex, 'id'>,
  at: Date,
  type: string,
  message: string,
  extra: Pick<AnnexEvent, 'reason' | 'detail'> = {},
): AnnexEvent => ({ annexId: annex.id, at: toIso(at), type, message, ...extra });

// ---------------------------------------------------------------------------------------------
// Reading

export const resolveAnnex = async (deps: ReadDeps, caller: Caller, ref: AnnexRef): Promise<Annex> => {
  const owner = ref.owner ?? caller.principalArn;
  // Another user's annex is reported exactly like a missing one: names are not disclosed.
  if (owner !== caller.principalArn && !caller.admin) throw notFound(`no annex named ${ref.name}`);
  const annex = await deps.store.findAnnexByName(owner, ref.name);
  if (annex === undefined) throw notFound(`no annex named ${ref.name}`);
  return annex;
};

export const getAnnexDetail = async (
  deps: ReadDeps,
  caller: Caller,
  ref: AnnexRef,
): Promise<{ annex: Annex; instances: InstanceRecord[]; events: AnnexEvent[] }> => {
  const annex = await resolveAnnex(deps, caller, ref);
  const [instances, events] = await Promise.all([
    deps.store.listInstances(annex.id),
    deps.store.listEvents(annex.id, 50),
  ]);
  return { annex, instances, events };
};

export const listAnnexes = async (deps: ReadDeps, caller: Caller, owner?: string): Promise<Annex[]> => {
  if (owner !== undefined && owner !== caller.principalArn) {
    if (!caller.admin) return [];
    return deps.store.listAnnexesByOwner(owner);
  }
  // An admin without ?owner= sees every live annex (read from the sparse live index).
  if (owner === undefined && caller.admin) return deps.store.listLiveAnnexes();
  return deps.store.listAnnexesByOwner(caller.principalArn);
};

// ---------------------------------------------------------------------------------------------
// Create

export const createAnnex = async (
  deps: LaunchDeps,
  caller: Caller,
  input: CreateAnnexInput,
  idempotencyKey?: string,
): Promise<{ annex: Annex; replayed: boolean }> => {
  const now = deps.clock.now();
  const request = resolveCreate(input);
  if (request.count > deps.settings.maxInstancesPerAnnex) {
    const max = deps.settings.maxInstancesPerAnnex;
    throw limitExceeded(`count: at most ${max} instances per annex`, 'count');
  }
  const { expiresAt } = leaseExpiry(
    now,
    { durationSeconds: request.durationSeconds },
    deps.settings.maxDurationSeconds,
  );
  const imageId = request.imageId ?? deps.launch.defaultImageId;
  if (imageId === undefined) throw validationError('imageId', 'required: no default image is configured');
  const pool = await deps.store.getPool(input.pool, caller.principalArn);
  if (pool === undefined) throw notFound(`pool: no pool named ${input.pool} is registered for you`, 'pool');

  const policy = policyOf(pool, deps.launch, deps.settings);

  const spec: LaunchSpec = {
    market: request.market,
    instanceTypes: request.instanceTypes,
    imageId,
    subnetIds:
      request.subnetIds ?? (request.availabilityZones === undefined ? deps.launch.defaultSubnetIds : []),
    securityGroupIds: request.securityGroupIds ?? deps.launch.defaultSecurityGroupIds,
    tags: request.tags ?? {},
    ...defined({
      instanceRequirements: request.instanceRequirements,
      allocationStrategy: request.allocationStrategy,
      maxPrice: request.maxPrice,
      onDemandBaseCount: request.onDemandBaseCount,
      capacityPolicy: request.capacityPolicy,
      availabilityZones: request.subnetIds === undefined ? request.availabilityZones : undefined,
      keyName: request.keyName,
      userData: request.userData,
    }),
  };
  // Outside the pool's policy: refused before anything is written or launched.
  const leaseSeconds = (expiresAt.getTime() - now.getTime()) / 1000;
  checkCreate(pool, policy, {
    imageId,
    subnetIds: spec.subnetIds,
    securityGroupIds: spec.securityGroupIds,
    instanceTypes: spec.instanceTypes,
    leaseSeconds,
    ...defined({
      availabilityZones: spec.availabilityZones,
      instanceRequirements: spec.instanceRequirements,
      userData: spec.userData,
      keyName: spec.keyName,
      maxSpend: input.maxSpend,
    }),
  });
  const demand = instanceDemand(pool, policy, spec.instanceTypes, spec.instanceRequirements, deps.prices);
  const annex: Annex = {
    id: annexIdFor(deps.settings.stage, caller.principalArn, idempotencyKey),
    name: input.name,
    owner: caller.principalArn,
    pool: pool.name,
    poolCredentialParameter: pool.credentialParameter,
    state: 'REQUESTED',
    spec,
    requestedCount: request.count,
    batches: 1,
    launching: { batch: 1, count: request.count, instanceTypes: request.instanceTypes },
    idleSeconds: request.idleSeconds ?? DEFAULT_IDLE_SECONDS,
    createdAt: toIso(now),
    updatedAt: toIso(now),
    expiresAt: toIso(expiresAt),
    requestHash: requestHash(input),
    condor: {
      collectorHost: pool.collectorHost,
      collectorPort: pool.collectorPort,
      credentialType: pool.credentialType,
      allowedUsers: request.allowedUsers ?? (pool.condorUser === undefined ? [] : [pool.condorUser]),
      ...(pool.trustDomain === undefined ? {} : { trustDomain: pool.trustDomain }),
    },
    ...replacementAndBudget(input),
    launchSecret: newLaunchSecret(),
    version: 1,
  };

  const replay = async (existing: Annex | undefined) => {
    if (existing === undefined) throw conflict('the annex for this Idempotency-Key is being written; retry');
    if (existing.requestHash !== annex.requestHash) {
      throw conflict('this Idempotency-Key was already used for a different request');
    }
    deps.log.info('idempotent create replayed', { annexId: existing.id, state: existing.state });
    return { annex: await provision(deps, existing), replayed: true };
  };
  // A retry of a create that was admitted already counts in the quota: it is not admitted again.
  if (idempotencyKey !== undefined) {
    const existing = await deps.store.getAnnex(annex.id);
    if (existing !== undefined) return replay(existing);
  }
  const created = event(annex, now, 'created', `annex requested: ${describeBatch(request.count, spec)}`, {
    detail: {
      count: request.count,
      market: spec.market,
      instanceTypes: spec.instanceTypes,
      expiresAt: annex.expiresAt,
    },
  });
  const outcome = await admitted(deps, async () => {
    const usage = admit(
      pool,
      policy,
      await deps.store.getUsage(annex.owner, pool.name),
      {
        annexId: annex.id,
        instances: request.count,
        vCpus: request.count * demand.vCpus,
        expiresAt: annex.expiresAt,
        spendUsd: spendFor(request.count, demand.hourlyUsd, leaseSeconds),
        ...defined({ maxSpend: input.maxSpend }),
        fields: { count: 'count', spend: input.maxSpend === undefined ? 'durationSeconds' : 'maxSpend' },
      },
      now,
    );
    const result = await deps.store.createAnnex(annex, created, usage);
    return result === 'usage-changed' ? undefined : result;
  });
  if (outcome === 'name-taken') throw conflict(`an annex named ${input.name} is already live`);
  if (outcome === 'exists') return replay(await deps.store.getAnnex(annex.id));
  deps.log.info('annex created', { annexId: annex.id, name: annex.name });
  return { annex: await provision(deps, annex), replayed: false };
};

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
      event(current, deps.clock.now(), 'credentials-stored', `pool credential copied to ${parameter}`),
    );
  }
  if (current.state === 'LAUNCHING') current = await runBatch(deps, current);
  return current;
};

export const instanceRecord = (
  annex: Annex,
  i: LaunchedInstance & { launchToken?: string },
  at: string,
): InstanceRecord => ({
  instanceId: i.instanceId,
  annexId: annex.id,
  batch: i.batch,
  instanceType: i.instanceType,
  market: i.market ?? (annex.spec.market === 'spot' ? 'spot' : 'on-demand'),
  state: i.state,
  launchedAt: i.launchedAt,
  updatedAt: at,
  ...(i.subnetId === undefined ? {} : { subnetId: i.subnetId }),
  ...(i.availabilityZone === undefined ? {} : { availabilityZone: i.availabilityZone }),
  ...(i.privateIpAddress === undefined ? {} : { privateIpAddress: i.privateIpAddress }),
  ...(i.publicIpAddress === undefined ? {} : { publicIpAddress: i.publicIpAddress }),
  ...(i.launchToken === undefined ? {} : { launchToken: i.launchToken }),
  ...(i.fleetId === undefined ? {} : { fleetId: i.fleetId }),
});

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
const runBatch = async (deps: LaunchDeps, annex: Annex): Promise<Annex> => {
  const pending = annex.launching;
  if (pending === undefined) {
    return deps.store.updateAnnex(annex, { state: 'RUNNING' });
  }
  const allOrNothing = annex.spec.capacityPolicy === 'all-or-nothing';
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
  } else if (allOrNothing && (await batchWasLaunched(deps, annex.id, pending.batch))) {
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
      event(
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
  if (allOrNothing && instances.length < pending.count) {
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
      event(
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

/** Whether an annex may have launched through EC2 Fleet (and so made its launch template). */
export const mayHaveLaunchTemplate = (annex: Annex, instances: readonly InstanceRecord[]): boolean =>
  // A spot batch added to an on-demand annex launched through a fleet too.
  launchesThroughFleet(annex.spec) || instances.some((i) => i.market !== 'on-demand');

const batchWasLaunched = async (deps: LaunchDeps, annexId: string, batch: number): Promise<boolean> =>
  (await deps.store.listInstances(annexId)).some((i) => i.batch === batch);

/**
 * `all-or-nothing` and EC2 gave fewer than asked: the first batch ends the annex FAILED
 * (launch-failed) and terminates what it got; a later batch is terminated and given up, and the
 * annex keeps running what it had. Records come first, so a retry after a crash at any step
 * finds the batch (running or terminated) and never launches it again.
 */
const giveUpShortBatch = async (
  deps: LaunchDeps,
  annex: Annex,
  pending: PendingBatch,
  instances: LaunchedInstance[],
): Promise<Annex> => {
  const now = deps.clock.now();
  const ids = instances.map((i) => i.instanceId);
  const short = event(
    annex,
    now,
    'capacity-short',
    `batch ${pending.batch}: ${ids.length} of ${pending.count} instance(s); all-or-nothing, so none are kept`,
    { reason: 'launch-failed', detail: { batch: pending.batch, requested: pending.count, instanceIds: ids } },
  );
  if (pending.batch === 1) {
    await deps.store.putInstances(instances.map((i) => instanceRecord(annex, i, toIso(now))));
    return endAnnex(deps, annex, 'FAILED', 'launch-failed', short);
  }
  await deps.store.putInstances(
    instances.map((i) => ({ ...instanceRecord(annex, i, toIso(now)), state: 'terminated' as const })),
  );
  if (ids.length > 0) await deps.compute.terminate(ids);
  return deps.store.updateAnnex(
    annex,
    { state: 'RUNNING', launching: undefined, requestedCount: withoutBatch(annex, pending) },
    short,
  );
};

/** What the annex asks for without a batch it gave up (a replacement never added to it). */
const withoutBatch = (annex: Annex, pending: PendingBatch): number =>
  annex.requestedCount - (pending.replaces === undefined ? pending.count : 0);

const refuseBatch = async (deps: LaunchDeps, annex: Annex, error: AnnexError): Promise<void> => {
  const pending = annex.launching;
  if (pending === undefined) return;
  const now = deps.clock.now();
  const refused = event(annex, now, 'launch-refused', error.message, {
    reason: 'launch-failed',
    detail: { batch: pending.batch, code: error.code },
  });
  if (pending.batch === 1) {
    await endAnnex(deps, annex, 'FAILED', 'launch-failed', refused);
    return;
  }
  await deps.store.updateAnnex(
    annex,
    { state: 'RUNNING', launching: undefined, requestedCount: withoutBatch(annex, pending) },
    refused,
  );
};

/**
 * Repairs an annex left in REQUESTED or LAUNCHING by a request that died: instances of the pending
 * batch that EC2 has (found by tag) and that Annex launched (provenance.ts) are adopted, any other
 * instance with its tags is terminated as forged; with none adopted, the batch is given up: the
 * annex fails cleanly if it was the first batch, or returns to RUNNING without it.
 */
export const repairStuckLaunch = async (
  deps: TerminateDeps &
    ProvenanceDeps & { compute: Pick<Compute, 'findBatchInstances' | 'fleetClientToken'> },
  annex: Annex,
): Promise<{ outcome: 'adopted' | 'failed' | 'abandoned'; annex: Annex }> => {
  const now = deps.clock.now();
  const pending = annex.launching;
  const sorted = await sortByProvenance(
    deps,
    annex,
    annex.state === 'LAUNCHING' && pending !== undefined
      ? await deps.compute.findBatchInstances(annex.id, pending.batch)
      : [],
  );
  await terminateForged(deps, annex, sorted.forged, now);
  const found = sorted.genuine;
  // all-or-nothing: a short batch is not adopted; a later batch's instances go (the first batch's
  // go with the annex below).
  const short =
    annex.spec.capacityPolicy === 'all-or-nothing' && pending !== undefined && found.length < pending.count;
  if (short && found.length > 0 && pending.batch !== 1) {
    await deps.compute.terminate(found.map((i) => i.instanceId));
  }
  if (pending !== undefined && found.length > 0 && !short) {
    await deps.store.putInstances(found.map((i) => instanceRecord(annex, i, toIso(now))));
    const repaired = await deps.store.updateAnnex(
      annex,
      {
        state: 'RUNNING',
        launching: undefined,
        ...(Object.keys(sorted.fleetIds).length === 0
          ? {}
          : { fleetIds: { ...annex.fleetIds, ...sorted.fleetIds } }),
      },
      event(annex, now, 'launch-repaired', `batch ${pending.batch}: adopted ${found.length} instance(s)`, {
        detail: { batch: pending.batch, instanceIds: found.map((i) => i.instanceId) },
      }),
    );
    return { outcome: 'adopted', annex: repaired };
  }
  const stuck = event(
    annex,
    now,
    'launch-stuck',
    `${annex.state} since ${annex.updatedAt}; giving up the launch`,
    {
      reason: 'launch-failed',
      ...(pending === undefined ? {} : { detail: { batch: pending.batch } }),
    },
  );
  if (pending === undefined || pending.batch === 1) {
    return { outcome: 'failed', annex: await endAnnex(deps, annex, 'FAILED', 'launch-failed', stuck) };
  }
  const abandoned = await deps.store.updateAnnex(
    annex,
    { state: 'RUNNING', launching: undefined, requestedCount: withoutBatch(annex, pending) },
    stuck,
  );
  return { outcome: 'abandoned', annex: abandoned };
};

// ---------------------------------------------------------------------------------------------
// Extend and add nodes

export const extendAnnex = async (
  deps: ExtendDeps,
  caller: Caller,
  ref: AnnexRef,
  input: ExtendAnnexInput,
): Promise<Annex> => {
  const annex = await resolveAnnex(deps, caller, ref);
  if (!isLive(annex.state) || annex.state === 'TERMINATING') {
    throw conflict(`annex ${annex.name} is ${annex.state}; it can no longer be extended`);
  }
  const now = deps.clock.now();
  const { expiresAt } = leaseExpiry(now, input, deps.settings.maxDurationSeconds);
  const changes: AnnexChanges = { expiresAt: toIso(expiresAt) };
  if (input.idleSeconds !== undefined) changes.idleSeconds = input.idleSeconds;
  const extended = event(annex, now, 'extended', `lease now ends at ${toIso(expiresAt)}`, {
    detail: {
      from: annex.expiresAt,
      to: toIso(expiresAt),
      idleSeconds: input.idleSeconds ?? annex.idleSeconds,
    },
  });
  const found = await poolPolicy(deps, annex);
  let updated: Annex;
  if (found === undefined) {
    updated = await deps.store.updateAnnex(annex, changes, extended);
  } else {
    const field = input.expiresAt === undefined ? 'durationSeconds' : 'expiresAt';
    checkLease(
      found.pool,
      found.policy,
      (expiresAt.getTime() - now.getTime()) / 1000,
      (expiresAt.getTime() - Date.parse(annex.createdAt)) / 1000,
      field,
    );
    const demand = existingDemand(found, annex.spec, deps.prices);
    const added = (expiresAt.getTime() - Math.max(Date.parse(annex.expiresAt), now.getTime())) / 1000;
    updated = await admittedUpdate(
      deps,
      annex,
      (record) =>
        admit(
          found.pool,
          found.policy,
          record,
          {
            annexId: annex.id,
            instances: 0,
            vCpus: 0,
            expiresAt: toIso(expiresAt),
            spendUsd: spendFor(annex.requestedCount, demand.hourlyUsd, added),
            ...defined({ maxSpend: annex.maxSpend }),
            fields: { count: field, spend: field },
          },
          now,
        ),
      (usage) => deps.store.updateAnnex(annex, changes, extended, usage),
    );
  }
  const live = (await deps.store.listInstances(annex.id)).filter((i) => i.state !== 'terminated');
  if (live.length > 0) {
    await deps.compute.retag(
      live.map((i) => i.instanceId),
      { 'annex:expires-at': updated.expiresAt },
    );
  }
  // Schedules are named by expiry: add the new one, then drop the old. A crash in between leaves
  // a stale schedule that finds the lease extended when it fires; the sweep covers a missing one.
  try {
    await deps.schedules.move(annex.id, annex.expiresAt, updated.expiresAt);
  } catch (e) {
    // The lease is extended either way; the sweep re-creates a missing schedule and drops a stale one.
    deps.log.warn('could not move the expiry schedule', { annexId: annex.id, error: String(e) });
  }
  return updated;
};

export const addNodes = async (
  deps: LaunchDeps,
  caller: Caller,
  ref: AnnexRef,
  input: AddNodesInput,
  idempotencyKey?: string,
): Promise<Annex> => {
  let annex = await resolveAnnex(deps, caller, ref);
  const hash = requestHash(input);
  if (idempotencyKey !== undefined) {
    const claim = await deps.store.getAddNodesClaim(annex.id, idempotencyKey);
    if (claim !== undefined) {
      if (claim.requestHash !== hash)
        throw conflict('this Idempotency-Key was already used for a different request');
      // A retry of a batch this key started: resume it if it is still launching.
      if (annex.launching?.batch === claim.batch) return provision(deps, annex);
      const launched = (await deps.store.listInstances(annex.id)).some((i) => i.batch === claim.batch);
      if (!launched) {
        // The sweep gave the batch up (its request died before launching): say so, don't pretend.
        throw conflict(`batch ${claim.batch} of this Idempotency-Key was abandoned; retry with a new key`);
      }
      return annex;
    }
  }
  if (annex.state !== 'RUNNING') {
    throw conflict(`annex ${annex.name} is ${annex.state}; nodes can be added only while it is RUNNING`);
  }
  if (annex.requestedCount + input.count > deps.settings.maxInstancesPerAnnex) {
    throw limitExceeded(
      `annex ${annex.name} would have ${annex.requestedCount + input.count} instances; the limit is ${deps.settings.maxInstancesPerAnnex}`,
    );
  }
  assertTransition(annex, 'LAUNCHING');
  const batch = annex.batches + 1;
  const instanceTypes = input.instanceTypes ?? annex.spec.instanceTypes;
  const market = input.market ?? annex.spec.market;
  const onDemandBaseCount =
    market === 'mixed' ? (input.onDemandBaseCount ?? annex.spec.onDemandBaseCount) : input.onDemandBaseCount;
  checkMarket(
    {
      market,
      instanceTypes,
      ...defined({
        instanceRequirements: input.instanceTypes === undefined ? annex.spec.instanceRequirements : undefined,
        onDemandBaseCount,
      }),
    },
    input.count,
  );
  const found = await poolPolicy(deps, annex);
  const inherited = input.instanceTypes === undefined ? annex.spec.instanceRequirements : undefined;
  const demand =
    found === undefined
      ? undefined
      : instanceDemand(found.pool, found.policy, instanceTypes, inherited, deps.prices);
  if (found !== undefined) checkHardware(found.pool, found.policy, instanceTypes, inherited);
  const launching: PendingBatch = {
    batch,
    count: input.count,
    instanceTypes,
    ...(input.market === undefined ? {} : { market }),
    ...(input.onDemandBaseCount === undefined ? {} : { onDemandBaseCount: input.onDemandBaseCount }),
  };
  const changes: AnnexChanges = {
    state: 'LAUNCHING',
    batches: batch,
    requestedCount: annex.requestedCount + input.count,
    launching,
  };
  const now = deps.clock.now();
  const requested = event(annex, now, 'nodes-requested', `batch ${batch}: ${input.count} more`, {
    detail: { batch, count: input.count, instanceTypes, market },
  });
  const write = (usage?: PoolUsage): Promise<Annex> =>
    idempotencyKey === undefined
      ? deps.store.updateAnnex(annex, changes, requested, usage)
      : deps.store.startBatch(
          annex,
          changes,
          { key: idempotencyKey, batch, requestHash: hash },
          requested,
          usage,
        );
  const current = annex;
  annex =
    found === undefined || demand === undefined
      ? await write()
      : await admittedUpdate(
          deps,
          current,
          (record) =>
            admit(
              found.pool,
              found.policy,
              record,
              {
                annexId: current.id,
                instances: input.count,
                vCpus: input.count * demand.vCpus,
                expiresAt: current.expiresAt,
                spendUsd: spendFor(
                  input.count,
                  demand.hourlyUsd,
                  (Date.parse(current.expiresAt) - now.getTime()) / 1000,
                ),
                ...defined({ maxSpend: current.maxSpend }),
                fields: { count: 'count', spend: 'count' },
              },
              now,
            ),
          write,
        );
  return runBatch(deps, annex);
};

// ---------------------------------------------------------------------------------------------
// End

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
        event(annex, deps.clock.now(), 'terminate-requested', `ended by ${caller.principalArn}`, {
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
        event(annex, now, 'expired', `lease ended at ${annex.expiresAt}`, { reason: 'expired' }),
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
    event(
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
