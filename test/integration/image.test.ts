/**
 * The instance side (image/): the real bash scripts run against a fake IMDS (IMDSv2) and a fake
 * control plane that verifies every SigV4 signature, inside a temporary root (ANNEX_ROOT), with
 * stand-ins for HTCondor and power-off that leave marker files, and the local stack's iptables and
 * ip6tables stand-ins (scripts/devstack/fake-bin), which keep the OUTPUT chain in a state file and fail
 * on demand. curl and python3 are
 * wrapped to record their command lines, so the tests can show that no secret ever reaches argv.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  startFakeAnnexApi,
  type ApiAnswer,
  type ApiCall,
  type FakeAnnexApi,
} from '../support/fake-annex-api.ts';
import { startFakeImds, type FakeImds, type FakeImdsOptions } from '../../scripts/devstack/fake-imds.ts';
import { EXECUTE_POINT_AUTHORIZATIONS, mintToken } from '../../shared/domain/idtokens.ts';

const imageDir = resolve(import.meta.dirname, '../../image');
/** The local stack's stand-ins: iptables/ip6tables keeping OUTPUT in a state file, `id` as root. */
const fakeBin = resolve(import.meta.dirname, '../../scripts/devstack/fake-bin');
const scripts = ['annex-boot', 'annex-agent', 'poweroff', 'install.sh', 'annex-lib.sh'];
// The interpreter itself, not a version manager's shim (a pyenv shim costs a second a call).
const python3 = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], {
  encoding: 'utf8',
}).trim();

function which(command: string): string {
  return execFileSync('bash', ['-c', `command -v ${command}`], { encoding: 'utf8' }).trim();
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs an image script with bash; kills its whole process group if it outlives `timeoutMs`. */
function run(script: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', [join(imageDir, script), ...args], { env, detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** A TCP port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
const iso = (epochMs: number) => new Date(epochMs).toISOString().replace(/\.\d+Z$/, 'Z');
const mode = async (path: string) => (await stat(path)).mode & 0o777;

/** HTCondor's simple_scramble (XOR with DE AD BE EF), its own inverse. */
function scramble(bytes: Buffer): Buffer {
  const key = [0xde, 0xad, 0xbe, 0xef];
  return Buffer.from(bytes.map((byte, i) => byte ^ (key[i % 4] ?? 0)));
}

// ---------------------------------------------------------------------------------------------
// One sandbox per test: a temporary root, stand-in commands, a fake IMDS and a fake API.

interface Sandbox {
  dir: string;
  root: string;
  markers: string;
  /** The stand-in firewall's state: <tool>.rules (OUTPUT, in order), <tool>.log, <tool>.fail. */
  firewall: string;
  imds: FakeImds;
  api: FakeAnnexApi;
  /** The pool credential the fake API hands out (quotes, backslash, `$`: JSON and shell hazards). */
  secret: string;
  env(extra?: Record<string, string>): NodeJS.ProcessEnv;
  marker(name: string): Promise<string | undefined>;
  /** Every secret a log or a command line must never show. */
  secrets(): string[];
  /** The OUTPUT rules of the stand-in iptables or ip6tables, in order. */
  rules(tool: 'iptables' | 'ip6tables'): Promise<string[]>;
}

const IMDS_RULE_V4 =
  '-d 169.254.169.254/32 -m owner ! --uid-owner 0 -j REJECT --reject-with icmp-port-unreachable';
const IMDS_RULE_V6 =
  '-d fd00:ec2::254/128 -m owner ! --uid-owner 0 -j REJECT --reject-with icmp6-port-unreachable';

let sandbox: Sandbox | undefined;

async function makeSandbox(imdsOptions: FakeImdsOptions = {}): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'annex-image-'));
  const root = join(dir, 'root');
  const bin = join(dir, 'bin');
  const markers = join(dir, 'markers');
  const tmp = join(dir, 'tmp');
  const firewall = join(dir, 'firewall');
  for (const path of [root, bin, markers, tmp, firewall]) await mkdir(path, { recursive: true });

  const stub = async (name: string, body: string) => {
    await writeFile(join(bin, name), `#!/usr/bin/env bash\n${body}\n`);
    await chmod(join(bin, name), 0o755);
  };
  // Wrappers that record their command line, then run the real thing.
  for (const [tool, path] of [
    ['curl', which('curl')],
    ['python3', python3],
  ] as const) {
    await stub(tool, `printf '%s\\n' "${tool} $*" >> '${dir}/argv.log'\nexec '${path}' "$@"`);
  }
  await stub('condor_status', `[ -f '${dir}/slots' ] || exit 1\ncat '${dir}/slots'`);
  await stub('condor_off', `printf '%s\\n' "$*" >> '${markers}/condor_off'`);
  await stub('condor_reconfig', `printf '%s\\n' "$*" >> '${markers}/condor_reconfig'`);
  await stub('id-as-user', 'echo 1000');

  const imds = await startFakeImds(imdsOptions);
  const api = await startFakeAnnexApi({ region: imds.region, credentialsFor: imds.credentialsFor });
  const secret = `pool-${randomBytes(12).toString('base64url')}-"quoted"\\back$HOME`;

  const baseEnv: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('AWS_') && !key.startsWith('ANNEX_')) baseEnv[key] = value;
  }
  const box: Sandbox = {
    dir,
    root,
    markers,
    firewall,
    imds,
    api,
    secret,
    env: (extra = {}) => ({
      ...baseEnv,
      PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      TMPDIR: tmp,
      ANNEX_ROOT: root,
      ANNEX_IMDS_URL: imds.url,
      ANNEX_POWEROFF_CMD: `printf '%s\\n' "$ANNEX_POWEROFF_REASON" >> '${markers}/poweroff'`,
      ANNEX_CONDOR_START: `touch '${markers}/condor-started'`,
      ANNEX_IPTABLES: join(fakeBin, 'iptables'),
      ANNEX_IP6TABLES: join(fakeBin, 'ip6tables'),
      ANNEX_NFT: join(bin, 'no-nft'),
      ANNEX_DEV_FIREWALL_DIR: firewall,
      ANNEX_ID: join(fakeBin, 'id-as-root'),
      ...extra,
    }),
    marker: async (name) => {
      const path = join(markers, name);
      return existsSync(path) ? readFile(path, 'utf8') : undefined;
    },
    secrets: () => [
      secret,
      ...imds.issued.flatMap((c) => [c.secretAccessKey, c.sessionToken]),
      ...imds.tokens,
    ],
    rules: async (tool) => {
      const path = join(firewall, `${tool}.rules`);
      return existsSync(path) ? (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '') : [];
    },
  };
  sandbox = box;
  return box;
}

