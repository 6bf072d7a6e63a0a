/**
 * Creating an annex: the request is resolved (its spot fleet config applied, the defaults filled
 * in), checked against the pool's policy and the owner's quota, written once (a retry with the
 * same Idempotency-Key replays it) and provisioned.
 */
import { conflict, limitExceeded, notFound, validationError } from './errors.ts';
import {
  annexIdFor,
  DEFAULT_IDLE_SECONDS,
  leaseExpiry,
  newLaunchSecret,
  requestHash,
  toIso,
} from './lease.ts';
import type {
  AllocationStrategy,
  Annex,
  Caller,
  CapacityPolicy,
  InstanceRequirements,
  LaunchSpec,
  Market,
} from './model.ts';
import { translateSpotFleetConfig } from './spot-fleet-config.ts';
import { checkCreate, definedOnly, policyOf } from './launch-policy.ts';
import { admit, instanceDemand, spendFor } from './quota.ts';
import { DEFAULT_MAX_REPLACEMENTS } from './replacement.ts';
import { admitted } from './annex-admission.ts';
import type { LaunchDeps } from './annex-deps.ts';
import { provision } from './annex-launch.ts';
import { annexEvent } from './events.ts';

/** The pool a create request that names none uses (and Slack's first choice). */
export const DEFAULT_POOL = 'default';
/** The market of a create request that gives none and no spot fleet config. */
const DEFAULT_MARKET: Market = 'on-demand';

export interface CreateAnnexInput {
  name: string;
  /** Default DEFAULT_POOL. */
  pool?: string;
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

/**
 * The one place a create request's defaults are decided (the API, Slack and scripts send what
 * the caller gave): the pool, and the market unless a spot fleet config implies it. The request
 * hash is taken after, so a retry that spells a default out replays the same annex.
 */
const withDefaults = (input: CreateAnnexInput): CreateAnnexInput & { pool: string } => ({
  ...input,
  pool: input.pool ?? DEFAULT_POOL,
  ...(input.spotFleetConfig === undefined ? { market: input.market ?? DEFAULT_MARKET } : {}),
});

/** A create request with its spot fleet config (if any) applied and the defaults filled in. */
type ResolvedCreate = Omit<CreateAnnexInput, 'spotFleetConfig'> & {
  pool: string;
  count: number;
  instanceTypes: string[];
  market: Market;
  availabilityZones?: string[];
};

const resolveCreate = (input: CreateAnnexInput & { pool: string }): ResolvedCreate => {
  const { spotFleetConfig, ...explicit } = input;
  const fromConfig = spotFleetConfig === undefined ? {} : translateSpotFleetConfig(spotFleetConfig);
  const merged = { ...fromConfig, ...definedOnly(explicit) };
  if (merged.count === undefined) throw validationError('count', 'required');
  const resolved: ResolvedCreate = {
    ...merged,
    name: input.name,
    pool: input.pool,
    count: merged.count,
    instanceTypes: merged.instanceTypes ?? [],
    // withDefaults gave a market, or the spot fleet config implies one.
    market: merged.market ?? DEFAULT_MARKET,
  };
  checkMarket(resolved, resolved.count);
  return resolved;
};

/** The rules between market, types and the spot options (both for create and for a batch). */
export const checkMarket = (
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

export const createAnnex = async (
  deps: LaunchDeps,
  caller: Caller,
  given: CreateAnnexInput,
  idempotencyKey?: string,
): Promise<{ annex: Annex; replayed: boolean }> => {
  const input = withDefaults(given);
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
    ...definedOnly({
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
    ...definedOnly({
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
  const created = annexEvent(
    annex,
    now,
    'created',
    `annex requested: ${describeBatch(request.count, spec)}`,
    {
      detail: {
        count: request.count,
        market: spec.market,
        instanceTypes: spec.instanceTypes,
        expiresAt: annex.expiresAt,
      },
    },
  );
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
        ...definedOnly({ maxSpend: input.maxSpend }),
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
