// What shared/boot/condor-config.ts renders, read by HTCondor itself: each fragment is installed in
// a throw-away configuration (as the image installs it, in LOCAL_CONFIG_DIR after the image's own
// settings) and loaded with the HTCondor Python bindings pinned in scripts/requirements.txt
// (scripts/condor/check-config.py). Every knob must read back exactly, hostile-but-accepted values
// must stay inside their strings, and the START expression is evaluated by HTCondor's ClassAd
// library against machine and job ads.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../scripts/devstack/serverless-config.ts';
import {
  ANNEX_ATTRIBUTES,
  POOL_CREDENTIAL_FILE,
  POWEROFF_SCRIPT,
  TOKEN_DIRECTORY,
  renderCondorConfig,
  type CondorConfigInput,
} from '../../shared/boot/condor-config.ts';

const python = join(repoRoot, '.venv/bin/python');
const checker = join(repoRoot, 'scripts/condor/check-config.py');
const work = mkdtempSync(join(tmpdir(), 'annex-condor-config-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

interface CheckResult {
  version: string;
  knobs: Record<string, string | number | boolean | null>;
  machineAd: Record<string, unknown>;
  start: Record<string, boolean | null>;
  constraints: Record<string, boolean | null>;
}

interface CheckRequest {
  knobs?: string[];
  jobs?: Record<string, Record<string, string | number | boolean>>;
  constraints?: Record<string, string>;
}

let installs = 0;

/** Installs the fragment as an image would and asks HTCondor what it reads. */
const check = async (fragment: string, request: CheckRequest): Promise<CheckResult> => {
  const dir = join(work, String(++installs));
  mkdirSync(join(dir, 'config.d'), { recursive: true });
  mkdirSync(join(dir, 'local'), { recursive: true });
  // The image's own configuration, read first: the fragment must add to STARTD_ATTRS, not replace it.
  writeFileSync(
    join(dir, 'condor_config'),
    [
      `LOCAL_DIR = ${join(dir, 'local')}`,
      'LOG = $(LOCAL_DIR)/log',
      'SPOOL = $(LOCAL_DIR)/spool',
      'EXECUTE = $(LOCAL_DIR)/execute',
      'LOCK = $(LOG)',
      'ImageBuild = "annex-image-1"',
      'STARTD_ATTRS = ImageBuild',
      'MASTER_ATTRS = ImageBuild',
      `LOCAL_CONFIG_DIR = ${join(dir, 'config.d')}`,
      'LOCAL_CONFIG_FILE =',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'config.d', '50-annex.config'), fragment);
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = execFile(
      python,
      [checker],
      {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CONDOR_CONFIG: join(dir, 'condor_config') },
        timeout: 20_000,
      },
      (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)),
    );
    child.stdin?.end(JSON.stringify(request));
  });
  return JSON.parse(stdout) as CheckResult;
};

const nowSeconds = () => Math.floor(Date.now() / 1000);

const input = (overrides: Partial<CondorConfigInput> = {}): CondorConfigInput => ({
  annexId: 'ax-0123456789abcdef0123',
  annexName: 'gpu-burst',
  owner: 'arn:aws:iam::123456789012:user/alice',
  // One hour of lease left.
  expiresAt: new Date((nowSeconds() + 3600) * 1000).toISOString(),
  instanceId: 'i-0123456789abcdef0',
  publicIpAddress: '203.0.113.7',
  idleSeconds: 900,
  collector: { host: 'cm.example.org', port: 9618 },
  credentialType: 'password',
  allowedUsers: ['alice', 'bob@submit.example.org'],
  ...overrides,
});

const ATTRS = ANNEX_ATTRIBUTES.join(' ');

// HTCondor wheels exist for Linux only (see scripts/requirements.txt); on Linux a missing venv is
// a failure, not a reason to skip.
const bindings = process.platform === 'linux' || existsSync(python);

