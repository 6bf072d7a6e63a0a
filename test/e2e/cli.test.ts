// End to end: the `annex` binary, as a user runs it, against the local stack (real handlers behind
// the SigV4-checking gateway, DynamoDB Local, moto). Assertions read EC2 (moto) directly where the
// point is what was launched.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type Server as HttpServer,
} from 'node:http';
import { createServer as createTcpServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInstanceRunner, type InstanceRunner } from '../../scripts/devstack/instance-runner.ts';
import type { LocalStack } from '../../scripts/devstack/stack.ts';
import { cliBinary } from '../../cli/scripts/build.ts';
import { buildOnce, cliFor, lines, type Cli } from './harness.ts';
import { allowOnDefaultPool, annexInstances, integrationStack } from '../support/integration-stack.ts';

let stack: LocalStack;
let cli: Cli;
let ec2: EC2Client;
let runner: InstanceRunner;
const servers: { close(cb: () => void): unknown }[] = [];

beforeAll(async () => {
  await buildOnce();
  stack = await integrationStack('e2e');
  // -aws-user-data-file passes the user's own user data: the default pool's admin allows it here.
  await allowOnDefaultPool(stack, { allowUserData: true });
  cli = cliFor(stack);
  ec2 = new EC2Client(stack.clientConfig('moto'));
  // Every instance boots the real annex-boot and annex-agent (heartbeat every second), so create
  // and add wait, as for a user, until the new instances have joined the pool.
  runner = await startInstanceRunner({
    stack,
    heartbeatSeconds: 1,
    pollMs: 300,
    bootDelayMs: 100,
    env: { ANNEX_SHUTDOWN_SETTLE_SECONDS: '0', ANNEX_API_MAX_TIME: '5' },
  });
}, 60_000);

afterAll(async () => {
  await runner?.stop();
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  ec2?.destroy();
  await stack?.stop();
});

const liveInstances = (annexId: string): Promise<Instance[]> => annexInstances(ec2, annexId);

interface Detail {
  annex: {
    id: string;
    name: string;
    state: string;
    requestedCount: number;
    runningCount?: number;
    expiresAt: string;
    idleSeconds: number;
    tags: Record<string, string>;
    endReason?: string;
    instanceTypes: string[];
  };
  instances: { instanceId: string; state: string; instanceType: string }[];
  events: { type: string; message: string }[];
}

const closedPort = async (): Promise<number> => {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
};

describe('annex start-up', () => {
  it('loads no AWS SDK module for help and usage errors: the credential chain and signer load lazily', () => {
    const seen = new Set<string>();
    const external = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const code = readFileSync(file, 'utf8');
      // Static imports only: `import … from "x"` and `import "x"`, not `import("x")`.
      for (const [, spec] of code.matchAll(/^\s*(?:import|export)\s[^;(]*?["']([^"']+)["']/gm)) {
        if (spec === undefined) continue;
        if (spec.startsWith('.')) visit(join(dirname(file), spec));
        else external.add(spec);
      }
    };
    visit(cliBinary);
    expect([...external].filter((s) => !s.startsWith('node:'))).toEqual([]);
    expect(seen.size).toBeGreaterThan(1);
    expect(seen.size).toBeLessThanOrEqual(6);
  });
});

