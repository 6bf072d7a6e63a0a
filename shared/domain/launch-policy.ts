/**
 * A pool's launch policy: its defaults, how a registration sets it, and the checks create,
 * add-nodes and extend run before anything is written or launched. Pure: no store, no clock.
 *
 * Refusals name the request field and the rule: 403 (Forbidden) for what the pool does not allow
 * at all, 422 (LimitExceeded) for what goes over one of its limits.
 */
import { forbidden, limitExceeded } from './errors.ts';
import { instanceSize } from './instance-sizes.ts';
import type { Caller, InstanceRequirements, LaunchPolicy, Pool, PoolScope, UserQuota } from './model.ts';
import type { LaunchSettings, Settings } from './ports.ts';

/**
 * Per-user quotas a pool gets unless its registrar sets others: generous enough for a real burst
 * (and the stack's own per-annex limit), small enough that one user cannot take the account's
 * EC2 limits or budget alone.
 */
export const DEFAULT_QUOTA: Required<UserQuota> = {
  maxInstances: 100,
  maxVCpus: 800,
  maxMonthlySpendUsd: 5000,
};

/** Longest total life of an annex, from creation to expiry over all extensions (30 days). */
export const DEFAULT_MAX_LIFETIME_SECONDS = 30 * 24 * 3600;

/** What a registration may say about the policy; anything left out takes the scope's default. */
export interface LaunchPolicyInput {
  allowedImageIds?: string[];
  allowedSubnetIds?: string[];
  allowedSecurityGroupIds?: string[];
  allowedInstanceTypes?: string[];
  maxVCpusPerInstance?: number;
  maxGpusPerInstance?: number;
  maxLeaseSeconds?: number;
  maxLifetimeSeconds?: number;
  allowUserImage?: boolean;
  allowUserData?: boolean;
  allowKeyPair?: boolean;
  requireMaxSpend?: boolean;
  /** `null`: no limit. */
  quota?: { maxInstances?: number | null; maxVCpus?: number | null; maxMonthlySpendUsd?: number | null };
}

/**
 * The policy of a pool registered without one: the stack's default image, subnets and security
 * groups only, the stack's longest lease, the default lifetime and quotas. A shared pool's users
 * may not bring their own image, user data or key pair (they would get root on a machine that is
 * handed the pool's credential); a private pool's user may (it is their own pool and credential).
 */
export const defaultPolicy = (
  scope: PoolScope,
  launch: LaunchSettings,
  settings: Settings,
): LaunchPolicy => ({
  allowedImageIds: launch.defaultImageId === undefined ? [] : [launch.defaultImageId],
  allowedSubnetIds: [...launch.defaultSubnetIds],
  allowedSecurityGroupIds: [...launch.defaultSecurityGroupIds],
  allowedInstanceTypes: [],
  maxLeaseSeconds: settings.maxDurationSeconds,
  maxLifetimeSeconds: Math.max(DEFAULT_MAX_LIFETIME_SECONDS, settings.maxDurationSeconds),
  allowUserImage: scope === 'private',
  allowUserData: scope === 'private',
  allowKeyPair: scope === 'private',
  requireMaxSpend: false,
  quota: { ...DEFAULT_QUOTA },
});

/** The policy a pool enforces: its own, or its scope's defaults for a pool registered before policies. */
export const policyOf = (pool: Pool, launch: LaunchSettings, settings: Settings): LaunchPolicy =>
  pool.policy ?? defaultPolicy(pool.scope, launch, settings);

const outside = (values: readonly string[], allowed: readonly string[]): string[] =>
  values.filter((v) => !allowed.includes(v));

/**
 * The policy a registration sets: the input over the scope's defaults. Only an administrator may
 * open a pool to subnets or security groups other than the stack's own (a private pool's owner
 * could otherwise point it, and the machines that get its credential, at any network of the
 * account); the stack's longest lease bounds every pool's.
 */