async function expectNoSecretsIn(box: Sandbox, ...outputs: string[]): Promise<void> {
  const argv = existsSync(join(box.dir, 'argv.log')) ? await readFile(join(box.dir, 'argv.log'), 'utf8') : '';
  expect(argv).toContain('--aws-sigv4'); // the wrapper saw the signed calls
  for (const text of [...outputs, argv]) {
    for (const secret of box.secrets()) expect(text).not.toContain(secret);
  }
}

function bootstrapAnswer(box: Sandbox, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    annexId: 'ann-01JDEMO0000000000000000000',
    annexName: 'demo',
    instanceId: box.imds.instanceId,
    expiresAt: iso(Date.now() + 3000_000),
    idleSeconds: 900,
    heartbeatIntervalSeconds: 60,
    collector: { host: 'cm.example.org', port: 9618 },
    credential: { type: 'password', value: box.secret },
    condorConfig:
      'CONDOR_HOST = cm.example.org:9618\nAnnexName = "demo"\nSTARTD_ATTRS = $(STARTD_ATTRS) AnnexName\n' +
      'STARTD_NOCLAIM_SHUTDOWN = 900\n',
    ...overrides,
  };
}

/** Answers bootstrap with `bootstrap` and the other routes with `others`. */
function routes(
  bootstrap: ApiAnswer,
  others: (call: ApiCall) => ApiAnswer | 'hang' = () => ({ status: 404 }),
) {
  return (call: ApiCall) => (call.path === '/v1/instances/self/bootstrap' ? bootstrap : others(call));
}

async function writeEnvFile(box: Sandbox, apiUrl: string): Promise<void> {
  await mkdir(join(box.root, 'etc/annex'), { recursive: true });
  await writeFile(join(box.root, 'etc/annex/annex.env'), `# baked\nANNEX_API_URL=${apiUrl}\n`);
}

afterEach(async () => {
  if (sandbox !== undefined) {
    await sandbox.api.stop();
    await sandbox.imds.stop();
    await rm(sandbox.dir, { recursive: true, force: true });
    sandbox = undefined;
  }
});

// ---------------------------------------------------------------------------------------------

