/**
 * HTCondor IDTOKENS, minted by the control plane for one annex instance. Pure crypto (node:crypto),
 * no AWS.
 *
 * The format and signature are HTCondor's own (condor_auth_passwd.cpp, store_cred.cpp):
 *   - the signing key is what `condor_store_cred` stores, unscrambled (the file is XOR'd with
 *     DE AD BE EF); what a pool registers with Annex is that unscrambled value;
 *   - for the pool key (kid `POOL`) the key is concatenated with itself;
 *   - HKDF-SHA256 with salt `htcondor` and info `master jwt` gives a 32-byte HS256 key;
 *   - header `{"alg":"HS256","kid":…}`, claims `iss` (TRUST_DOMAIN), `sub`, `iat`, `exp`, `jti`
 *     (HTCondor refuses a token without one) and `scope`.
 * A token without `scope` carries every right of its identity: this module never mints one.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/** The key name of the pool signing key (SEC_TOKEN_POOL_SIGNING_KEY_FILE). */
export const POOL_KEY_ID = 'POOL';
/**
 * What an execute point needs and nothing more (HTCondor's own execute-node set-up,
 * build/docker/services/README.md, and `htcondor annex create`): READ to query the collector,
 * ADVERTISE_STARTD and ADVERTISE_MASTER to send its ads. Never ADMINISTRATOR, CONFIG, NEGOTIATOR,
 * DAEMON or WRITE.
 */
export const EXECUTE_POINT_AUTHORIZATIONS = ['READ', 'ADVERTISE_STARTD', 'ADVERTISE_MASTER'] as const;
/** A token outlives its lease by this much, so a heartbeat late by a few minutes renews it in time. */
export const TOKEN_GRACE_SECONDS = 300;

const SCRAMBLE = Buffer.from([0xde, 0xad, 0xbe, 0xef]);

/** condor_store_cred's scramble; it is its own inverse. */
export const condorScramble = (bytes: Buffer): Buffer =>
  Buffer.from(bytes.map((b, i) => b ^ (SCRAMBLE[i % 4] ?? 0)));

/** The HS256 key HTCondor derives from a signing key (its unscrambled bytes) named `kid`. */
export const tokenSigningKey = (key: Buffer, kid: string): Buffer => {
  const material = kid === POOL_KEY_ID ? Buffer.concat([key, key]) : key;
  return Buffer.from(hkdfSync('sha256', material, 'htcondor', 'master jwt', 32));
};

export interface TokenClaims {
  iss: string;
  sub: string;
  iat: number;
  exp: number;
  jti: string;
  scope: string;
}

export interface MintInput {
  /** The signing key as the pool registered it (the unscrambled text). */
  key: string;
  kid?: string;
  trustDomain: string;
  subject: string;
  issuedAt: Date;
  expiresAt: Date;
  authorizations: readonly string[];
  /**
   * Default: derived from the key, subject, iat and exp, so the same token can be minted again
   * (re-sent) without keeping it anywhere; unique per identity and issue time.
   */
  jti?: string;
}

export interface MintedToken {
  token: string;
  claims: TokenClaims;
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');
/** JSON as HTCondor's picojson writes it (`/` escaped), so a token is byte for byte condor_token_create's. */
const condorJson = (value: object): string => JSON.stringify(value).replace(/\//g, '\\/');
const seconds = (at: Date): number => Math.floor(at.getTime() / 1000);

/** The identity an annex instance authenticates as: never `condor@`. */
export const instanceTokenSubject = (instanceId: string, trustDomain: string): string =>
  `annex-${instanceId}@${trustDomain}`;

/** When a token for a lease ending at `leaseEnd` (ISO) expires. */
export const tokenExpiry = (leaseEnd: string): Date =>
  new Date(Date.parse(leaseEnd) + TOKEN_GRACE_SECONDS * 1000);

export const mintToken = (input: MintInput): MintedToken => {
  if (input.authorizations.length === 0) {
    throw new Error('an IDTOKEN without scope would carry every right of its identity');
  }
  const kid = input.kid ?? POOL_KEY_ID;
  const key = tokenSigningKey(Buffer.from(input.key, 'utf8'), kid);
  const exp = seconds(input.expiresAt);
  const iat = seconds(input.issuedAt);
  const claims: TokenClaims = {
    exp,
    iat,
    iss: input.trustDomain,
    jti:
      input.jti ??
      createHmac('sha256', key)
        .update(`annex jti\n${input.subject}\n${iat}\n${exp}`)
        .digest('hex')
        .slice(0, 32),
    scope: input.authorizations.map((a) => `condor:/${a}`).join(' '),
    sub: input.subject,
  };
  const signingInput = `${b64url(condorJson({ alg: 'HS256', kid }))}.${b64url(condorJson(claims))}`;
  const signature = createHmac('sha256', key).update(signingInput).digest();
  return { token: `${signingInput}.${b64url(signature)}`, claims };
};

export interface DecodedToken {
  header: { alg?: unknown; kid?: unknown };
  claims: Record<string, unknown>;
}

/** The header and claims of a token, without checking its signature (display only). */
export const decodeToken = (token: string): DecodedToken | undefined => {
  const [header, payload] = token.trim().split('.');
  if (header === undefined || payload === undefined) return undefined;
  try {
    return {
      header: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as DecodedToken['header'],
      claims: JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>,
    };
  } catch {
    return undefined;
  }
};

/**
 * Checks a token as HTCondor's server side does with the signing key (its unscrambled bytes):
 * HS256 under the key its `kid` names, and a `jti`. Returns the decoded token, or undefined.
 */
export const verifyToken = (token: string, key: Buffer, now?: Date): DecodedToken | undefined => {
  const parts = token.trim().split('.');
  const decoded = decodeToken(token);
  if (parts.length !== 3 || decoded === undefined) return undefined;
  const { header, claims } = decoded;
  if (header.alg !== 'HS256' || typeof header.kid !== 'string') return undefined;
  const expected = createHmac('sha256', tokenSigningKey(key, header.kid))
    .update(`${parts[0]}.${parts[1]}`)
    .digest();
  const given = Buffer.from(parts[2] ?? '', 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  if (typeof claims.jti !== 'string' || claims.jti === '') return undefined;
  if (now !== undefined && typeof claims.exp === 'number' && claims.exp <= seconds(now)) return undefined;
  return decoded;
};
