/**
 * For an IDTOKENS pool the credential handed out is not the pool's signing key but an IDTOKEN the
 * control plane mints for this one instance (shared/domain/idtokens.ts): identity
 * `annex-<instance id>@<trust domain>`, an execute point's rights only, expiring with the lease
 * (+ a short grace). When the lease moves, the heartbeat answer carries a fresh one. Each token's
 * jti and expiry are recorded (an event and the instance record), never the token.
 */
import { isAnnexError } from './errors.ts';
import { annexEvent } from './events.ts';
import {
  EXECUTE_POINT_AUTHORIZATIONS,
  instanceTokenSubject,
  mintToken,
  tokenExpiry,
  type MintedToken,
} from './idtokens.ts';
import { refused } from './instance-caller.ts';
import { annexCondor } from './instance-config.ts';
import { toIso } from './lease.ts';
import type { Annex, AnnexCondor, InstanceRecord } from './model.ts';
import type { InstanceSettings, LeaseStore, Logger, SecretStore } from './ports.ts';

/** An IDTOKEN for the instance: the token, its jti and when it expires (ISO). */
export interface InstanceToken {
  value: string;
  tokenId: string;
  expiresAt: string;
}

/** What renewing a token needs: the pool (older annexes), the credential copy, the record. */
export interface RenewDeps {
  store: Pick<LeaseStore, 'getPool' | 'recordTokenIssued'>;
  secrets: Pick<SecretStore, 'getAnnexCredential'>;
  log: Logger;
  instances: InstanceSettings;
}

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
export const issueToken = async (
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

/**
 * IDTOKENS: a fresh token when the lease moved since the instance's token was issued (recorded on
 * the instance); and, for TOKEN_RESENDS heartbeats after one was issued, the same token again
 * (minted anew from what was recorded), so an answer that never arrived does not leave the
 * instance with a token that ends before its lease. Undefined for a password pool, and when
 * renewal fails (logged; the next heartbeat tries again).
 */
export const renewedToken = async (
  deps: RenewDeps,
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