export const resolvePolicy = (
  caller: Caller,
  scope: PoolScope,
  input: LaunchPolicyInput | undefined,
  launch: LaunchSettings,
  settings: Settings,
): LaunchPolicy => {
  const base = defaultPolicy(scope, launch, settings);
  const given = input ?? {};
  // Nobody may name what the stack's launch roles cannot use: EC2 would refuse every launch.
  const stackSubnets = launch.launchSubnetIds ?? launch.defaultSubnetIds;
  const offStackSubnets = outside(given.allowedSubnetIds ?? [], stackSubnets);
  if (offStackSubnets.length > 0) {
    throw forbidden(
      `policy.allowedSubnetIds: the stack launches only into ${stackSubnets.join(', ') || 'no subnet'} (not ${offStackSubnets.join(', ')}; ANNEX_ALLOWED_SUBNET_IDS)`,
      'policy.allowedSubnetIds',
    );
  }
  const stackGroups = launch.launchSecurityGroupIds ?? launch.defaultSecurityGroupIds;
  const offStackGroups = outside(given.allowedSecurityGroupIds ?? [], stackGroups);
  if (offStackGroups.length > 0) {
    throw forbidden(
      `policy.allowedSecurityGroupIds: the stack allows only ${stackGroups.join(', ') || 'no security group'} (not ${offStackGroups.join(', ')}; ANNEX_ALLOWED_SECURITY_GROUP_IDS)`,
      'policy.allowedSecurityGroupIds',
    );
  }
  if (!caller.admin) {
    const subnets = outside(given.allowedSubnetIds ?? [], launch.defaultSubnetIds);
    if (subnets.length > 0) {
      throw forbidden(
        `policy.allowedSubnetIds: only an administrator may allow subnets other than the stack's (${subnets.join(', ')})`,
        'policy.allowedSubnetIds',
      );
    }
    const groups = outside(given.allowedSecurityGroupIds ?? [], launch.defaultSecurityGroupIds);
    if (groups.length > 0) {
      throw forbidden(
        `policy.allowedSecurityGroupIds: only an administrator may allow security groups other than the stack's (${groups.join(', ')})`,
        'policy.allowedSecurityGroupIds',
      );
    }
  }
  if (given.maxLeaseSeconds !== undefined && given.maxLeaseSeconds > settings.maxDurationSeconds) {
    throw limitExceeded(
      `policy.maxLeaseSeconds: at most ${settings.maxDurationSeconds} (the stack's longest lease)`,
      'policy.maxLeaseSeconds',
    );
  }
  const quota: UserQuota = { ...base.quota };
  for (const k of ['maxInstances', 'maxVCpus', 'maxMonthlySpendUsd'] as const) {
    const v = given.quota?.[k];
    if (v === null) delete quota[k];
    else if (v !== undefined) quota[k] = v;
  }
  const { quota: _ignored, ...rest } = given;
  const policy: LaunchPolicy = { ...base, ...definedOnly(rest), quota };
  return policy;
};

export const definedOnly = <T extends object>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

const list = (values: readonly string[]): string => (values.length === 0 ? 'none' : values.join(', '));

/** `g5.*` matches `g5.xlarge`; a pattern without `*` matches the type exactly. */
export const typeMatches = (pattern: string, instanceType: string): boolean =>
  new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(instanceType);

/** What a create asks to launch, as the policy sees it (after defaults are filled in). */
export interface CreateCheck {
  imageId: string;
  subnetIds: string[];
  securityGroupIds: string[];
  availabilityZones?: string[];
  instanceTypes: string[];
  instanceRequirements?: InstanceRequirements;
  userData?: string;
  keyName?: string;
  maxSpend?: number;
  leaseSeconds: number;
}

/** Refuses a create outside the pool's policy (throws the first refusal). */
export const checkCreate = (pool: Pick<Pool, 'name'>, policy: LaunchPolicy, request: CreateCheck): void => {
  const name = `pool "${pool.name}"`;
  if (request.userData !== undefined && !policy.allowUserData) {
    throw forbidden(`userData: ${name} does not allow user data of your own`, 'userData');
  }
  if (request.keyName !== undefined && !policy.allowKeyPair) {
    throw forbidden(`keyName: ${name} does not allow a key pair`, 'keyName');
  }
  if (!policy.allowUserImage && !policy.allowedImageIds.includes(request.imageId)) {
    throw forbidden(`imageId: ${name} allows only ${list(policy.allowedImageIds)}`, 'imageId');
  }
  const subnets = outside(request.subnetIds, policy.allowedSubnetIds);
  if (subnets.length > 0) {
    throw forbidden(`subnetIds: ${name} allows only ${list(policy.allowedSubnetIds)}`, 'subnetIds');
  }
  if (
    request.availabilityZones !== undefined &&
    request.subnetIds.length === 0 &&
    policy.allowedSubnetIds.length > 0
  ) {
    throw forbidden(
      `availabilityZones: ${name} launches only into its subnets (${list(policy.allowedSubnetIds)})`,
      'availabilityZones',
    );
  }
  const groups = outside(request.securityGroupIds, policy.allowedSecurityGroupIds);
  if (groups.length > 0) {
    throw forbidden(
      `securityGroupIds: ${name} allows only ${list(policy.allowedSecurityGroupIds)}`,
      'securityGroupIds',
    );
  }
  checkHardware(pool, policy, request.instanceTypes, request.instanceRequirements);
  if (policy.requireMaxSpend && request.maxSpend === undefined) {
    throw forbidden(`maxSpend: ${name} requires a maxSpend on every annex`, 'maxSpend');
  }
  checkLease(pool, policy, request.leaseSeconds, request.leaseSeconds, 'durationSeconds');
};