describe.skipIf(!bindings)('the rendered HTCondor configuration, read by HTCondor', () => {
  it('reads back every knob exactly, with the image’s own STARTD_ATTRS kept', async () => {
    // Prepare
    const given = input();
    const expiresAt = Math.floor(Date.parse(given.expiresAt) / 1000);

    // Act
    const result = await check(renderCondorConfig(given), {
      knobs: [
        'AnnexName',
        'IsAnnex',
        'AnnexId',
        'AnnexOwner',
        'AnnexExpiresAt',
        'EC2InstanceID',
        'STARTD_ATTRS',
        'MASTER_ATTRS',
        'CONDOR_HOST',
        'COLLECTOR_HOST',
        'DAEMON_LIST',
        'TCP_FORWARDING_HOST',
        'STARTD_NOCLAIM_SHUTDOWN',
        'MASTER.DAEMON_SHUTDOWN_FAST',
        'DEFAULT_MASTER_SHUTDOWN_SCRIPT',
        'SEC_DEFAULT_AUTHENTICATION',
        'SEC_DEFAULT_AUTHENTICATION_METHODS',
        'SEC_DEFAULT_INTEGRITY',
        'SEC_DEFAULT_ENCRYPTION',
        'SEC_PASSWORD_DIRECTORY',
        'SEC_PASSWORD_FILE',
        'ALLOW_DAEMON',
        'ENCRYPT_EXECUTE_DIRECTORY',
        'START',
        'TRUST_DOMAIN',
      ],
    });

    // Assess
    expect(result.version).toMatch(/\$CondorVersion: 25\.0\.14 /);
    expect(result.knobs).toEqual({
      AnnexName: '"gpu-burst"',
      IsAnnex: 'True',
      AnnexId: '"ax-0123456789abcdef0123"',
      AnnexOwner: '"arn:aws:iam::123456789012:user/alice"',
      AnnexExpiresAt: String(expiresAt),
      EC2InstanceID: '"i-0123456789abcdef0"',
      STARTD_ATTRS: `ImageBuild ${ATTRS}`,
      MASTER_ATTRS: `ImageBuild ${ATTRS}`,
      CONDOR_HOST: 'cm.example.org',
      COLLECTOR_HOST: 'cm.example.org:9618',
      DAEMON_LIST: 'MASTER, STARTD',
      TCP_FORWARDING_HOST: '203.0.113.7',
      STARTD_NOCLAIM_SHUTDOWN: 900,
      'MASTER.DAEMON_SHUTDOWN_FAST': '(STARTD_StartTime =?= 0) && ((time() - DaemonStartTime) > 60)',
      DEFAULT_MASTER_SHUTDOWN_SCRIPT: POWEROFF_SCRIPT,
      SEC_DEFAULT_AUTHENTICATION: 'REQUIRED',
      SEC_DEFAULT_AUTHENTICATION_METHODS: 'FS, PASSWORD',
      SEC_DEFAULT_INTEGRITY: 'REQUIRED',
      SEC_DEFAULT_ENCRYPTION: 'REQUIRED',
      SEC_PASSWORD_DIRECTORY: '/etc/condor/passwords.d',
      SEC_PASSWORD_FILE: POOL_CREDENTIAL_FILE,
      ALLOW_DAEMON: 'condor_pool@*, condor@*',
      ENCRYPT_EXECUTE_DIRECTORY: true,
      START:
        '(TARGET.MayUseAWS =?= true || TARGET.TargetAnnexName =?= MY.AnnexName) && ' +
        '(TARGET.Owner =?= "alice" || TARGET.User =?= "bob@submit.example.org") && ' +
        '(TARGET.AllowedJobDuration =?= undefined || (MY.AnnexExpiresAt - time()) >= TARGET.AllowedJobDuration)',
      // Not set for a pool password: HTCondor's default (the UID domain) applies.
      TRUST_DOMAIN: expect.not.stringContaining('cm.example.org'),
    });
    expect(result.machineAd).toMatchObject({
      ImageBuild: 'annex-image-1',
      AnnexName: 'gpu-burst',
      IsAnnex: true,
      AnnexId: 'ax-0123456789abcdef0123',
      AnnexOwner: 'arn:aws:iam::123456789012:user/alice',
      AnnexExpiresAt: expiresAt,
      EC2InstanceID: 'i-0123456789abcdef0',
    });
  });

  it('reads the IDTOKENS variant: its own token directory, no signing key, claim-id sessions inbound', async () => {
    // Act
    const result = await check(
      renderCondorConfig(input({ credentialType: 'idtokens-signing-key', publicIpAddress: undefined })),
      {
        knobs: [
          'SEC_DEFAULT_AUTHENTICATION_METHODS',
          'SEC_TOKEN_SYSTEM_DIRECTORY',
          'SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION',
          'TRUST_DOMAIN',
          'TCP_FORWARDING_HOST',
        ],
      },
    );
    const fragment = renderCondorConfig(input({ credentialType: 'idtokens-signing-key' }));

    // Assess
    expect(result.knobs).toEqual({
      SEC_DEFAULT_AUTHENTICATION_METHODS: 'FS, IDTOKENS',
      SEC_TOKEN_SYSTEM_DIRECTORY: TOKEN_DIRECTORY,
      SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION: true,
      TRUST_DOMAIN: 'cm.example.org',
      TCP_FORWARDING_HOST: null,
    });
    expect(fragment).not.toMatch(/SEC_TOKEN_POOL_SIGNING_KEY_FILE|SEC_PASSWORD_FILE/);
  });

  it('starts only jobs that opted in, of the annex users, aimed at this annex or none', async () => {
    // Act
    const result = await check(renderCondorConfig(input({ annexName: 'gpu-burst' })), {
      jobs: {
        optedInOwnJob: { Owner: 'alice', User: 'alice@submit.example.org', MayUseAWS: true },
        notOptedIn: { Owner: 'alice', User: 'alice@submit.example.org' },
        optedOut: { Owner: 'alice', User: 'alice@submit.example.org', MayUseAWS: false },
        aimedHere: { Owner: 'alice', User: 'alice@submit.example.org', TargetAnnexName: 'gpu-burst' },
        aimedElsewhere: { Owner: 'alice', User: 'alice@submit.example.org', TargetAnnexName: 'other' },
        anotherUsersOptedIn: { Owner: 'mallory', User: 'mallory@submit.example.org', MayUseAWS: true },
      },
    });

    // Assess
    expect(result.start).toEqual({
      optedInOwnJob: true,
      notOptedIn: false,
      optedOut: false,
      aimedHere: true,
      aimedElsewhere: false,
      anotherUsersOptedIn: false,
    });
  });

  it('starts the annex users’ jobs only when their declared duration fits in the lease left', async () => {
    // Act: the lease has one hour left.
    const result = await check(renderCondorConfig(input()), {
      jobs: {
        twoHours: {
          MayUseAWS: true,
          Owner: 'alice',
          User: 'alice@submit.example.org',
          AllowedJobDuration: 7200,
        },
        halfAnHour: {
          MayUseAWS: true,
          Owner: 'alice',
          User: 'alice@submit.example.org',
          AllowedJobDuration: 1800,
        },
        undeclared: { MayUseAWS: true, Owner: 'alice', User: 'alice@submit.example.org' },
        stranger: { MayUseAWS: true, Owner: 'mallory', User: 'mallory@submit.example.org' },
        strangerShort: {
          MayUseAWS: true,
          Owner: 'mallory',
          User: 'mallory@submit.example.org',
          AllowedJobDuration: 60,
        },
        bobBySubmitHost: { MayUseAWS: true, Owner: 'bob', User: 'bob@submit.example.org' },
        bobFromElsewhere: { MayUseAWS: true, Owner: 'bob', User: 'bob@elsewhere.example.org' },
        aliceUpperCase: { MayUseAWS: true, Owner: 'ALICE', User: 'ALICE@submit.example.org' },
      },
    });

    // Assess
    expect(result.start).toEqual({
      twoHours: false,
      halfAnHour: true,
      undeclared: true,
      stranger: false,
      strangerShort: false,
      bobBySubmitHost: true,
      bobFromElsewhere: false,
      aliceUpperCase: false,
    });
  });

  it('starts any pool user’s job that fits when the annex names no users', async () => {
    // Act
    const result = await check(renderCondorConfig(input({ allowedUsers: [] })), {
      jobs: {
        anyone: { MayUseAWS: true, Owner: 'mallory' },
        tooLong: { MayUseAWS: true, Owner: 'mallory', AllowedJobDuration: 4 * 3600 },
      },
    });

    // Assess
    expect(result.start).toEqual({ anyone: true, tooLong: false });
  });

  it('advertises AnnexName so that condor_status -annex NAME finds the machine', async () => {
    // Act
    const result = await check(renderCondorConfig(input({ annexName: 'ToddsGPU.2' })), {
      constraints: {
        // What condor_status -annex NAME (and condor_off -annex NAME) select with.
        annex: 'AnnexName =?= "ToddsGPU.2"',
        otherAnnex: 'AnnexName =?= "ToddsGPU"',
        anyAnnex: 'IsAnnex',
        leaseInFuture: 'AnnexExpiresAt > time()',
      },
    });

    // Assess
    expect(result.constraints).toEqual({
      annex: true,
      otherAnnex: false,
      anyAnnex: true,
      leaseInFuture: true,
    });
  });

  it.each([
    ['a macro', 'arn:aws:iam::123456789012:user/$(START)/x'],
    ['an environment macro', 'arn:aws:iam::123456789012:user/$ENV(HOME)'],
    ['a quote and a knob', 'arn:aws:iam::123456789012:user/"; START = True; X="'],
    ['backslashes', 'arn:aws:iam::123456789012:user/a\\\\b\\'],
    ['a hash and a dollar at the end', 'arn:aws:iam::123456789012:user/a#b$'],
  ])('keeps a hostile-but-accepted owner with %s inside its string', async (_what, owner) => {
    // Act
    const result = await check(renderCondorConfig(input({ owner })), {
      knobs: ['START', 'STARTD_NOCLAIM_SHUTDOWN'],
      jobs: { stranger: { Owner: 'mallory' } },
    });

    // Assess: the value survives byte for byte, and nothing else changed.
    expect(result.machineAd.AnnexOwner).toBe(owner);
    expect(result.knobs.STARTD_NOCLAIM_SHUTDOWN).toBe(900);
    expect(result.knobs.START).toContain('TARGET.Owner =?= "alice"');
    expect(result.start).toEqual({ stranger: false });
  });

  it('keeps a hostile-but-accepted annex name and user inside their strings', async () => {
    // Prepare: names the API would refuse, but which the renderer must still represent exactly.
    const annexName = 'a"b\\c$(START)';

    // Act
    const result = await check(
      renderCondorConfig(input({ annexName, allowedUsers: ['o.k-user_1@x-y.example'] })),
      {
        constraints: { annex: `AnnexName =?= "a\\"b\\\\c$(START)"` },
        jobs: { user: { Owner: 'o.k-user_1', User: 'o.k-user_1@x-y.example', TargetAnnexName: annexName } },
      },
    );

    // Assess
    expect(result.machineAd.AnnexName).toBe(annexName);
    expect(result.constraints).toEqual({ annex: true });
    expect(result.start).toEqual({ user: true });
  });
});
