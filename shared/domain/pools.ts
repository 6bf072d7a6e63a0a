/** Pool registration: where an annex's instances report, and the credential they join with. */
import { forbidden } from './errors.ts';
import { policyOf, resolvePolicy, type LaunchPolicyInput } from './launch-policy.ts';
import { principalLabel, toIso } from './lease.ts';
import type { Caller, CredentialType, LaunchPolicy, Pool, PoolScope } from './model.ts';
import type { Clock, LaunchSettings, LeaseStore, SecretStore, Settings } from './ports.ts';

export interface PoolDeps {
  store: LeaseStore;
  secrets: Pick<SecretStore, 'putPoolCredential'>;
  clock: Clock;
  settings: Settings;
  /** The stack's default image, subnets and security groups: a policy's defaults and bounds. */
  launch: LaunchSettings;
}

export interface PutPoolInput {
  collectorHost: string;
  collectorPort: number;
  credential: { type: CredentialType; value: string };
  scope?: PoolScope;
  /** The HTCondor user annexes in this pool run jobs for, unless an annex names its own users. */
  condorUser?: string;
  /** The pool's TRUST_DOMAIN, when it is not the collector host (IDTOKENS). */
  trustDomain?: string;
  /** What its annexes may launch; anything left out takes the scope's default (launch-policy.ts). */
  policy?: LaunchPolicyInput;
}

export const poolCredentialParameter = (
  stage: string,
  scope: PoolScope,
  owner: string,
  pool: string,
): string =>
  scope === 'shared'
    ? `/annex/${stage}/pools/shared/${pool}/credential`
    : `/annex/${stage}/pools/private/${principalLabel(owner)}/${pool}/credential`;

/**
 * Registers (or re-registers) a pool. Administrators register shared pools that every user may
 * burst into; anyone may register a private pool of their own. The credential goes to SSM only.
 */
export const putPool = async (
  deps: PoolDeps,
  caller: Caller,
  name: string,
  input: PutPoolInput,
): Promise<Pool & { policy: LaunchPolicy }> => {
  const scope = input.scope ?? (caller.admin ? 'shared' : 'private');
  if (scope === 'shared' && !caller.admin)
    throw forbidden('only an administrator may register a shared pool');
  // Checked before the credential is written: a refused registration changes nothing.
  const policy = resolvePolicy(caller, scope, input.policy, deps.launch, deps.settings);
  const now = toIso(deps.clock.now());
  const existing = await deps.store.getPool(name, caller.principalArn);
  const credentialParameter = poolCredentialParameter(deps.settings.stage, scope, caller.principalArn, name);
  await deps.secrets.putPoolCredential(credentialParameter, input.credential.value, {
    'annex:stage': deps.settings.stage,
    'annex:pool': name,
  });
  const pool: Pool & { policy: LaunchPolicy } = {
    name,
    scope,
    owner: caller.principalArn,
    collectorHost: input.collectorHost,
    collectorPort: input.collectorPort,
    credentialType: input.credential.type,
    credentialParameter,
    ...(input.condorUser === undefined ? {} : { condorUser: input.condorUser }),
    ...(input.trustDomain === undefined ? {} : { trustDomain: input.trustDomain }),
    policy,
    createdAt: existing?.scope === scope ? existing.createdAt : now,
    updatedAt: now,
  };
  await deps.store.putPool(pool);
  return pool;
};

/**
 * The pools a caller may burst into: their own private pools and every shared pool, each with the
 * launch policy it enforces (its scope's defaults for a pool registered before pools had one).
 */
export const listPools = async (
  deps: Pick<PoolDeps, 'store' | 'launch' | 'settings'>,
  caller: Caller,
): Promise<(Pool & { policy: LaunchPolicy })[]> =>
  (await deps.store.listPools(caller.principalArn)).map((p) => ({
    ...p,
    policy: policyOf(p, deps.launch, deps.settings),
  }));
