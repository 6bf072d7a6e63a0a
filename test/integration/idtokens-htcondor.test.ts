// shared/domain/idtokens.ts checked against HTCondor's own code: a few lines of C++
// (scripts/condor/mint-reference-token.cpp) linked against the `htcondor` wheel's libcondor_utils
// call Condor_Auth_Passwd::generate_token and getTokenSigningKey with a throw-away configuration
// (TRUST_DOMAIN, SEC_PASSWORD_DIRECTORY, the pool key file scrambled as condor_store_cred writes
// it, mode 0600). Annex's verifier must accept HTCondor's token, and Annex's minting with the same
// claims must give HTCondor's token byte for byte (HTCondor's derivation reproduces the signature).
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../scripts/devstack/serverless-config.ts';
import {
  EXECUTE_POINT_AUTHORIZATIONS,
  condorScramble,
  instanceTokenSubject,
  mintToken,
  verifyToken,
} from '../../shared/domain/idtokens.ts';

const python = join(repoRoot, '.venv/bin/python');
const driver = join(repoRoot, 'scripts/condor/reference-token.py');
const source = join(repoRoot, 'scripts/condor/mint-reference-token.cpp');
const KEY = 'annex-test-pool-key: not a real one';
const TRUST_DOMAIN = 'pool.example.org';

const compiler = (): string | undefined => {
  for (const cxx of [process.env.CXX, 'g++', 'c++'].filter((c): c is string => c !== undefined)) {
    try {
      execFileSync(cxx, ['--version'], { stdio: 'ignore' });
      return cxx;
    } catch {
      // Not this one.
    }
  }
  return undefined;
};

const libs = (): string | undefined => {
  const lib = join(repoRoot, '.venv/lib');
  for (const python of readdirSync(lib)) {
    const dir = join(lib, python, 'site-packages', 'htcondor.libs');
    try {
      const utils = readdirSync(dir).find((f) => /^libcondor_utils_.*\.so$/.test(f));
      if (utils !== undefined) return join(dir, utils);
    } catch {
      // No wheel for this interpreter.
    }
  }
  return undefined;
};

const cxx = compiler();
const utils = libs();
const skipReason =
  cxx === undefined
    ? 'no C++ compiler (g++/c++; scripts/ensure-deps.sh installs g++)'
    : utils === undefined
      ? 'no libcondor_utils in the htcondor wheel (.venv)'
      : undefined;

describe.skipIf(skipReason !== undefined)(
  `IDTOKENS against HTCondor's libcondor_utils${skipReason === undefined ? '' : ` (skipped: ${skipReason})`}`,
  () => {
    const work = mkdtempSync(join(tmpdir(), 'annex-idtokens-'));
    const shim = join(work, 'mint.so');
    const config = join(work, 'condor_config');

    beforeAll(() => {
      const dir = join(utils ?? '', '..');
      execFileSync(cxx ?? 'g++', [
        '-shared',
        '-fPIC',
        '-o',
        shim,
        source,
        `-L${dir}`,
        `-l:${(utils ?? '').slice(dir.length + 1)}`,
        `-Wl,-rpath,${dir}`,
      ]);
      const keys = join(work, 'passwords.d');
      mkdirSync(keys, { mode: 0o700 });
      // As condor_store_cred writes it: scrambled, root-only.
      writeFileSync(join(keys, 'POOL'), condorScramble(Buffer.from(KEY, 'utf8')));
      chmodSync(join(keys, 'POOL'), 0o600);
      writeFileSync(
        config,
        [
          `LOCAL_DIR = ${work}`,
          'LOG = $(LOCAL_DIR)',
          `TRUST_DOMAIN = ${TRUST_DOMAIN}`,
          `SEC_PASSWORD_DIRECTORY = ${keys}`,
          `SEC_TOKEN_POOL_SIGNING_KEY_FILE = ${join(keys, 'POOL')}`,
          '',
        ].join('\n'),
      );
    }, 120_000);
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    const reference = (subject: string, lifetime: number) =>
      new Promise<{ token: string; signingKeyHex: string }>((resolve, reject) => {
        execFile(
          python,
          [driver, shim, subject, 'POOL', EXECUTE_POINT_AUTHORIZATIONS.join(' '), String(lifetime)],
          { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CONDOR_CONFIG: config }, timeout: 20_000 },
          (error, out, err) =>
            error ? reject(new Error(`${error.message}\n${err}`)) : resolve(JSON.parse(out) as never),
        );
      });

    it('accepts the token HTCondor mints, and mints the same token from the same claims', async () => {
      const subject = instanceTokenSubject('i-0123456789abcdef0', TRUST_DOMAIN);
      const { token, signingKeyHex } = await reference(subject, 900);

      // HTCondor unscrambles the key file and doubles the POOL key, as Annex does.
      expect(Buffer.from(signingKeyHex, 'hex').toString('utf8')).toBe(KEY + KEY);
      const decoded = verifyToken(token, Buffer.from(KEY, 'utf8'));
      expect(decoded?.header).toEqual({ alg: 'HS256', kid: 'POOL' });
      const claims = decoded?.claims as { iat: number; exp: number; jti: string };
      expect(decoded?.claims).toMatchObject({
        iss: TRUST_DOMAIN,
        sub: subject,
        scope: 'condor:/READ condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER',
      });
      expect(claims.exp - claims.iat).toBe(900);

      const ours = mintToken({
        key: KEY,
        trustDomain: TRUST_DOMAIN,
        subject,
        issuedAt: new Date(claims.iat * 1000),
        expiresAt: new Date(claims.exp * 1000),
        authorizations: EXECUTE_POINT_AUTHORIZATIONS,
        jti: claims.jti,
      });
      expect(ours.token).toBe(token);
    });

    it('refuses HTCondor’s token under another key, and a token whose claims were changed', async () => {
      const { token } = await reference(instanceTokenSubject('i-0123456789abcdef0', TRUST_DOMAIN), 60);
      expect(verifyToken(token, Buffer.from('another key', 'utf8'))).toBeUndefined();
      const [header, payload, signature] = token.split('.');
      const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as object;
      const widened = Buffer.from(JSON.stringify({ ...claims, sub: `condor@${TRUST_DOMAIN}` })).toString(
        'base64url',
      );
      expect(verifyToken(`${header}.${widened}.${signature}`, Buffer.from(KEY, 'utf8'))).toBeUndefined();
    });
  },
);
