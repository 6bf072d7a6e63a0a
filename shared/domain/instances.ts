/**
 * The instance side of the API: what a booting annex instance may ask (`/v1/instances/self/*`).
 *
 * The caller is identified by API Gateway from its SigV4 signature: an instance signs with its
 * instance-profile credentials, so its principal is `assumed-role/<instance role>/<instance id>`.
 * Nothing else is trusted: the instance id names an item of the lease table (written when the
 * instance was launched, or adopted by the sweep only once its provenance was checked: see
 * provenance.ts), which names the annex; the record must carry its batch's launch token; and the
 * annex must still be live.
 *
 * Bootstrap hands out the pool credential, so it answers each instance once: the instance record
 * is marked (a conditional write) before the secret is read, and a second call is refused and
 * recorded on the annex. A job that later reaches the role's credentials on that machine cannot
 * read the credential again.
 *
 * For an IDTOKENS pool the credential handed out is not the pool's signing key but an IDTOKEN the
 * control plane mints for this one instance (shared/domain/idtokens.ts): identity
 * `annex-<instance id>@<trust domain>`, an execute point's rights only, expiring with the lease
 * (+ a short grace). When the lease moves, the heartbeat answer carries a fresh one. Each token's
 * jti and expiry are recorded (an event and the instance record), never the token.
 */
import { renderCondorConfig, PLACEHOLDER_INSTANCE_ID } from '../boot/condor-config.ts';
import type { AnnexRef, ReadDeps } from './annex-deps.ts';
import { resolveAnnex } from './annex-read.ts';
import { conflict, forbidden, isAnnexError } from './errors.ts';
import { annexEvent } from './events.ts';
import {
  EXECUTE_POINT_AUTHORIZATIONS,
  instanceTokenSubject,
  mintToken,
  tokenExpiry,
  type MintedToken,
} from './idtokens.ts';
import { applyNotice } from './instance-notices.ts';
import { recordIsGenuine } from './provenance.ts';
import { toIso } from './lease.ts';
import type { AgentState, Annex, AnnexCondor, Caller, InstanceRecord, Interruption } from './model.ts';
import type { Clock, InstanceSettings, LeaseStore, Logger, SecretStore } from './ports.ts';

type LocateStore = Pick<LeaseStore, 'findInstanceAnnex' | 'getAnnex' | 'getInstance'>;

/** Interruption: the lease table only. */
export interface InstanceReportDeps {
  store: LocateStore & Pick<LeaseStore, 'recordHeartbeat' | 'applyInstanceNotice' | 'appendEvent'>;
  clock: Clock;
  log: Logger;
  instances: InstanceSettings;
}

/** Heartbeat: the lease table, and the annex's credential copy (SSM) to renew an IDTOKEN. */
export interface HeartbeatDeps {
  store: LocateStore & Pick<LeaseStore, 'getPool' | 'recordHeartbeat' | 'recordTokenIssued'>;
  secrets: Pick<SecretStore, 'getAnnexCredential'>;
  clock: Clock;
  log: Logger;
  instances: InstanceSettings;
}

/** Bootstrap: the lease table and the annex's credential copy (SSM). */
export interface BootstrapDeps {
  store: LocateStore &
    Pick<
      LeaseStore,
      'getPool' | 'markBootstrapped' | 'clearBootstrapped' | 'appendEvent' | 'recordTokenIssued'
    >;
  secrets: Pick<SecretStore, 'getAnnexCredential'>;
  clock: Clock;
  log: Logger;
  instances: InstanceSettings;
}

/** An IDTOKEN for the instance: the token, its jti and when it expires (ISO). */
export interface InstanceToken {
  value: string;
  tokenId: string;
  expiresAt: string;
}

/** What an instance joins its pool with: the pool password, or its own IDTOKEN (never a key). */
export type InstanceCredential = { type: 'password'; value: string } | ({ type: 'idtoken' } & InstanceToken);

