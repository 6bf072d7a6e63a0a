// schemathesis fuzzes the local stack from docs/openapi.yaml alone, through a SigV4-signing proxy
// (scripts/devstack/signing-proxy.ts): every check but the four that cannot apply behind such a proxy or
// API Gateway (the proxy signs whatever credentials were sent; API Gateway answers unknown methods
// 404), a fixed seed and a bounded number of examples. Any failure fails this test with the report.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { DevUser } from '../../scripts/devstack/dev-users.ts';
import { OPENAPI_PATH } from '../../scripts/devstack/openapi.ts';
import { repoRoot } from '../../scripts/devstack/serverless-config.ts';
import { startSigningProxy, type SigningProxy } from '../../scripts/devstack/signing-proxy.ts';
import { startSlackDev, type SlackDev } from '../../scripts/devstack/slack-dev.ts';
import type { LocalStack } from '../../scripts/devstack/stack.ts';
import { integrationStack } from '../support/integration-stack.ts';
import { startMotoShim, type MotoShim } from '../support/moto-shim.ts';

const SCHEMATHESIS = join(repoRoot, '.venv-schemathesis', 'bin', 'schemathesis');
const HERE = join(repoRoot, 'test', 'integration');
const EXCLUDED_CHECKS = [
  'ignored_auth',
  'missing_required_header',
  'unsupported_method',
  'allow_header_conformance',
];
const SEED = 20261202;
const MAX_EXAMPLES = 20;

let shim: MotoShim;
let stack: LocalStack;
let slack: SlackDev;
let proxy: SigningProxy;

/** The instance routes are signed as one instance of a live annex, the others as the admin. */
const signers = async (s: LocalStack): Promise<(path: string) => DevUser> => {
  const admin = s.users.find((u) => u.admin === true);
  if (admin === undefined) throw new Error('the stack has no admin user');
  const created = await s.as(admin).request('POST', '/v1/annexes', {
    name: 'fuzzed-instance',
    count: 1,
    instanceTypes: ['m5.large'],
    durationSeconds: 3600,
  });
  expect(created.status).toBe(201);
  const detail = await s
    .as(admin)
    .request<{ instances: { instanceId: string }[] }>('GET', '/v1/annexes/fuzzed-instance');
  const instanceId = detail.body.instances[0]?.instanceId;
  if (instanceId === undefined) throw new Error('the annex has no instance');
  const instance = s.instanceCredentials(instanceId);
  return (path) => (path.startsWith('/v1/instances/self/') ? instance : admin);
};

const run = (args: string[]): Promise<{ code: number | null; output: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(SCHEMATHESIS, args, {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: '1', SCHEMATHESIS_HOOKS: join(HERE, 'schemathesis_hooks.py') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });

beforeAll(async () => {
  // moto cannot launch a fleet from instance requirements; the shim picks a type, as EC2 would.
  shim = await startMotoShim(inject('motoEndpoint'), { fleetRequirementsType: 'm5.large' });
  stack = await integrationStack('fz', { motoEndpoint: shim.endpoint });
  slack = await startSlackDev(stack);
  proxy = await startSigningProxy({
    target: stack.apiUrl,
    region: stack.region,
    signerFor: await signers(stack),
  });
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  await slack?.stop();
  await stack?.stop();
  await shim?.stop();
});

describe('schemathesis against the local stack', () => {
  it('finds no failure with every applicable check', { timeout: 300_000 }, async () => {
    expect(existsSync(SCHEMATHESIS), `${SCHEMATHESIS} is missing: run bash scripts/ensure-deps.sh`).toBe(
      true,
    );

    const { code, output } = await run([
      '--config-file',
      join(HERE, 'schemathesis.toml'),
      'run',
      OPENAPI_PATH,
      '--url',
      proxy.url,
      '--checks',
      'all',
      '--exclude-checks',
      EXCLUDED_CHECKS.join(','),
      '--seed',
      String(SEED),
      '--max-examples',
      String(MAX_EXAMPLES),
      '--workers',
      '1',
      '--request-timeout',
      '20',
    ]);

    expect(code, output).toBe(0);
    expect(output).toMatch(/No issues found|passed/);
  });
});