describe('image scripts', () => {
  it('are shellcheck clean', () => {
    let shellcheck: string;
    try {
      shellcheck = which('shellcheck');
    } catch {
      throw new Error('shellcheck is not installed: run scripts/ensure-deps.sh (npm test does)');
    }
    const result = spawnSync(shellcheck, ['-x', '-S', 'style', ...scripts], {
      cwd: imageDir,
      encoding: 'utf8',
    });
    // On failure the findings show in the diff.
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('install.sh installs them into an image root and bakes no instance state', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'annex-install-'));
    try {
      const root = join(dir, 'img');
      await mkdir(join(root, 'etc/condor/passwords.d'), { recursive: true });
      await mkdir(join(root, 'var/lib/annex'), { recursive: true });
      await writeFile(join(root, 'etc/condor/passwords.d/POOL'), 'left over');
      await writeFile(join(root, 'var/lib/annex/boot.json'), '{}');
      const url = 'https://abcdef1234.execute-api.us-east-1.amazonaws.com';
      const result = await run('install.sh', ['--api-url', url, root], { ...process.env });
      expect(result.stderr).toContain('installed into');
      expect(result.code).toBe(0);

      for (const name of ['annex-boot', 'annex-agent', 'poweroff']) {
        expect(await mode(join(root, 'usr/libexec/annex', name))).toBe(0o755);
      }
      expect(await mode(join(root, 'usr/libexec/annex/annex-lib.sh'))).toBe(0o644);
      expect(await readFile(join(root, 'etc/systemd/system/annex-boot.service'), 'utf8')).toContain(
        'Before=condor.service',
      );
      expect(
        await readFile(join(root, 'etc/systemd/system/condor.service.d/50-annex.conf'), 'utf8'),
      ).toContain('Requires=annex-boot.service');
      for (const unit of ['annex-boot.service', 'annex-agent.service']) {
        const link = join(root, 'etc/systemd/system/multi-user.target.wants', unit);
        expect(lstatSync(link).isSymbolicLink()).toBe(true);
        expect(readlinkSync(link)).toBe(`/etc/systemd/system/${unit}`);
      }
      expect(await readFile(join(root, 'etc/condor/config.d/20-annex-image.conf'), 'utf8')).toContain(
        'DEFAULT_MASTER_SHUTDOWN_SCRIPT = /usr/libexec/annex/poweroff',
      );
      expect(await readFile(join(root, 'etc/annex/annex.env'), 'utf8')).toContain(`ANNEX_API_URL=${url}\n`);
      expect(await mode(join(root, 'etc/condor/passwords.d'))).toBe(0o700);
      expect(existsSync(join(root, 'etc/condor/passwords.d/POOL'))).toBe(false);
      expect(existsSync(join(root, 'var/lib/annex/boot.json'))).toBe(false);
      expect(existsSync(join(root, 'usr/share/doc/annex/README.md'))).toBe(true);

      // Idempotent.
      expect((await run('install.sh', [root], { ...process.env })).code).toBe(0);
      expect(await readFile(join(root, 'etc/annex/annex.env'), 'utf8')).toContain(`ANNEX_API_URL=${url}\n`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('annex-boot', () => {
  it.each(['python3', 'awk'])(
    'joins the annex (JSON via %s): signed bootstrap, root-only credential, config, state, HTCondor',
    async (parser) => {
      const box = await makeSandbox();
      const answer = bootstrapAnswer(box);
      box.api.respond = routes({ status: 200, body: answer });
      await writeEnvFile(box, box.api.url);

      const result = await run('annex-boot', [], box.env({ ANNEX_JSON_PARSER: parser }));
      expect(result.stderr).toContain(`JSON via ${parser}`);
      expect(result.stderr).toContain('joined annex demo');
      expect(result.code).toBe(0);

      // One bootstrap call, signed with the role's credentials, session token included and signed.
      expect(box.api.calls).toHaveLength(1);
      const [call] = box.api.calls;
      expect(call?.path).toBe('/v1/instances/self/bootstrap');
      expect(call?.method).toBe('POST');
      expect(call?.body).toBe('');
      expect(call?.verdict).toBe('ok');
      expect(call?.signedHeaders).toContain('x-amz-security-token');
      expect(call?.sessionToken).toBe(box.imds.issued[0]?.sessionToken);
      expect(call?.accessKeyId).toBe(box.imds.issued[0]?.accessKeyId);
      // IMDSv2 only: a token first, then nothing was asked without one.
      expect(box.imds.requests[0]).toMatchObject({ method: 'PUT', path: '/latest/api/token', status: 200 });
      expect(box.imds.requests.filter((r) => r.status === 401)).toEqual([]);

      // The credential: HTCondor's on-disk form, root-only.
      const pool = join(box.root, 'etc/condor/passwords.d/POOL');
      expect(scramble(await readFile(pool)).toString('utf8')).toBe(box.secret);
      expect(await mode(pool)).toBe(0o600);
      expect((await stat(pool)).uid).toBe(process.getuid?.());
      expect(await mode(join(box.root, 'etc/condor/passwords.d'))).toBe(0o700);

      // The config fragment: world-readable, no secret in it.
      const configPath = join(box.root, 'etc/condor/config.d/50-annex.conf');
      const config = await readFile(configPath, 'utf8');
      expect(config).toBe(`${answer.condorConfig as string}\n`);
      expect(config).not.toContain(box.secret);
      expect(await mode(configPath)).toBe(0o644);

      // The boot record for the agent.
      const bootPath = join(box.root, 'var/lib/annex/boot.json');
      expect(await mode(bootPath)).toBe(0o600);
      const boot = JSON.parse(await readFile(bootPath, 'utf8')) as Record<string, unknown>;
      expect(boot).toMatchObject({
        annexId: answer.annexId,
        annexName: 'demo',
        instanceId: box.imds.instanceId,
        region: box.imds.region,
        apiUrl: box.api.url,
        expiresAt: answer.expiresAt,
        idleSeconds: 900,
        heartbeatIntervalSeconds: 60,
        collector: { host: 'cm.example.org', port: 9618 },
        credentialType: 'password',
      });
      expect(JSON.stringify(boot)).not.toContain(box.secret);

      expect(await box.marker('condor-started')).toBeDefined();
      expect(await box.marker('poweroff')).toBeUndefined();
      expect(await box.rules('iptables')).toEqual([IMDS_RULE_V4]);
      expect(await box.rules('ip6tables')).toEqual([IMDS_RULE_V6]);
      expect(result.stderr).toContain('metadata service restricted to root (iptables and ip6tables');
      await expectNoSecretsIn(box, result.stdout, result.stderr);
    },
  );

  it('reads the API URL from the instance tag annex:api-url when there is no env file', async () => {
    const box = await makeSandbox();
    box.imds.tags['annex:api-url'] = box.api.url;
    box.api.respond = routes({ status: 200, body: bootstrapAnswer(box) });

    const result = await run('annex-boot', [], box.env());
    expect(result.stderr).toContain('(from instance tag annex:api-url)');
    expect(result.code).toBe(0);
    expect(box.api.calls.map((c) => c.verdict)).toEqual(['ok']);
    await expectNoSecretsIn(box, result.stdout, result.stderr);
  });

  it('installs an IDTOKENS instance’s own token root-only in tokens.d, and no pool file', async () => {
    const box = await makeSandbox();
    const { token } = mintToken({
      key: 'image-test-key',
      trustDomain: 'pool.test',
      subject: 'annex-i-0123456789abcdef0@pool.test',
      issuedAt: new Date(),
      expiresAt: new Date(Date.now() + 3600_000),
      authorizations: EXECUTE_POINT_AUTHORIZATIONS,
    });
    box.api.respond = routes({
      status: 200,
      body: bootstrapAnswer(box, { credential: { type: 'idtoken', value: token } }),
    });
    await writeEnvFile(box, box.api.url);

    const result = await run('annex-boot', [], box.env());
    expect(result.code).toBe(0);
    const file = join(box.root, 'etc/condor/tokens.d/annex');
    expect(await readFile(file, 'utf8')).toBe(`${token}\n`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(box.root, 'etc/condor/tokens.d'))).mode & 0o777).toBe(0o700);
    expect(existsSync(join(box.root, 'etc/condor/passwords.d/POOL'))).toBe(false);
    expect(result.stderr).not.toContain(token);
  });

  it('refuses a bootstrap answer that hands it a pool signing key, and powers off', async () => {
    const box = await makeSandbox();
    box.api.respond = routes({
      status: 200,
      body: bootstrapAnswer(box, { credential: { type: 'idtokens-signing-key', value: box.secret } }),
    });
    await writeEnvFile(box, box.api.url);

    const result = await run('annex-boot', [], box.env());
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('this image installs only a per-instance IDTOKEN');
    expect(await box.marker('poweroff')).toBeDefined();
    expect(existsSync(join(box.root, 'etc/condor/passwords.d/POOL'))).toBe(false);
    await expectNoSecretsIn(box, result.stdout, result.stderr);
  });

  it('after a reboot, keeps what it was given instead of asking the API again', async () => {
    const box = await makeSandbox();
    box.api.respond = routes({ status: 200, body: bootstrapAnswer(box) });
    await writeEnvFile(box, box.api.url);
    expect((await run('annex-boot', [], box.env())).code).toBe(0);
    // The API serves bootstrap once per instance.
    box.api.respond = routes({ status: 403, body: { error: { code: 'Forbidden', message: 'once' } } });

    const again = await run('annex-boot', [], box.env());
    expect(again.stderr).toContain('joined annex demo before a reboot');
    expect(again.code).toBe(0);
    expect(box.api.calls).toHaveLength(1);
    expect(await box.marker('poweroff')).toBeUndefined();
    expect(scramble(await readFile(join(box.root, 'etc/condor/passwords.d/POOL'))).toString('utf8')).toBe(
      box.secret,
    );
    // The firewall rule does not survive a reboot: it is checked and put in place again, once.
    expect(again.stderr).toContain('metadata service restricted to root');
    expect(await box.rules('iptables')).toEqual([IMDS_RULE_V4]);

    // Another instance's record (an image baked from a running instance) is not reused.
    const boot = join(box.root, 'var/lib/annex/boot.json');
    const record = JSON.parse(await readFile(boot, 'utf8')) as Record<string, unknown>;
    await writeFile(boot, JSON.stringify({ ...record, instanceId: 'i-0aaaaaaaaaaaaaaa0' }));
    const other = await run('annex-boot', [], box.env({ ANNEX_BOOT_BACKOFF_MAX: '1' }));
    expect(other.code).toBe(1);
    expect(box.api.calls.length).toBeGreaterThan(1);
    expect(await box.marker('poweroff')).toContain('refused this instance');
  });

  it('gives up after a few refusals (403) and powers off without writing anything', async () => {
    const box = await makeSandbox();
    box.api.respond = routes({ status: 403, body: { error: { code: 'Forbidden', message: 'lease ended' } } });
    await writeEnvFile(box, box.api.url);

    const result = await run('annex-boot', [], box.env({ ANNEX_BOOT_BACKOFF_MAX: '1' }));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Forbidden: lease ended');
    expect(box.api.calls).toHaveLength(3);
    expect(box.api.calls.every((c) => c.verdict === 'ok')).toBe(true);
    expect(await box.marker('poweroff')).toContain('refused this instance (HTTP 403)');
    expect(await box.marker('condor-started')).toBeUndefined();
    expect(existsSync(join(box.root, 'etc/condor/passwords.d/POOL'))).toBe(false);
    expect(existsSync(join(box.root, 'var/lib/annex/boot.json'))).toBe(false);
  });

  it('powers off after the boot timeout when the API is unreachable', async () => {
    const box = await makeSandbox();
    await writeEnvFile(box, `http://127.0.0.1:${await closedPort()}`);

    const result = await run('annex-boot', [], box.env({ ANNEX_BOOT_TIMEOUT: '3' }));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('API unreachable');
    expect(await box.marker('poweroff')).toContain('no answer within the boot timeout (3s)');
    expect(result.ms).toBeGreaterThanOrEqual(1_500); // the deadline counts whole seconds
    expect(result.ms).toBeLessThan(15_000);
    expect(await box.marker('condor-started')).toBeUndefined();
  });

  it('refuses an answer meant for another instance, and an http URL that is not local', async () => {
    const box = await makeSandbox();
    box.api.respond = routes({
      status: 200,
      body: bootstrapAnswer(box, { instanceId: 'i-0fffffffffffffff0' }),
    });
    await writeEnvFile(box, box.api.url);
    const result = await run('annex-boot', [], box.env());
    expect(result.code).toBe(1);
    expect(await box.marker('poweroff')).toContain('the bootstrap answer is for another instance');
    expect(existsSync(join(box.root, 'etc/condor/passwords.d/POOL'))).toBe(false);

    await rm(join(box.markers, 'poweroff'));
    const plain = await run('annex-boot', [], box.env({ ANNEX_API_URL: 'http://annex.example.org' }));
    expect(plain.code).toBe(1);
    expect(await box.marker('poweroff')).toContain('is not an https URL');
    expect(box.api.calls).toHaveLength(1);
  });
});

describe('annex-boot: the metadata firewall fails closed', () => {
  /** True when the instance powered off before it read any credential or called the API. */
  async function expectPoweredOffBeforeAnyCredential(box: Sandbox, result: RunResult, reason: string) {
    expect(result.code).toBe(1);
    expect(await box.marker('poweroff')).toContain('the metadata firewall cannot be installed');
    expect(await box.marker('poweroff')).toContain(reason);
    // Not one metadata request (no IMDSv2 token, no role credentials), not one API call.
    expect(box.imds.requests).toEqual([]);
    expect(box.api.calls).toEqual([]);
    expect(existsSync(join(box.root, 'etc/condor/passwords.d/POOL'))).toBe(false);
    expect(existsSync(join(box.root, 'etc/condor/tokens.d/annex'))).toBe(false);
    expect(existsSync(join(box.root, 'var/lib/annex/boot.json'))).toBe(false);
    expect(await box.marker('condor-started')).toBeUndefined();
  }

  it('inserts the rules first in OUTPUT, ahead of an ACCEPT already there, and checks them back', async () => {
    const box = await makeSandbox();
    box.api.respond = routes({ status: 200, body: bootstrapAnswer(box) });
    await writeEnvFile(box, box.api.url);
    // Another package's rule, which an appended rule would never get past.
    await writeFile(join(box.firewall, 'iptables.rules'), '-j ACCEPT\n');
    await writeFile(join(box.firewall, 'ip6tables.rules'), '-o lo -j ACCEPT\n');

    const result = await run('annex-boot', [], box.env());
    expect(result.code).toBe(0);
    expect(await box.rules('iptables')).toEqual([IMDS_RULE_V4, '-j ACCEPT']);
    expect(await box.rules('ip6tables')).toEqual([IMDS_RULE_V6, '-o lo -j ACCEPT']);
    const log = await readFile(join(box.firewall, 'iptables.log'), 'utf8');
    expect(log).toContain('-w 5 -I OUTPUT 1 -d 169.254.169.254 -m owner ! --uid-owner 0 -j REJECT');
    expect(log).toContain('-w 5 -C OUTPUT -d 169.254.169.254 -m owner ! --uid-owner 0 -j REJECT');
    expect(log).not.toMatch(/-A OUTPUT/);
    // Before the metadata service was asked anything.
    expect(result.stderr.indexOf('metadata service restricted to root')).toBeLessThan(
      result.stderr.indexOf('instance i-'),
    );
  });

  it('moves its rule back to the top when an earlier boot left it below an ACCEPT, without a copy', async () => {
    const box = await makeSandbox();
    box.api.respond = routes({ status: 200, body: bootstrapAnswer(box) });
    await writeEnvFile(box, box.api.url);
    await writeFile(join(box.firewall, 'iptables.rules'), `-j ACCEPT\n${IMDS_RULE_V4}\n`);
    await writeFile(join(box.firewall, 'ip6tables.rules'), `${IMDS_RULE_V6}\n`);

    const result = await run('annex-boot', [], box.env());
    expect(result.code).toBe(0);
    expect(await box.rules('iptables')).toEqual([IMDS_RULE_V4, '-j ACCEPT']);
    expect(await box.rules('ip6tables')).toEqual([IMDS_RULE_V6]);
  });

  it('without iptables: an nftables table hooked ahead of the others, replaced atomically, checked back', async () => {
    const box = await makeSandbox();
    box.api.respond = routes({ status: 200, body: bootstrapAnswer(box) });
    await writeEnvFile(box, box.api.url);
    const env = box.env({
      ANNEX_IPTABLES: join(box.dir, 'bin', 'absent-iptables'),
      ANNEX_NFT: join(fakeBin, 'nft'),
    });

    const result = await run('annex-boot', [], env);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('metadata service restricted to root (nftables table inet annex_imds');
    const table = await readFile(join(box.firewall, 'nft.ruleset', 'inet-annex_imds'), 'utf8');
    expect(table).toContain('type filter hook output priority -300; policy accept;');
    expect(table).toContain('ip daddr 169.254.169.254 meta skuid != 0 reject');
    expect(table).toContain('ip6 daddr fd00:ec2::254 meta skuid != 0 reject');
    expect(await readFile(join(box.firewall, 'nft.log'), 'utf8')).toBe(
      'list chain inet annex_imds output\n-f -\nlist chain inet annex_imds output\n',
    );

    // A second run (a reboot that kept the table, or the agent) finds it in place and changes nothing.
    const again = await run('annex-boot', [], env);
    expect(again.code).toBe(0);
    expect(await readFile(join(box.firewall, 'nft.log'), 'utf8')).toMatch(
      /-f -\nlist chain inet annex_imds output\nlist chain inet annex_imds output\n$/,
    );
    expect(await readFile(join(box.firewall, 'nft.ruleset', 'inet-annex_imds'), 'utf8')).toBe(table);
  });

  it.each([
    ['not root', {}, { ANNEX_ID: 'BIN/id-as-user' }, 'not running as root (uid 1000)'],
    ['iptables fails', { iptables: 'all' }, {}, 'iptables could not put the rule for 169.254.169.254 first'],
    ['iptables cannot write', { iptables: 'write' }, {}, 'iptables could not put the rule'],
    ['iptables says yes and does nothing', { iptables: 'noop' }, {}, 'iptables could not put the rule'],
    ['ip6tables fails', { ip6tables: 'all' }, {}, 'ip6tables could not put the rule for fd00:ec2::254 first'],
    [
      'no ip6tables and no nft',
      {},
      { ANNEX_IP6TABLES: 'BIN/absent-ip6tables' },
      'ip6tables not found (and no nft)',
    ],
    [
      'neither iptables nor nft',
      {},
      { ANNEX_IPTABLES: 'BIN/absent-iptables', ANNEX_IP6TABLES: 'BIN/absent-ip6tables' },
      'neither iptables nor nft found',
    ],
    [
      'nft fails (no iptables)',
      { nft: 'write' },
      { ANNEX_IPTABLES: 'BIN/absent-iptables', ANNEX_NFT: 'FAKE/nft' },
      'nft could not install the table inet annex_imds',
    ],
    [
      'nft says yes and does nothing',
      { nft: 'noop' },
      { ANNEX_IPTABLES: 'BIN/absent-iptables', ANNEX_NFT: 'FAKE/nft' },
      'nft could not install the table inet annex_imds',
    ],
    [
      'ANNEX_FIREWALL=off (not an opt-out)',
      { iptables: 'all' },
      { ANNEX_FIREWALL: 'off' },
      'iptables could not',
    ],
  ] as const)('%s: powers off before reading any credential', async (_, failing, settings, reason) => {
    const box = await makeSandbox();
    box.api.respond = routes({ status: 200, body: bootstrapAnswer(box) });
    await writeEnvFile(box, box.api.url);
    for (const [tool, mode] of Object.entries(failing)) {
      await writeFile(join(box.firewall, `${tool}.fail`), `${mode}\n`);
    }
    const env = Object.fromEntries(
      Object.entries(settings).map(([k, v]) => [
        k,
        v.replace('BIN/', `${join(box.dir, 'bin')}/`).replace('FAKE/', `${fakeBin}/`),
      ]),
    );

    const result = await run('annex-boot', [], box.env(env));
    await expectPoweredOffBeforeAnyCredential(box, result, reason);
    if ('ANNEX_FIREWALL' in settings) expect(result.stderr).toContain('ANNEX_FIREWALL=off is not honoured');
  });

  it('honours the stand-in `id` (ANNEX_ID) only against a fake metadata service, never the real one', () => {
    const uidWith = (imdsUrl: string) =>
      execFileSync('bash', ['-c', `. '${join(imageDir, 'annex-lib.sh')}' && effective_uid`], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, ANNEX_IMDS_URL: imdsUrl, ANNEX_ID: join(fakeBin, 'id-as-root') },
      }).trim();
    expect(uidWith('http://127.0.0.1:9')).toBe('0');
    expect(uidWith('http://169.254.169.254')).toBe(String(process.getuid?.()));
    expect(uidWith('http://[fd00:ec2::254]')).toBe(String(process.getuid?.()));
  });
});

describe('annex-agent', () => {
  const agentEnv = {
    ANNEX_HEARTBEAT_INTERVAL: '1',
    ANNEX_AGENT_TICK_SECONDS: '1',
    ANNEX_SPOT_POLL_SECONDS: '1',
    ANNEX_SHUTDOWN_SETTLE_SECONDS: '0',
    ANNEX_API_MAX_TIME: '2',
  };

  /** A sandbox whose instance has joined (the real annex-boot ran), with the given lease end. */
  async function joined(
    expiresAt: string,
    imdsOptions: FakeImdsOptions = {},
    answer: Record<string, unknown> = {},
  ): Promise<Sandbox & { heartbeats: () => ApiCall[] }> {
    const box = await makeSandbox(imdsOptions);
    box.api.respond = routes({ status: 200, body: bootstrapAnswer(box, { expiresAt, ...answer }) });
    await writeEnvFile(box, box.api.url);
    const boot = await run('annex-boot', [], box.env());
    expect(boot.code).toBe(0);
    return Object.assign(box, {
      heartbeats: () => box.api.calls.filter((c) => c.path === '/v1/instances/self/heartbeat'),
    });
  }

  it('heartbeats the startd slot counts, follows the lease and re-reads rotating credentials', async () => {
    // Credentials within 5 minutes of their expiration are re-read before every call.
    const box = await joined(iso(Date.now() + 600_000), {
      rotateCredentials: true,
      credentialLifetimeSeconds: 240,
    });
    await writeFile(join(box.dir, 'slots'), 'Claimed\nClaimed\nUnclaimed\nUnclaimed\n');
    const extended = iso(Date.now() + 7200_000);
    box.api.respond = () => ({
      status: 200,
      body: { expiresAt: extended, idleSeconds: 600, action: 'continue' },
    });

    const result = await run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '3' }));
    expect(result.stderr).toContain('stopping after 3 ticks');
    expect(result.code).toBe(0);

    const heartbeats = box.heartbeats();
    expect(heartbeats.length).toBeGreaterThanOrEqual(2);
    for (const heartbeat of heartbeats) {
      expect(heartbeat.verdict).toBe('ok');
      expect(heartbeat.signedHeaders).toContain('x-amz-security-token');
      expect(heartbeat.json).toEqual({ claimedSlots: 2, totalSlots: 4, idleSeconds: 0, state: 'joined' });
    }
    expect(new Set(heartbeats.map((h) => h.accessKeyId)).size).toBe(heartbeats.length);
    const lease = JSON.parse(await readFile(join(box.root, 'var/lib/annex/lease.json'), 'utf8')) as object;
    expect(lease).toMatchObject({ expiresAt: extended, idleSeconds: 600 });
    expect(result.stderr).toContain(`lease now ends at ${extended}`);
    expect(await box.marker('poweroff')).toBeUndefined();
    await expectNoSecretsIn(box, result.stdout, result.stderr);
  });

  it("after an extension, rewrites AnnexExpiresAt in HTCondor's configuration and reconfigures it", async () => {
    const epoch = (at: string) => Math.floor(Date.parse(at) / 1000);
    const lease = iso(Date.now() + 600_000);
    const condorConfig = (expires: number) =>
      `AnnexName = "demo"\n# The end of the lease\nAnnexExpiresAt = ${expires}\n` +
      'START = (MY.AnnexExpiresAt - time()) >= 0\n';
    const box = await joined(lease, {}, { condorConfig: condorConfig(epoch(lease)) });
    const configPath = join(box.root, 'etc/condor/config.d/50-annex.conf');
    await writeFile(join(box.dir, 'slots'), 'Unclaimed\n');
    const extended = iso(Date.now() + 7200_000);
    box.api.respond = () => ({
      status: 200,
      body: { expiresAt: extended, idleSeconds: 900, action: 'continue' },
    });

    const result = await run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '3' }));
    expect(result.code).toBe(0);
    expect(await readFile(configPath, 'utf8')).toBe(`${condorConfig(epoch(extended))}\n`);
    expect(await mode(configPath)).toBe(0o644);
    // Once: later heartbeats bring the same lease and change nothing.
    expect(await box.marker('condor_reconfig')).toBe('\n');
    expect(result.stderr).toContain(`AnnexExpiresAt = ${epoch(extended)} (${extended})`);
    expect(result.stderr).toContain('condor_reconfig: done');

    // A restarted agent (or a rebooted instance) brings HTCondor's copy up to the lease it kept,
    // before any API call: here every call hangs.
    await writeFile(configPath, `${condorConfig(epoch(lease))}\n`);
    box.api.respond = () => 'hang';
    const restarted = await run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '1' }));
    expect(restarted.code).toBe(0);
    expect(await readFile(configPath, 'utf8')).toBe(`${condorConfig(epoch(extended))}\n`);
    expect(await box.marker('condor_reconfig')).toBe('\n\n');
    expect(await box.marker('poweroff')).toBeUndefined();
  });

  it('installs a renewed IDTOKEN from a heartbeat answer atomically, root-only, and reconfigures HTCondor', async () => {
    const token = (hours: number) =>
      mintToken({
        key: 'image-test-key',
        trustDomain: 'pool.test',
        subject: 'annex-i-0123456789abcdef0@pool.test',
        issuedAt: new Date(),
        expiresAt: new Date(Date.now() + hours * 3600_000),
        authorizations: EXECUTE_POINT_AUTHORIZATIONS,
      });
    const lease = iso(Date.now() + 3600_000);
    const first = token(1);
    const box = await joined(lease, {}, { credential: { type: 'idtoken', value: first.token } });
    const file = join(box.root, 'etc/condor/tokens.d/annex');
    await writeFile(join(box.dir, 'slots'), 'Unclaimed\n');
    const renewed = token(2);
    const extended = iso(Date.now() + 7200_000);
    box.api.respond = () => ({
      status: 200,
      body: {
        expiresAt: extended,
        idleSeconds: 900,
        action: 'continue',
        token: {
          value: renewed.token,
          tokenId: renewed.claims.jti,
          expiresAt: iso(renewed.claims.exp * 1000),
        },
      },
    });

    const result = await run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '2' }));
    expect(result.code).toBe(0);
    expect(await readFile(file, 'utf8')).toBe(`${renewed.token}\n`);
    expect(await mode(file)).toBe(0o600);
    // Installed once (the same token again changes nothing), then HTCondor re-read it, once.
    expect(result.stderr.match(/installed a renewed IDTOKEN/g)).toHaveLength(1);
    expect(result.stderr).toContain(`installed a renewed IDTOKEN ${renewed.claims.jti}`);
    expect(await box.marker('condor_reconfig')).toBe('\n');
    expect(result.stderr).not.toContain(renewed.token);
    expect(await box.marker('poweroff')).toBeUndefined();
  }, 60_000);

  it('re-asserts the metadata firewall every heartbeat: a deleted rule, or one pushed down, goes back first', async () => {
    const box = await joined(iso(Date.now() + 600_000));
    await writeFile(join(box.dir, 'slots'), 'Unclaimed\n');
    box.api.respond = () => ({
      status: 200,
      body: { expiresAt: iso(Date.now() + 600_000), action: 'continue' },
    });
    const waitForHeartbeats = async (count: number) => {
      for (let i = 0; i < 200 && box.heartbeats().length < count; i++) await sleep(50);
      expect(box.heartbeats().length).toBeGreaterThanOrEqual(count);
    };

    const agent = run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '8' }));
    await waitForHeartbeats(1);
    // Someone flushes the rules and puts an ACCEPT in their place.
    await writeFile(join(box.firewall, 'iptables.rules'), '-j ACCEPT\n');
    await waitForHeartbeats(3);
    // …then slips an ACCEPT in ahead of the IPv6 rule.
    await writeFile(join(box.firewall, 'ip6tables.rules'), `-j ACCEPT\n${IMDS_RULE_V6}\n`);
    const result = await agent;

    expect(result.code).toBe(0);
    expect(await box.rules('iptables')).toEqual([IMDS_RULE_V4, '-j ACCEPT']);
    expect(await box.rules('ip6tables')).toEqual([IMDS_RULE_V6, '-j ACCEPT']);
    expect(
      result.stderr.match(/metadata firewall re-asserted: the rule was missing or no longer first/g),
    ).toHaveLength(2);
    expect(await box.marker('poweroff')).toBeUndefined();
    await expectNoSecretsIn(box, result.stdout, result.stderr);
  });

  it.each([
    ['iptables', 'all'],
    ['iptables', 'noop'],
    ['ip6tables', 'write'],
  ] as const)(
    'powers off at once, before any heartbeat, when the firewall cannot be re-asserted (%s: %s)',
    async (tool, mode) => {
      const box = await joined(iso(Date.now() + 600_000));
      box.api.respond = () => ({
        status: 200,
        body: { expiresAt: iso(Date.now() + 600_000), action: 'continue' },
      });
      // The rule went missing, and the tool will not put it back.
      await writeFile(join(box.firewall, `${tool}.rules`), '');
      await writeFile(join(box.firewall, `${tool}.fail`), `${mode}\n`);

      const result = await run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '5' }));
      expect(result.code).toBe(0);
      expect(await box.marker('poweroff')).toContain(
        `the metadata firewall cannot be re-asserted (${tool} could not put the rule`,
      );
      expect(box.heartbeats()).toHaveLength(0);
      // No waiting for HTCondor: a job may be reading the role's credentials.
      expect(await box.marker('condor_off')).toBeUndefined();
    },
  );

  it('reports booting 0/0 and the idle time when HTCondor does not answer', async () => {
    const box = await joined(iso(Date.now() + 600_000));
    box.api.respond = () => ({
      status: 200,
      body: { expiresAt: iso(Date.now() + 600_000), action: 'continue' },
    });
    const result = await run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '1' }));
    expect(result.code).toBe(0);
    expect(box.heartbeats().map((h) => h.json)).toEqual([
      { claimedSlots: 0, totalSlots: 0, idleSeconds: expect.any(Number), state: 'booting' },
    ]);
  });

  it('obeys action: shutdown (condor_off -graceful, then power off)', async () => {
    const box = await joined(iso(Date.now() + 600_000));
    await writeFile(join(box.dir, 'slots'), 'Unclaimed\n');
    box.api.respond = () => ({ status: 200, body: { expiresAt: iso(Date.now()), action: 'shutdown' } });

    const result = await run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '5' }));
    expect(result.code).toBe(0);
    expect(box.heartbeats()).toHaveLength(1);
    expect(await box.marker('condor_off')).toBe('-graceful\n');
    expect(await box.marker('poweroff')).toContain('action: shutdown');
  });

  it('on a spot interruption notice: condor_off -graceful, reports it, heartbeats draining', async () => {
    const box = await joined(iso(Date.now() + 600_000));
    await writeFile(join(box.dir, 'slots'), 'Claimed\n');
    const notice = { action: 'terminate', time: iso(Date.now() + 120_000) };
    box.imds.spotAction = notice;
    let reports = 0;
    box.api.respond = (call) =>
      call.path === '/v1/instances/self/interruption'
        ? // The first report fails: it is sent again at the next poll.
          { status: (reports += 1) === 1 ? 503 : 202 }
        : { status: 200, body: { expiresAt: iso(Date.now() + 600_000), action: 'continue' } };

    const result = await run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '3' }));
    expect(result.code).toBe(0);
    const interruptions = box.api.calls.filter((c) => c.path === '/v1/instances/self/interruption');
    expect(interruptions.map((c) => [c.verdict, c.status, c.json])).toEqual([
      ['ok', 503, notice],
      ['ok', 202, notice],
    ]);
    expect(await box.marker('condor_off')).toBe('-graceful\n');
    const heartbeats = box.heartbeats();
    expect(heartbeats.length).toBeGreaterThanOrEqual(1);
    expect(heartbeats.every((h) => (h.json as { state: string }).state === 'draining')).toBe(true);
    expect(await box.marker('poweroff')).toBeUndefined();
  });

  it('powers off at expiresAt + grace by its local timer while every API call hangs', async () => {
    const box = await joined(iso(Date.now() + 600_000));
    box.api.respond = () => 'hang';
    // The last lease the agent heard of (as a heartbeat would have saved it) ended 295 s ago:
    // the 300 s grace runs out 5 s into the agent's life.
    await writeFile(
      join(box.root, 'var/lib/annex/lease.json'),
      JSON.stringify({ expiresAt: iso(Date.now() - 295_000), idleSeconds: 900 }),
    );

    const result = await run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '20' }));
    expect(result.code).toBe(0);
    expect(box.heartbeats().length).toBeGreaterThanOrEqual(1);
    expect(box.heartbeats().every((h) => h.status === 0)).toBe(true); // never answered
    expect(result.stderr).toContain('heartbeat: API unreachable');
    expect(await box.marker('poweroff')).toContain('grace has passed (local timer)');
    expect(await box.marker('condor_off')).toBe('-graceful\n');
    expect(result.ms).toBeLessThan(15_000);
  });

  it('powers off at once, without the API, when the lease ended more than the grace ago', async () => {
    const box = await joined(iso(Date.now() - 301_000));
    await box.api.stop();
    const result = await run('annex-agent', [], box.env({ ...agentEnv, ANNEX_AGENT_MAX_TICKS: '5' }));
    expect(result.code).toBe(0);
    expect(box.heartbeats()).toHaveLength(0);
    expect(await box.marker('poweroff')).toContain('(local timer)');
  });
});