/** Refuses instance types (or hardware needs) the pool does not allow; create and add-nodes. */
export const checkHardware = (
  pool: Pick<Pool, 'name'>,
  policy: LaunchPolicy,
  instanceTypes: readonly string[],
  requirements: InstanceRequirements | undefined,
): void => {
  const name = `pool "${pool.name}"`;
  const patterns = policy.allowedInstanceTypes;
  if (requirements !== undefined) {
    checkRequirements(name, policy, requirements);
    return;
  }
  for (const type of instanceTypes) {
    if (patterns.length > 0 && !patterns.some((p) => typeMatches(p, type))) {
      throw forbidden(`instanceTypes: ${name} allows only ${list(patterns)} (not ${type})`, 'instanceTypes');
    }
    const { maxVCpusPerInstance: maxVCpus, maxGpusPerInstance: maxGpus } = policy;
    if (maxVCpus === undefined && maxGpus === undefined) continue;
    const size = instanceSize(type);
    if (size === undefined) {
      throw forbidden(
        `instanceTypes: ${name} limits the size of an instance and the size of ${type} is not known`,
        'instanceTypes',
      );
    }
    if (maxVCpus !== undefined && size.vCpus > maxVCpus) {
      throw limitExceeded(
        `instanceTypes: ${name} allows at most ${maxVCpus} vCPUs per instance (${type} has ${size.vCpus})`,
        'instanceTypes',
      );
    }
    if (maxGpus !== undefined && size.gpus > maxGpus) {
      throw limitExceeded(
        `instanceTypes: ${name} allows at most ${maxGpus} GPUs per instance (${type} has ${size.gpus})`,
        'instanceTypes',
      );
    }
  }
};

const checkRequirements = (name: string, policy: LaunchPolicy, r: InstanceRequirements): void => {
  const patterns = policy.allowedInstanceTypes;
  if (patterns.length > 0) {
    const allowed = r.allowedInstanceTypes ?? [];
    if (allowed.length === 0) {
      throw forbidden(
        `instanceRequirements.allowedInstanceTypes: ${name} allows only ${list(patterns)}; name them`,
        'instanceRequirements.allowedInstanceTypes',
      );
    }
    // A pattern of the request is allowed when a pool pattern covers it (`g5.*` under `g5.*`).
    const wider = allowed.filter((a) => !patterns.some((p) => typeMatches(p, a.replace(/\*/g, 'x'))));
    if (wider.length > 0) {
      throw forbidden(
        `instanceRequirements.allowedInstanceTypes: ${name} allows only ${list(patterns)} (not ${wider.join(', ')})`,
        'instanceRequirements.allowedInstanceTypes',
      );
    }
  }
  const over = (limit: number | undefined, max: number | undefined, field: string, what: string) => {
    if (limit === undefined) return;
    if (max === undefined || max > limit) {
      throw limitExceeded(`${field}: ${name} allows at most ${limit} ${what} per instance`, field);
    }
  };
  over(policy.maxVCpusPerInstance, r.vCpus.max, 'instanceRequirements.vCpus.max', 'vCPUs');
  over(policy.maxGpusPerInstance, r.gpus?.max, 'instanceRequirements.gpus.max', 'GPUs');
};

/**
 * Refuses a lease longer than the pool's longest lease, or a total life (creation to the new
 * expiry) beyond its longest lifetime. `field`: what the request gave (durationSeconds or expiresAt).
 */
export const checkLease = (
  pool: Pick<Pool, 'name'>,
  policy: LaunchPolicy,
  leaseSeconds: number,
  lifetimeSeconds: number,
  field: string,
): void => {
  const name = `pool "${pool.name}"`;
  if (leaseSeconds > policy.maxLeaseSeconds) {
    throw limitExceeded(`${field}: ${name} allows leases of at most ${policy.maxLeaseSeconds} s`, field);
  }
  if (lifetimeSeconds > policy.maxLifetimeSeconds) {
    throw limitExceeded(
      `${field}: ${name} allows an annex at most ${policy.maxLifetimeSeconds} s from creation to expiry`,
      field,
    );
  }
};