describe('annex, the classic condor_annex command line', () => {
  it('creates ToddsGPU, and annex status ToddsGPU shows it', async () => {
    const created = await cli.run([
      '-count',
      '1',
      '-annex-name',
      'ToddsGPU',
      '-aws-on-demand-instance-type',
      'p2.xlarge',
    ]);
    expect(created.stderr).not.toContain('annex:');
    expect(created.code).toBe(0);
    // The wait lasts until the instance's agent (the real annex-boot and annex-agent, run by the
    // instance runner) has sent its first heartbeat.
    expect(created.stdout).toContain('ToddsGPU: 1 instance(s) launched, running, and joined the pool.');

    const status = await cli.run(['status', 'ToddsGPU']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^ToddsGPU {2}ax-[0-9a-f]+/);
    expect(status.stdout).toMatch(/heartbeats +1 of 1 instance\(s\) reported/);
    expect(status.stdout).toMatch(/state +RUNNING/);
    expect(status.stdout).toContain('1 of 1 running');
    expect(status.stdout).toMatch(/expires +in 4\dm \d\ds at/);
    const { body } = await cli.json<Detail>(['status', 'ToddsGPU']);
    const instances = await liveInstances(body.annex.id);
    expect(instances.map((i) => i.InstanceType)).toEqual(['p2.xlarge']);
    expect(status.stdout).toContain(instances[0]?.InstanceId);
  });

  it('resets the lease with -annex-name and -duration alone, as condor_annex did', async () => {
    const before = Date.now();
    const { run, body } = await cli.json<Detail>(['-annex-name', 'ToddsGPU', '-duration', '1.5']);
    expect(run.code).toBe(0);
    const seconds = (Date.parse(body.annex.expiresAt) - before) / 1000;
    expect(seconds).toBeGreaterThan(5400 - 30);
    expect(seconds).toBeLessThan(5400 + 30);
    expect((await liveInstances(body.annex.id)).length).toBe(1);
  });

  it('shows -status for all annexes and -annex-name NAME -status -classad as JSON', async () => {
    const all = await cli.run(['-status']);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/ToddsGPU +RUNNING/);
    const one = await cli.run(['-annex-name', 'ToddsGPU', '-status', '-classad']);
    expect(JSON.parse(one.stdout).annex.name).toBe('ToddsGPU');
  });

  it('applies every -tag and reads -aws-user-data-file', async () => {
    const userData = join(cli.home, 'user-data.sh');
    writeFileSync(userData, '#!/bin/sh\necho hello\n');
    const { run, body } = await cli.json<Detail & { annex: { userDataBytes: number } }>([
      '-count',
      '1',
      '-annex-name',
      'tagged',
      '-aws-on-demand-instance-type',
      'm5.large',
      '-tag',
      'project',
      'gpu 2025',
      '-tag',
      'team',
      'hpc',
      '-aws-user-data-file',
      userData,
      '-idle',
      '0.5',
      '-yes',
    ]);
    expect(run.code).toBe(0);
    expect(body.annex.tags).toEqual({ project: 'gpu 2025', team: 'hpc' });
    expect(body.annex.userDataBytes).toBe(Buffer.byteLength('#!/bin/sh\necho hello\n'));
    expect(body.annex.idleSeconds).toBe(1800);
    const [instance] = await liveInstances(body.annex.id);
    const tag = (key: string) => instance?.Tags?.find((t) => t.Key === key)?.Value;
    expect([tag('project'), tag('team')]).toEqual(['gpu 2025', 'hpc']);
    expect((await cli.run(['terminate', 'tagged', '--yes'])).code).toBe(0);
  });

  it('-slots with -aws-spot-fleet-config-file (from stdin) gets spot instances from an EC2 Fleet', async () => {
    const config = {
      TargetCapacity: 3,
      AllocationStrategy: 'capacityOptimized',
      IamFleetRole: 'arn:aws:iam::123456789012:role/aws-ec2-spot-fleet-tagging-role',
      LaunchSpecifications: ['m5.large', 'c5.large'].map((InstanceType) => ({
        ImageId: stack.imageId,
        InstanceType,
        SubnetId: stack.subnetIds[0],
      })),
    };
    const { run, body } = await cli.json<Detail & { annex: { market: string; allocationStrategy: string } }>(
      ['-slots', '2', '-annex-name', 'fleety', '-aws-spot-fleet-config-file', '-', '-yes'],
      { input: JSON.stringify(config) },
    );
    expect(run.code, run.stderr).toBe(0);
    // -slots overrides TargetCapacity, as condor_annex's -slots did.
    expect(body.annex.requestedCount).toBe(2);
    expect(body.annex.market).toBe('spot');
    expect(body.annex.allocationStrategy).toBe('capacity-optimized');
    expect(body.annex.instanceTypes).toEqual(['m5.large', 'c5.large']);
    const running = await liveInstances(body.annex.id);
    expect(running).toHaveLength(2);
    expect(running.every((i) => i.InstanceLifecycle === 'spot')).toBe(true);
    expect((await cli.run(['terminate', 'fleety', '--yes'])).code).toBe(0);
  });

  it('annex create --spot with three types, then add --spot, shows requested and running', async () => {
    const { run, body } = await cli.json<Detail & { annex: { market: string } }>([
      'create',
      'spotty',
      '-n',
      '2',
      '-t',
      'm5.large',
      '-t',
      'c5.large,r5.large',
      '--spot',
      '--replace-interrupted',
      '--max-spend',
      '25',
      '--yes',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(body.annex).toMatchObject({ market: 'spot', requestedCount: 2, runningCount: 2 });
    expect(body.annex.instanceTypes).toEqual(['m5.large', 'c5.large', 'r5.large']);
    expect(body.annex).toMatchObject({ replaceInterrupted: true, maxSpend: 25 });
    const added = await cli.json<Detail>(['add', 'spotty', '-n', '1', '--spot', '--on-demand-base', '1']);
    expect(added.run.code, added.run.stderr).toBe(0);
    expect(added.body.annex).toMatchObject({ requestedCount: 3, runningCount: 3 });
    const markets = (await liveInstances(body.annex.id))
      .map((i) => i.InstanceLifecycle ?? 'on-demand')
      .sort();
    expect(markets).toEqual(['on-demand', 'spot', 'spot']);
    expect((await cli.run(['terminate', 'spotty', '--yes'])).code).toBe(0);
  });

  it('-owner limits START to those HTCondor users; -no-owner lets any user of the pool run', async () => {
    const condorConfig = async (name: string): Promise<string> => {
      const response = await stack.as('alice').request('GET', `/v1/annexes/${name}/condor-config`);
      expect(response.status).toBe(200);
      return (response.body as { condorConfig: string }).condorConfig;
    };
    const base = ['-count', '1', '-aws-on-demand-instance-type', 'm5.large', '-yes'];
    const owned = await cli.json<Detail & { annex: { allowedUsers: string[] } }>([
      ...base,
      '-annex-name',
      'owned',
      '-owner',
      'big, little',
    ]);
    expect(owned.run.code).toBe(0);
    expect(owned.body.annex.allowedUsers).toEqual(['big', 'little']);
    const ownedStart = (await condorConfig('owned')).split('\n').find((l) => l.startsWith('START ='));
    expect(ownedStart).toContain('"big"');
    expect(ownedStart).toContain('"little"');

    const anyone = await cli.json<Detail & { annex: { allowedUsers: string[] } }>([
      ...base,
      '-annex-name',
      'anyone',
      '-no-owner',
    ]);
    expect(anyone.run.code).toBe(0);
    expect(anyone.body.annex.allowedUsers).toEqual([]);
    const anyoneStart = (await condorConfig('anyone')).split('\n').find((l) => l.startsWith('START ='));
    expect(anyoneStart).not.toMatch(/Owner|User/);
    for (const name of ['owned', 'anyone'])
      expect((await cli.run(['terminate', name, '--yes'])).code).toBe(0);
  });
});

describe('annex, the modern command line', () => {
  it('create → status → extend → add → terminate, with stable --json shapes', async () => {
    const start = Date.now();
    const created = await cli.json<Detail>([
      'create',
      'demo',
      '--count',
      '2',
      '--type',
      'm5.large',
      '--type',
      'c5.large',
      '--duration',
      '2h',
      '--idle',
      '30m',
      '--tag',
      'team=hpc',
    ]);
    expect(created.run.code).toBe(0);
    expect(Object.keys(created.body).sort()).toEqual(['annex', 'events', 'instances']);
    const { annex } = created.body;
    expect(annex).toMatchObject({
      name: 'demo',
      state: 'RUNNING',
      requestedCount: 2,
      runningCount: 2,
      idleSeconds: 1800,
      tags: { team: 'hpc' },
    });
    expect(annex.instanceTypes).toEqual(['m5.large', 'c5.large']);
    expect(created.body.instances).toHaveLength(2);
    expect(Math.abs(Date.parse(annex.expiresAt) - start - 7200_000)).toBeLessThan(30_000);
    expect(created.body.events.map((e) => e.type)).toContain('launched');

    const status = await cli.json<Detail>(['status', 'demo']);
    expect(status.body.annex.id).toBe(annex.id);

    const by = await cli.json<Detail>(['extend', 'demo', '--by', '1h']);
    expect(by.run.code).toBe(0);
    expect(Date.parse(by.body.annex.expiresAt) - Date.parse(annex.expiresAt)).toBe(3600_000);

    const until = new Date(Date.now() + 5 * 3600_000);
    until.setUTCMilliseconds(0);
    const untilRun = await cli.json<Detail>([
      'extend',
      'demo',
      '--until',
      until.toISOString(),
      '--idle',
      '45m',
    ]);
    expect(untilRun.body.annex.expiresAt).toBe(until.toISOString());
    expect(untilRun.body.annex.idleSeconds).toBe(2700);
    const text = await cli.run(['extend', 'demo', '--until', '+3h']);
    expect(text.stdout).toMatch(/^demo: the lease now ends in (2h 59m|3h 00m) at /);

    const added = await cli.json<Detail>(['add', 'demo', '--count', '1']);
    expect(added.run.code).toBe(0);
    expect(added.body.annex).toMatchObject({ requestedCount: 3, runningCount: 3 });
    expect(added.body.instances).toHaveLength(3);
    expect(await liveInstances(annex.id)).toHaveLength(3);

    const list = await cli.json<{ annexes: Detail['annex'][] }>(['list']);
    expect(list.body.annexes.find((a) => a.name === 'demo')?.id).toBe(annex.id);

    const events = await cli.json<{ name: string; id: string; events: Detail['events'] }>(['events', 'demo']);
    expect(events.body).toMatchObject({ name: 'demo', id: annex.id });
    expect(events.body.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['created', 'launched', 'extended', 'nodes-requested']),
    );

    const ended = await cli.json<Detail>(['terminate', 'demo', '--yes']);
    expect(ended.run.code).toBe(0);
    expect(ended.body.annex).toMatchObject({ state: 'TERMINATED', endReason: 'user' });
    expect(await liveInstances(annex.id)).toHaveLength(0);

    const watched = await cli.run(['status', 'demo', '--watch', '--json', '--interval', '1s']);
    expect(watched.code).toBe(0);
    expect(lines(watched.stdout).map((l) => (JSON.parse(l) as Detail).annex.state)).toEqual(['TERMINATED']);

    const after = await cli.run(['status', 'demo']);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/state +TERMINATED/);
    expect(after.stdout).toMatch(/ended +\d+s ago at .*\(user\)/);
  }, 120_000);

  it('--quiet prints nothing on success; --no-wait returns the annex at once', async () => {
    const quiet = await cli.run(['create', 'quiet', '-n', '1', '-t', 'm5.large', '--quiet']);
    expect([quiet.code, quiet.stdout, quiet.stderr]).toEqual([0, '', '']);
    const noWait = await cli.json<Detail>(['add', 'quiet', '-n', '1', '--no-wait']);
    expect(noWait.run.code).toBe(0);
    expect(noWait.body.annex.requestedCount).toBe(2);
    expect((await cli.run(['terminate', 'quiet', '-y', '-q'])).code).toBe(0);
  });
});

