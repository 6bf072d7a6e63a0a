import { describe, expect, it } from 'vitest';
import {
  EXECUTE_POINT_AUTHORIZATIONS,
  TOKEN_GRACE_SECONDS,
  condorScramble,
  decodeToken,
  instanceTokenSubject,
  mintToken,
  tokenExpiry,
  verifyToken,
} from '../../../shared/domain/idtokens.ts';

// Minted by HTCondor 25.0.14's Condor_Auth_Passwd::generate_token (libcondor_utils of the pinned
// wheel) with the pool key `secret-key-1`, TRUST_DOMAIN pool.example.org, lifetime 600 s
// (test/integration/idtokens-htcondor.test.ts does this live where a C++ compiler exists).
const HTCONDOR_TOKEN =
  'eyJhbGciOiJIUzI1NiIsImtpZCI6IlBPT0wifQ.eyJleHAiOjE3OTYyNDc0MTQsImlhdCI6MTc5NjI0NjgxNCwiaXNzIjoicG9vbC5leGFtcGxlLm9yZyIsImp0aSI6IjQzNjI3MTRkY2RjMzZkODM3N2M5NmZlM2UzZTM0NWZiIiwic2NvcGUiOiJjb25kb3I6XC9SRUFEIGNvbmRvcjpcL0FEVkVSVElTRV9TVEFSVEQgY29uZG9yOlwvQURWRVJUSVNFX01BU1RFUiIsInN1YiI6ImFubmV4LWktMDEyMzQ1Njc4OWFiY2RlZjBAcG9vbC5leGFtcGxlLm9yZyJ9.y00HFOTrT4DdefZ2ou-EarMMzHcVM8ht3ZPD5ngc0_I';
const HTCONDOR_KEY = Buffer.from('secret-key-1');

const mint = (over: Partial<Parameters<typeof mintToken>[0]> = {}) =>
  mintToken({
    key: 'secret-key-1',
    trustDomain: 'pool.example.org',
    subject: instanceTokenSubject('i-0123456789abcdef0', 'pool.example.org'),
    issuedAt: new Date(1796246814_000),
    expiresAt: new Date(1796247414_000),
    authorizations: EXECUTE_POINT_AUTHORIZATIONS,
    ...over,
  });

describe('IDTOKENs', () => {
  it('scrambles as condor_store_cred does, and unscrambles with the same operation', () => {
    const key = Buffer.from('abcd\u00e9');
    expect(condorScramble(key).subarray(0, 4)).toEqual(
      Buffer.from([0x61 ^ 0xde, 0x62 ^ 0xad, 0x63 ^ 0xbe, 0x64 ^ 0xef]),
    );
    expect(condorScramble(condorScramble(key))).toEqual(key);
  });

  it('accepts a token HTCondor minted, and mints the same token from its claims', () => {
    const decoded = verifyToken(HTCONDOR_TOKEN, HTCONDOR_KEY);
    expect(decoded?.header).toEqual({ alg: 'HS256', kid: 'POOL' });
    expect(mint({ jti: '4362714dcdc36d8377c96fe3e3e345fb' }).token).toBe(HTCONDOR_TOKEN);
  });

  it('mints an execute point’s scope for an annex identity, never condor@', () => {
    const { claims } = mint();
    expect(claims).toMatchObject({
      iss: 'pool.example.org',
      sub: 'annex-i-0123456789abcdef0@pool.example.org',
      scope: 'condor:/READ condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER',
      iat: 1796246814,
      exp: 1796247414,
    });
    expect(claims.scope).not.toMatch(/ADMINISTRATOR|CONFIG|NEGOTIATOR|DAEMON|WRITE/);
  });

  it('refuses to mint a token without scope (it would carry every right of its identity)', () => {
    expect(() => mint({ authorizations: [] })).toThrow(/scope/);
  });

  it('derives a jti unique per identity and issue time, the same when minted again', () => {
    expect(mint().claims.jti).toMatch(/^[0-9a-f]{32}$/);
    expect(mint().token).toBe(mint().token);
    expect(mint({ issuedAt: new Date(1796246815_000) }).claims.jti).not.toBe(mint().claims.jti);
    expect(mint({ subject: 'annex-i-0aaaaaaaaaaaaaaa0@pool.example.org' }).claims.jti).not.toBe(
      mint().claims.jti,
    );
  });

  it('refuses a token under another key, a changed claim, and an expired one', () => {
    const { token } = mint();
    expect(verifyToken(token, Buffer.from('secret-key-2'))).toBeUndefined();
    const [header, , signature] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...mint().claims, sub: 'condor@pool.example.org' })).toString(
      'base64url',
    );
    expect(verifyToken(`${header}.${forged}.${signature}`, HTCONDOR_KEY)).toBeUndefined();
    expect(verifyToken(token, HTCONDOR_KEY, new Date(1796247414_000))).toBeUndefined();
    expect(verifyToken(token, HTCONDOR_KEY, new Date(1796247413_000))).toBeDefined();
  });

  it('expires a token a short grace after its lease', () => {
    expect(TOKEN_GRACE_SECONDS).toBeLessThanOrEqual(600);
    expect(tokenExpiry('2026-12-02T12:00:00.000Z').toISOString()).toBe(
      new Date(Date.parse('2026-12-02T12:00:00.000Z') + TOKEN_GRACE_SECONDS * 1000).toISOString(),
    );
  });

  it('decodes a token for display, and nothing that is not one', () => {
    expect(decodeToken(`${HTCONDOR_TOKEN}\n`)?.claims.jti).toBe('4362714dcdc36d8377c96fe3e3e345fb');
    expect(decodeToken('not a token')).toBeUndefined();
  });
});