export interface BootstrapResult {
  annexId: string;
  annexName: string;
  instanceId: string;
  expiresAt: string;
  idleSeconds: number;
  heartbeatIntervalSeconds: number;
  collector: { host: string; port: number };
  credential: InstanceCredential;
  condorConfig: string;
}

export interface HeartbeatInput {
  claimedSlots: number;
  totalSlots: number;
  idleSeconds: number;
  state: AgentState;
}

export interface HeartbeatResult {
  expiresAt: string;
  idleSeconds: number;
  action: 'continue' | 'shutdown';
  /** IDTOKENS: a fresh token when the lease moved, re-sent for a few heartbeats after it was issued. */
  token?: InstanceToken;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const ASSUMED_ROLE = /^arn:aws[a-z-]*:sts::\d{12}:assumed-role\/([^/]+)\/([^/]+)$/;

/** The same answer for every refusal: a caller learns nothing about which check failed. */
const refused = () => forbidden('only a live annex instance may call this route, once per boot');

/**
 * The instance id of a caller signing as the instance role (its role-session name, as EC2 sets it
 * for instance-profile credentials), or undefined for anyone else.
 */
export const instanceIdOf = (
  sessionArn: string | undefined,
  instanceRoleName: string,
): string | undefined => {
  if (sessionArn === undefined) return undefined;
  const match = ASSUMED_ROLE.exec(sessionArn);
  if (match === null || match[1] !== instanceRoleName) return undefined;
  const session = match[2] ?? '';
  return INSTANCE_ID.test(session) ? session : undefined;
};

/** An annex whose instances may still join and work: being launched or running, and not expired. */
const servesInstances = (annex: Annex, now: Date): boolean =>
  (annex.state === 'REQUESTED' || annex.state === 'LAUNCHING' || annex.state === 'RUNNING') &&
  Date.parse(annex.expiresAt) > now.getTime();

const instanceGone = (i: InstanceRecord): boolean => i.state === 'terminated' || i.state === 'shutting-down';

interface Located {
  instanceId: string;
  annex?: Annex;
  instance?: InstanceRecord;
}

/** Who is calling, and (when they are an instance of ours) its annex and record. */
const locate = async (
  deps: { store: LocateStore; instances: InstanceSettings; log: Logger },
  caller: Caller,
  route: string,
): Promise<Located> => {
  const instanceId = instanceIdOf(caller.sessionArn, deps.instances.instanceRoleName);
  if (instanceId === undefined) {
    deps.log.warn('instance route refused: the caller is not an annex instance', {
      route,
      principalArn: caller.principalArn,
      ...(caller.sessionArn === undefined ? {} : { sessionArn: caller.sessionArn }),
    });
    throw refused();
  }
  const annexId = await deps.store.findInstanceAnnex(instanceId);
  if (annexId === undefined) {
    deps.log.warn('instance route refused: no annex recorded this instance', { route, instanceId });
    throw refused();
  }
  const [annex, instance] = await Promise.all([
    deps.store.getAnnex(annexId),
    deps.store.getInstance(annexId, instanceId),
  ]);
  return {
    instanceId,
    ...(annex === undefined ? {} : { annex }),
    ...(instance === undefined ? {} : { instance }),
  };
};

/** How the annex's instances join its pool: fixed at creation; read from the pool for older annexes. */
export const annexCondor = async (
  deps: { store: Pick<LeaseStore, 'getPool'> },
  annex: Annex,
): Promise<AnnexCondor> => {
  if (annex.condor !== undefined) return annex.condor;
  const pool = await deps.store.getPool(annex.pool, annex.owner);
  if (pool === undefined)
    throw conflict(`the pool ${annex.pool} of annex ${annex.name} is no longer registered`);
  return {
    collectorHost: pool.collectorHost,
    collectorPort: pool.collectorPort,
    credentialType: pool.credentialType,
    allowedUsers: pool.condorUser === undefined ? [] : [pool.condorUser],
    ...(pool.trustDomain === undefined ? {} : { trustDomain: pool.trustDomain }),
  };
};

const configFor = (
  annex: Annex,
  condor: AnnexCondor,
  instance: { instanceId: string; publicIpAddress?: string },
): string =>
  renderCondorConfig({
    annexId: annex.id,
    annexName: annex.name,
    owner: annex.owner,
    expiresAt: annex.expiresAt,
    instanceId: instance.instanceId,
    ...(instance.publicIpAddress === undefined ? {} : { publicIpAddress: instance.publicIpAddress }),
    idleSeconds: annex.idleSeconds,
    collector: { host: condor.collectorHost, port: condor.collectorPort },
    credentialType: condor.credentialType,
    allowedUsers: condor.allowedUsers,
    ...(condor.trustDomain === undefined ? {} : { trustDomain: condor.trustDomain }),
  });

/** How many heartbeats after it was issued a token is sent again, in case an answer was lost. */
const TOKEN_RESENDS = 3;

/** The instance's token for a lease ending at `leaseEnd`, issued at `issuedAt` (the same token every time). */
const instanceToken = (
  condor: AnnexCondor,
  instanceId: string,
  key: string,
  leaseEnd: string,
  issuedAt: Date,
): MintedToken => {
  const trustDomain = condor.trustDomain ?? condor.collectorHost;
  return mintToken({
    key,
    trustDomain,
    subject: instanceTokenSubject(instanceId, trustDomain),
    issuedAt,
    expiresAt: tokenExpiry(leaseEnd),
    authorizations: EXECUTE_POINT_AUTHORIZATIONS,
  });
};

const asInstanceToken = ({ token, claims }: MintedToken): InstanceToken => ({
  value: token,
  tokenId: claims.jti,
  expiresAt: toIso(new Date(claims.exp * 1000)),
});

/**
 * Mints an IDTOKEN for the instance that ends with the lease (+ TOKEN_GRACE_SECONDS) and records
 * its jti and expiry (never the token) on the instance and as an event.
 */
const issueToken = async (
  deps: { store: Pick<LeaseStore, 'recordTokenIssued'>; log: Logger },
  annex: Annex,
  condor: AnnexCondor,
  instanceId: string,
  key: string,
  now: Date,
): Promise<InstanceToken> => {
  const minted = instanceToken(condor, instanceId, key, annex.expiresAt, now);
  const issued = asInstanceToken(minted);
  const { claims } = minted;
  const recorded = await deps.store.recordTokenIssued(
    annex.id,
    instanceId,
    { tokenId: issued.tokenId, expiresAt: issued.expiresAt, issuedAt: toIso(new Date(claims.iat * 1000)) },
    annexEvent(
      annex,
      now,
      'token-issued',
      `instance ${instanceId}: IDTOKEN ${claims.jti} for ${claims.sub}, expires ${issued.expiresAt}`,
      {
        detail: {
          instanceId,
          tokenId: claims.jti,
          subject: claims.sub,
          expiresAt: issued.expiresAt,
          scope: claims.scope,
        },
      },
    ),
  );
  if (!recorded) throw refused();
  deps.log.info('IDTOKEN issued', {
    instanceId,
    annexId: annex.id,
    jti: claims.jti,
    expiresAt: issued.expiresAt,
  });
  return issued;
};

/** When the token of an instance of this annex should expire now (whole seconds, as `exp`). */
const tokenTarget = (annex: Annex): string =>
  toIso(new Date(Math.floor(tokenExpiry(annex.expiresAt).getTime() / 1000) * 1000));

const sameTime = (a: string | undefined, b: string): boolean =>
  a !== undefined && Date.parse(a) === Date.parse(b);

/** POST /v1/instances/self/bootstrap: the pool credential and configuration, once per instance. */
export const bootstrapInstance = async (deps: BootstrapDeps, caller: Caller): Promise<BootstrapResult> => {
  const { instanceId, annex, instance } = await locate(deps, caller, 'bootstrap');
  const now = deps.clock.now();
  const refuse = async (why: string, message: string): Promise<never> => {
    deps.log.warn('bootstrap refused', { instanceId, annexId: annex?.id, why });
    if (annex !== undefined) {
      await deps.store.appendEvent(
        annexEvent(annex, now, 'bootstrap-refused', `instance ${instanceId}: ${message}`, {
          detail: { instanceId, why },
        }),
      );
    }
    throw refused();
  };
  if (annex === undefined || instance === undefined) {
    return refuse('not-recorded', 'the instance is not recorded on its annex');
  }
  // Records are written only from launches Annex made (provenance.ts); one that does not carry
  // its batch's client token did not come from one, and is never served.
  if (!recordIsGenuine(annex, instance)) {
    return refuse('not-launched-by-annex', 'the instance record does not carry a launch token of its batch');
  }
  if (!servesInstances(annex, now)) {
    return refuse('annex-not-live', `the annex is ${annex.state}, lease until ${annex.expiresAt}`);
  }
  if (instanceGone(instance)) return refuse('instance-gone', `the instance is ${instance.state}`);

  // Render first: a configuration that cannot be rendered must not consume the one bootstrap.
  const condor = await annexCondor(deps, annex);
  const condorConfig = configFor(annex, condor, instance);

  // Claim the one bootstrap before the secret is ever read.
  const at = toIso(now);
  const marked = await deps.store.markBootstrapped(annex.id, instanceId, at);
  if (marked === 'missing') return refuse('not-recorded', 'the instance is not recorded on its annex');
  if (marked === 'already') {
    return refuse(
      'already-bootstrapped',
      `a second bootstrap was refused (the first was at ${instance.bootstrappedAt ?? 'an earlier call'})`,
    );
  }
  let credential: InstanceCredential;
  try {
    const value = await deps.secrets.getAnnexCredential(annex.id);
    credential =
      condor.credentialType === 'idtokens-signing-key'
        ? { type: 'idtoken', ...(await issueToken(deps, annex, condor, instanceId, value, now)) }
        : { type: 'password', value };
  } catch (e) {
    deps.log.error('bootstrap could not read the annex credential', {
      instanceId,
      annexId: annex.id,
      error: isAnnexError(e) ? e.code : (e as Error | undefined)?.name,
    });
    // Nothing was served: give the instance its one bootstrap back, so that a retry can succeed.
    try {
      await deps.store.clearBootstrapped(annex.id, instanceId, at);
    } catch (clearing) {
      deps.log.error('could not give the bootstrap back; the instance cannot retry', {
        instanceId,
        annexId: annex.id,
        error: (clearing as Error | undefined)?.name,
      });
    }
    throw e;
  }
  deps.log.info('instance bootstrapped', { instanceId, annexId: annex.id });
  return {
    annexId: annex.id,
    annexName: annex.name,
    instanceId,
    expiresAt: annex.expiresAt,
    idleSeconds: annex.idleSeconds,
    heartbeatIntervalSeconds: deps.instances.heartbeatIntervalSeconds,
    collector: { host: condor.collectorHost, port: condor.collectorPort },
    credential,
    condorConfig,
  };
};

/**
 * POST /v1/instances/self/heartbeat: records what the agent sees (the fields the sweep's idle
 * check reads) and answers with the lease as it is now, so an extension reaches the instance.
 */
export const recordHeartbeat = async (
  deps: HeartbeatDeps,
  caller: Caller,
  input: HeartbeatInput,
): Promise<HeartbeatResult> => {
  const { instanceId, annex, instance } = await locate(deps, caller, 'heartbeat');
  if (annex === undefined || instance === undefined) {
    deps.log.warn('heartbeat refused: the instance is not recorded on its annex', { instanceId });
    throw refused();
  }
  const now = deps.clock.now();
  const lease = { expiresAt: annex.expiresAt, idleSeconds: annex.idleSeconds };
  if (!servesInstances(annex, now) || instanceGone(instance)) {
    // Nothing is written for an annex that has ended: the answer is all the instance needs.
    deps.log.info('heartbeat answered with shutdown', {
      instanceId,
      annexId: annex.id,
      state: annex.state,
      instanceState: instance.state,
    });
    return { ...lease, action: 'shutdown' };
  }
  const idle = input.claimedSlots === 0;
  const written = await deps.store.recordHeartbeat(annex.id, instanceId, {
    at: toIso(now),
    claimedSlots: input.claimedSlots,
    totalSlots: input.totalSlots,
    agentState: input.state,
    ...(idle ? { idleSince: toIso(new Date(now.getTime() - input.idleSeconds * 1000)) } : {}),
  });
  if (!written) throw refused();
  const token = await renewedToken(deps, annex, instance, now);
  return { ...lease, action: 'continue', ...(token === undefined ? {} : { token }) };
};

/**
 * IDTOKENS: a fresh token when the lease moved since the instance's token was issued (recorded on
 * the instance); and, for TOKEN_RESENDS heartbeats after one was issued, the same token again
 * (minted anew from what was recorded), so an answer that never arrived does not leave the
 * instance with a token that ends before its lease. Undefined for a password pool, and when
 * renewal fails (logged; the next heartbeat tries again).
 */
const renewedToken = async (
  deps: HeartbeatDeps,
  annex: Annex,
  instance: InstanceRecord,
  now: Date,
): Promise<InstanceToken | undefined> => {
  if (instance.bootstrappedAt === undefined) return undefined;
  const leaseMoved = !sameTime(instance.tokenExpiresAt, tokenTarget(annex));
  const issuedAt = instance.tokenIssuedAt === undefined ? undefined : new Date(instance.tokenIssuedAt);
  const resend =
    issuedAt !== undefined &&
    now.getTime() - issuedAt.getTime() < TOKEN_RESENDS * deps.instances.heartbeatIntervalSeconds * 1000;
  if (!leaseMoved && !resend) return undefined;
  try {
    const condor = await annexCondor(deps, annex);
    if (condor.credentialType !== 'idtokens-signing-key') return undefined;
    const key = await deps.secrets.getAnnexCredential(annex.id);
    if (leaseMoved || issuedAt === undefined)
      return await issueToken(deps, annex, condor, instance.instanceId, key, now);
    return asInstanceToken(instanceToken(condor, instance.instanceId, key, annex.expiresAt, issuedAt));
  } catch (e) {
    deps.log.error('could not renew the instance IDTOKEN; the next heartbeat tries again', {
      instanceId: instance.instanceId,
      annexId: annex.id,
      error: isAnnexError(e) ? e.code : (e as Error | undefined)?.name,
    });
    return undefined;
  }
};

/**
 * POST /v1/instances/self/interruption: the instance saw EC2's spot interruption notice. Recorded
 * as the EC2 event would be (shared/domain/instance-notices.ts): whichever arrives first is the
 * one notice and the one event; a repeat is answered the same and writes nothing.
 */
export const recordInterruption = async (
  deps: InstanceReportDeps,
  caller: Caller,
  interruption: Interruption,
): Promise<void> => {
  const { instanceId, annex, instance } = await locate(deps, caller, 'interruption');
  if (annex === undefined || instance === undefined) {
    deps.log.warn('interruption refused: the instance is not recorded on its annex', { instanceId });
    throw refused();
  }
  const at = toIso(deps.clock.now());
  const outcome = await applyNotice(
    deps,
    instance,
    { kind: 'interruption', at, interruption },
    'instance',
    at,
  );
  if (outcome === 'missing') throw refused();
  deps.log.warn('instance interruption reported', {
    instanceId,
    annexId: annex.id,
    ...interruption,
    alreadyKnown: outcome === 'stale',
  });
};

/**
 * GET /v1/annexes/{name}/condor-config: the fragment an instance of the annex gets, for people
 * building their own images. No secret is in it; the instance id is a placeholder.
 */
export const annexCondorConfig = async (
  deps: ReadDeps,
  caller: Caller,
  ref: AnnexRef,
): Promise<{ annex: Annex; condorConfig: string }> => {
  const annex = await resolveAnnex(deps, caller, ref);
  const condor = await annexCondor(deps, annex);
  return { annex, condorConfig: configFor(annex, condor, { instanceId: PLACEHOLDER_INSTANCE_ID }) };
};