describe('annex exit codes and errors', () => {
  it.each([
    [['status', 'no-such-annex'], 3, /^annex: NotFound: no annex named no-such-annex \(hint: /],
    [
      ['create', 'ToddsGPU', '-n', '1', '-t', 'm5.large'],
      4,
      /^annex: Conflict: an annex named ToddsGPU is already live \(hint: choose another name/,
    ],
    [
      ['create', 'x', '-n', '1', '-t', 'm5.large', '--duration', '90'],
      2,
      /^annex: Usage: --duration "90" has no unit/,
    ],
    [
      ['create', 'x', '-n', '1', '-t', 'm5.large', '--duration', '30s'],
      2,
      /^annex: ValidationError: durationSeconds: .*\(hint: check --duration\)$/,
    ],
    [
      ['create', 'x', '-n', '1', '-t', 'm5.large', '--spot', '--capacity-policy', 'some'],
      2,
      /^annex: ValidationError: capacityPolicy: /,
    ],
    [
      ['-count', '1', '-annex-name', 'x', '-aws-spot-fleet-config-file', '-'],
      2,
      /^annex: Usage: --spot-fleet-config - is not JSON/,
    ],
    [
      [
        '-count',
        '1',
        '-annex-name',
        'x',
        '-aws-on-demand-instance-type',
        'm5.large',
        '-owner',
        'a,b',
        '-no-owner',
      ],
      2,
      /^annex: Usage: give --owner or --no-owner, not both/,
    ],
    [['extend', 'ToddsGPU'], 2, /needs --by, --until or --duration/],
    [['frobnicate'], 2, /^annex: Usage: unknown command "frobnicate"/],
  ])('annex %j exits %i with one line', async (args, code, line) => {
    const result = await cli.run(args);
    expect(result.code).toBe(code);
    expect(lines(result.stderr)).toHaveLength(1);
    expect(result.stderr.trim()).toMatch(line);
  });

  it('--json errors are an object on stdout with the code and exit code', async () => {
    const { run, body } = await cli.json<{ error: Record<string, unknown> }>(['status', 'no-such-annex']);
    expect(run.code).toBe(3);
    expect(body.error).toMatchObject({ code: 'NotFound', exitCode: 3, status: 404 });
  });

  it('without credentials, says so in one line and sends nothing (exit 1)', async () => {
    const result = await cli.run(['list'], {
      env: { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined },
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(
      /^annex: NoCredentials: no AWS credentials found \(hint: set AWS_ACCESS_KEY_ID/,
    );
    expect(result.ms).toBeLessThan(15_000);
  });

  it('takes credentials and region from an AWS profile (--profile), through the default chain', async () => {
    const alice = stack.users.find((u) => u.name === 'alice');
    writeFileSync(
      cli.env.AWS_SHARED_CREDENTIALS_FILE ?? '',
      `[lab]\naws_access_key_id = ${alice?.accessKeyId}\naws_secret_access_key = ${alice?.secretAccessKey}\n`,
    );
    writeFileSync(cli.env.AWS_CONFIG_FILE ?? '', `[profile lab]\nregion = ${stack.region}\n`);
    const env = { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_REGION: undefined };
    const result = await cli.run(['list', '--profile', 'lab'], { env });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const viaEnv = await cli.run(['check-setup'], { env: { ...env, AWS_PROFILE: 'lab' } });
    expect(viaEnv.stdout).toContain(`region ${stack.region} (from AWS profile lab)`);
    expect(viaEnv.stdout).toMatch(/✓ credentials access key AKIA…\w{4} \(profile lab\)/);
  });

  it('takes condor_annex’s -aws-access-key-file and -aws-secret-key-file', async () => {
    const alice = stack.users.find((u) => u.name === 'alice');
    const [access, secret] = [join(cli.home, 'publicKeyFile'), join(cli.home, 'privateKeyFile')];
    writeFileSync(access, `${alice?.accessKeyId}\n`);
    writeFileSync(secret, `${alice?.secretAccessKey}\n`);
    const result = await cli.run(
      ['-status', '-aws-access-key-file', access, '-aws-secret-key-file', secret],
      {
        env: { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined },
      },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('with a wrong secret key, reports the 403 with a hint about credentials and region', async () => {
    const result = await cli.run(['list'], { env: { AWS_SECRET_ACCESS_KEY: 'not-the-right-secret' } });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(
      /^annex: Forbidden: the request was refused \(HTTP 403: Forbidden\) \(hint: check your AWS credentials and the signing region \(us-east-1\)/,
    );
  });

  it('with a wrong endpoint, names it (exit 1)', async () => {
    const port = await closedPort();
    const result = await cli.run(['list'], { env: { ANNEX_API_URL: `http://127.0.0.1:${port}` } });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      `annex: Unreachable: cannot reach the Annex API at http://127.0.0.1:${port}/ (ECONNREFUSED) (hint: check --endpoint, ANNEX_API_URL or the endpoint in annex configure)`,
    );
  });

  it('never takes AWS_ENDPOINT_URL for the API endpoint', async () => {
    const result = await cli.run(['list'], { env: { ANNEX_API_URL: undefined } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('annex: NoEndpoint: no Annex API endpoint is configured');
  });
});

describe('annex create is idempotent across retries', () => {
  it('retries a create whose response was lost with the same Idempotency-Key, and launches once', async () => {
    // A proxy that forwards the first POST /v1/annexes, lets the API act on it, then drops the
    // connection instead of answering, as a network failure after the fact would.
    const api = new URL(stack.apiUrl);
    const posts: string[] = [];
    let dropped = false;
    const proxy: HttpServer = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const isCreate = req.method === 'POST' && req.url === '/v1/annexes';
        if (isCreate) posts.push(String(req.headers['idempotency-key']));
        const upstream = httpRequest(
          { host: api.hostname, port: api.port, method: req.method, path: req.url, headers: req.headers },
          (answer) => {
            if (isCreate && !dropped) {
              dropped = true;
              answer.resume();
              answer.on('end', () => req.socket.destroy());
              return;
            }
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.end(Buffer.concat(chunks));
      });
    });
    servers.push(proxy);
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;

    const { run, body } = await cli.json<Detail>(['create', 'retried', '-n', '2', '-t', 'm5.large'], {
      env: { ANNEX_API_URL: proxyUrl },
    });
    expect(run.code).toBe(0);
    expect(dropped).toBe(true);
    expect(posts).toHaveLength(2);
    expect(posts[0]).toMatch(/^annex-cli-/);
    expect(posts[1]).toBe(posts[0]);
    expect(await liveInstances(body.annex.id)).toHaveLength(2);
    expect((await cli.run(['terminate', 'retried', '--yes'])).code).toBe(0);
  });
});

describe('annex pools and check-setup', () => {
  it('registers a private pool, checks its collector from the control plane, and passes check-setup', async () => {
    const collector: Server = createTcpServer((socket) => socket.end());
    servers.push(collector);
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const port = (collector.address() as { port: number }).port;
    const passwordFile = join(cli.home, 'pool-password');
    writeFileSync(passwordFile, 'a-lab-pool-password\n');

    const setLab = [
      'pools',
      'set',
      'lab',
      '--collector',
      `127.0.0.1:${port}`,
      '--password-file',
      passwordFile,
    ];
    const set = await cli.json<{ pool: Record<string, unknown> }>(setLab);
    expect(set.run.code).toBe(0);
    expect(set.body.pool).toMatchObject({
      name: 'lab',
      scope: 'private',
      collectorHost: '127.0.0.1',
      collectorPort: port,
      credentialType: 'password',
    });
    expect(JSON.stringify(set.body)).not.toContain('a-lab-pool-password');

    const list = await cli.json<{ pools: { name: string }[] }>(['pools', 'list']);
    expect(list.body.pools.map((p) => p.name)).toEqual(expect.arrayContaining(['default', 'lab']));

    const check = await cli.json<{ check: { reachable: boolean; latencyMs: number } }>([
      'pools',
      'check',
      'lab',
    ]);
    expect(check.run.code).toBe(0);
    expect(check.body.check).toMatchObject({ reachable: true });

    const setup = await cli.json<{ ok: boolean; checks: { name: string; ok: boolean }[] }>([
      'check-setup',
      '--pool',
      'lab',
    ]);
    expect(setup.run.code).toBe(0);
    expect(setup.body.ok).toBe(true);
    expect(setup.body.checks.map((c) => [c.name, c.ok])).toEqual([
      ['endpoint', true],
      ['credentials', true],
      ['API', true],
      ['pool', true],
      ['collector', true],
    ]);
    const human = await cli.run(['check-setup', '--pool', 'lab']);
    expect(human.stdout).toContain(`✓ collector   collector 127.0.0.1:${port} is reachable from the cloud`);
    // A password pool works, with a warning: its secret is on every annex machine.
    expect(human.stdout).toMatch(
      /✓ pool .*password credential \(warning: a password pool hands its pool-wide secret/,
    );
    const again = await cli.run(setLab);
    expect(again.stderr).toContain(
      'warning: a password pool hands its pool-wide secret to every annex machine',
    );
    expect(again.stderr).toContain('--token-key-file');
  });

  it('registers an IDTOKENS pool without the password warning', async () => {
    const keyFile = join(cli.home, 'pool-signing-key');
    writeFileSync(keyFile, 'a-lab-signing-key\n');
    const set = await cli.run([
      'pools',
      'set',
      'tokens-lab',
      '--collector',
      '127.0.0.1:9618',
      '--token-key-file',
      keyFile,
    ]);
    expect(set.code).toBe(0);
    expect(set.stderr).not.toContain('warning');
    const human = await cli.run(['check-setup', '--pool', 'tokens-lab']);
    expect(human.stdout).toMatch(
      /✓ pool +tokens-lab \(private\): collector 127\.0\.0\.1:9618, idtokens-signing-key credential\n/,
    );
  });

  it('fails check-setup when the collector cannot be reached, saying which check failed', async () => {
    const port = await closedPort();
    writeFileSync(join(cli.home, 'pw'), 'another-pool-password');
    expect(
      (
        await cli.run([
          'pools',
          'set',
          'closed',
          '--collector',
          `127.0.0.1:${port}`,
          '--password-file',
          join(cli.home, 'pw'),
        ])
      ).code,
    ).toBe(0);
    const result = await cli.run(['-check-setup', '--pool', 'closed']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /✗ collector +CollectorUnreachable: collector 127\.0\.0\.1:\d+ is unreachable from the cloud: the connection was refused/,
    );
    expect(result.stderr.trim()).toBe(
      'annex: SetupIncomplete: the setup check failed at collector (hint: fix what the ✗ line says and run annex check-setup again)',
    );
    const missing = await cli.json<{ ok: boolean; checks: { name: string; ok: boolean; detail: string }[] }>([
      'check-setup',
      '--pool',
      'nope',
    ]);
    expect(missing.body.checks.find((c) => c.name === 'pool')?.ok).toBe(false);
    expect(missing.body.checks.find((c) => c.name === 'collector')?.detail).toContain('skipped');
  });

  it('names the setup step that is missing: configure, credentials, the user policy, a pool', async () => {
    const failedAt = async (args: string[], env: Record<string, string | undefined>) => {
      const result = await cli.json<{ checks: { name: string; ok: boolean; detail: string }[] }>(
        ['check-setup', ...args],
        { env },
      );
      expect(result.run.code).toBe(1);
      return result.body.checks.find((c) => !c.ok);
    };

    expect(await failedAt([], { ANNEX_API_URL: undefined })).toMatchObject({
      name: 'endpoint',
      detail: expect.stringContaining('missing step: annex configure --endpoint URL'),
    });
    expect(
      await failedAt([], { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined }),
    ).toMatchObject({
      name: 'credentials',
      detail: expect.stringContaining(
        'missing step: AWS credentials of the IAM identity that has the AnnexUser policy',
      ),
    });
    // A key the gateway does not know is refused as API Gateway refuses a caller without the policy.
    expect(await failedAt([], { AWS_SECRET_ACCESS_KEY: 'not-the-secret-key-of-this-user' })).toMatchObject({
      name: 'API',
      detail: expect.stringContaining("missing step: attach the stack's AnnexUser policy"),
    });
    expect(await failedAt(['--pool', 'nope'], {})).toMatchObject({
      name: 'pool',
      detail: expect.stringContaining('missing step: register a pool (annex pools set POOL'),
    });
  });
});

describe('annex off and configure', () => {
  it('off runs condor_off -master -annex NAME where HTCondor’s tools are installed', async () => {
    const bin = join(cli.home, 'condor-bin');
    const record = join(cli.home, 'condor_off.args');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'condor_off'),
      `#!/bin/sh\necho "$@" > ${JSON.stringify(record)}\necho "Sent off to the annex's masters"\n`,
    );
    chmodSync(join(bin, 'condor_off'), 0o755);
    const result = await cli.run(['off', 'ToddsGPU'], {
      env: { PATH: `${bin}:${dirname(process.execPath)}:/usr/bin:/bin` },
    });
    expect(result.code).toBe(0);
    expect(readFileSync(record, 'utf8').trim()).toBe('-master -annex ToddsGPU');
    expect(result.stdout).toContain("Sent off to the annex's masters");

    const without = await cli.run(['-annex-name', 'ToddsGPU', 'off'], {
      env: { PATH: dirname(process.execPath) },
    });
    expect(without.code).toBe(1);
    expect(without.stderr.trim()).toMatch(/^annex: NoCondorTools: condor_off is not on PATH/);
  });

  it('configure writes the config file, and later commands use its endpoint and region', async () => {
    const configured = await cli.run([
      'configure',
      '--endpoint',
      `${stack.apiUrl}/`,
      '--region',
      stack.region,
      '--pool',
      'default',
    ]);
    expect(configured.code).toBe(0);
    expect(JSON.parse(readFileSync(cli.env.ANNEX_CONFIG_FILE ?? '', 'utf8'))).toEqual({
      endpoint: stack.apiUrl,
      region: stack.region,
      pool: 'default',
    });
    const list = await cli.run(['list'], { env: { ANNEX_API_URL: undefined, AWS_REGION: undefined } });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/ToddsGPU +RUNNING/);
    const shown = await cli.json<{ config: Record<string, string> }>(['configure']);
    expect(shown.body.config.endpoint).toBe(stack.apiUrl);
  });

  it('ends ToddsGPU', async () => {
    const result = await cli.run(['terminate', 'ToddsGPU', '--yes']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('ToddsGPU: TERMINATED (user)');
  });
});
