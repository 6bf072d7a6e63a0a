/**
 * The instance side of the API: what a booting annex instance may ask (`/v1/instances/self/*`).
 * Who the caller is: instance-caller.ts (its record must carry its batch's launch token, and the
 * annex must still be live); its configuration: instance-config.ts; its IDTOKEN: instance-tokens.ts.
 *
 * Bootstrap hands out the pool credential, so it answers each instance once: the instance record
 * is marked (a conditional write) before the secret is read, and a second call is refused and
 * recorded on the annex. A job that later reaches the role's credentials on that machine cannot
 * read the credential again.
 */
import { isAnnexError } from './errors.ts';
import { annexEvent } from './events.ts';
import { applyNotice } from './instance-notices.ts';
import { instanceGone, locate, refused, servesInstances, type LocateStore } from './instance-caller.ts';
import { annexCondor, configFor } from './instance-config.ts';
import { issueToken, renewedToken, type InstanceToken } from './instance-tokens.ts';
import { recordIsGenuine } from './provenance.ts';
import { toIso } from './lease.ts';
import type { AgentState, Caller, Interruption } from './model.ts';
import type { Clock, InstanceSettings, LeaseStore, Logger, SecretStore } from './ports.ts';

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
