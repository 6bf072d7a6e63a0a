// The whole instance lifecycle on the local stack, in real time: an annex's instance, launched in
// moto, runs the real image/annex-boot and image/annex-agent (scripts/devstack/instance-runner.ts)
// against its own fake IMDS and the SigV4-checking gateway; it bootstraps, heartbeats as joined,
// hears of an extension (HTCondor's AnnexExpiresAt follows), and the HTCondor stand-in's
// STARTD_NOCLAIM_SHUTDOWN powers it off, which terminates it in moto; the sweep then records it. An
// IDTOKENS pool's instance holds its own token, never the key, and gets a renewed one on extension.
// Kept short: heartbeats every second, idle shutdown after 30 seconds (room for a slow machine, and
// for the IDTOKENS test to extend its lease before its instance ends).
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Enforcer } from '../../scripts/devstack/enforcer.ts';
import { startInstanceRunner, type InstanceRunner } from '../../scripts/devstack/instance-runner.ts';
import type { ApiClient, LocalStack } from '../../scripts/devstack/stack.ts';
import { condorScramble, TOKEN_GRACE_SECONDS, verifyToken } from '../../shared/domain/idtokens.ts';
import { integrationStack, stackEnforcer } from '../support/integration-stack.ts';

const IDLE_SECONDS = 30;

let stack: LocalStack;
let enforcer: Enforcer;
let runner: InstanceRunner;
let ec2: EC2Client;
let alice: ApiClient;
const runnerLog: string[] = [];
const savedOrphanAge = process.env.ANNEX_ORPHAN_MIN_AGE_SECONDS;

beforeAll(async () => {
  stack = await integrationStack('ir');
  enforcer = stackEnforcer(stack);
  runner = await startInstanceRunner({
    stack,
    heartbeatSeconds: 1,
    idleSeconds: IDLE_SECONDS,
    pollMs: 500,
    bootDelayMs: 200,
    env: { ANNEX_SHUTDOWN_SETTLE_SECONDS: '0', ANNEX_API_MAX_TIME: '5' },
    log: (line) => runnerLog.push(line),
  });
  ec2 = new EC2Client(stack.clientConfig('moto'));
  alice = stack.as('alice');
});

afterAll(async () => {
  await runner?.stop();
  await enforcer?.stop();
  await stack?.stop();
  ec2?.destroy();
  if (savedOrphanAge === undefined) delete process.env.ANNEX_ORPHAN_MIN_AGE_SECONDS;
  else process.env.ANNEX_ORPHAN_MIN_AGE_SECONDS = savedOrphanAge;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value (not undefined), for at most `ms`; fails naming `what`. */
async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}\n${runnerLog.join('\n')}`);
    }
    await sleep(250);
  }
}

interface InstanceView {
  instanceId: string;
  state: string;
  bootstrappedAt?: string;
  lastHeartbeatAt?: string;
  agentState?: string;
  claimedSlots?: number;
  totalSlots?: number;
}
interface Detail {
  annex: { expiresAt: string; runningCount?: number };
  instances: InstanceView[];
  events: { type: string; detail?: { instanceIds?: string[]; tokenIds?: string[] } }[];
}

const detail = async (name: string): Promise<Detail> => {
  const res = await alice.request<Detail>('GET', `/v1/annexes/${name}`);
  expect(res.status).toBe(200);
  return res.body;
};

const ec2State = async (instanceId: string) => {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return out.Reservations?.[0]?.Instances?.[0]?.State?.Name;
};

/** AnnexExpiresAt in the HTCondor configuration annex-boot wrote into the instance's root. */
const condorExpiry = (root: string): number | undefined => {
  const path = join(root, 'etc/condor/config.d/50-annex.conf');
  if (!existsSync(path)) return undefined;
  const m = /^AnnexExpiresAt = (\d+)$/m.exec(readFileSync(path, 'utf8'));
  return m?.[1] === undefined ? undefined : Number(m[1]);
};

const epoch = (iso: string) => Math.floor(Date.parse(iso) / 1000);

describe('instances of the local stack', () => {
  it('boot, join with heartbeats, hear of an extension, and end by idle shutdown', async () => {
    // Prepare: an annex of one instance.
    const name = `run${randomBytes(3).toString('hex')}`;
    const created = await alice.request(
      'POST',
      '/v1/annexes',
      { name, count: 1, instanceTypes: ['m5.large'], durationSeconds: 3600, idleSeconds: 600 },
      { 'Idempotency-Key': `${name}-1` },
    );
    expect(created.status).toBe(201);

    // Assess: the real annex-boot bootstrapped it through the API.
    const booted = await waitFor('bootstrappedAt', 30_000, async () => {
      const i = (await detail(name)).instances[0];
      return i?.bootstrappedAt === undefined ? undefined : i;
    });
    const { instanceId } = booted;
    const emulated = runner.instance(instanceId);
    expect(emulated?.annexName).toBe(name);
    const root = emulated?.root ?? '';
    const { annex } = await detail(name);
    // The answer reached the instance: annex-boot wrote HTCondor's configuration with the lease.
    expect(await waitFor('the HTCondor configuration', 10_000, async () => condorExpiry(root))).toBe(
      epoch(annex.expiresAt),
    );
    expect(existsSync(join(root, 'etc/condor/passwords.d/POOL'))).toBe(true);

    // The agent heartbeats: joined, the stand-in's slots all unclaimed.
    const joined = await waitFor('a joined heartbeat', 20_000, async () => {
      const i = (await detail(name)).instances.find((x) => x.instanceId === instanceId);
      return i?.agentState === 'joined' && i.lastHeartbeatAt !== undefined ? i : undefined;
    });
    expect(joined).toMatchObject({ claimedSlots: 0, totalSlots: 2 });
    await waitFor('the runner to see it joined', 5_000, async () =>
      runner.instance(instanceId)?.phase === 'joined' ? true : undefined,
    );
    const firstHeartbeat = joined.lastHeartbeatAt ?? '';
    await waitFor('a later heartbeat', 10_000, async () => {
      const i = (await detail(name)).instances.find((x) => x.instanceId === instanceId);
      return i?.lastHeartbeatAt !== undefined && i.lastHeartbeatAt > firstHeartbeat ? true : undefined;
    });

    // Act: extend the lease.
    const extended = await alice.request<{ annex: { expiresAt: string } }>(
      'POST',
      `/v1/annexes/${name}/extend`,
      { durationSeconds: 7200 },
    );
    expect(extended.status).toBe(200);
    const newExpiry = epoch(extended.body.annex.expiresAt);
    expect(newExpiry).toBeGreaterThan(epoch(annex.expiresAt));

    // Assess: the next heartbeat answer carries it; HTCondor's configuration follows, reconfigured.
    await waitFor('AnnexExpiresAt to follow the extension', 10_000, async () =>
      condorExpiry(root) === newExpiry ? true : undefined,
    );
    const lease = JSON.parse(readFileSync(join(root, 'var/lib/annex/lease.json'), 'utf8')) as {
      expiresAt: string;
    };
    expect(epoch(lease.expiresAt)).toBe(newExpiry);
    await waitFor('condor_reconfig', 5_000, async () =>
      runnerLog.some((l) => l.includes(instanceId) && l.includes('condor_reconfig: done')) ? true : undefined,
    );

    // Assess: no claim for IDLE_SECONDS → the startd and master exit → power-off → terminated.
    const terminated = await waitFor(
      'idle shutdown to terminate it in moto',
      (IDLE_SECONDS + 20) * 1000,
      async () => ((await ec2State(instanceId)) === 'terminated' ? true : undefined),
    );
    expect(terminated).toBe(true);
    expect(runner.instance(instanceId)?.powerOffReason).toContain('STARTD_NOCLAIM_SHUTDOWN');
    await waitFor('its processes to stop', 10_000, async () =>
      runner.instance(instanceId)?.phase === 'terminated' ? true : undefined,
    );

    // The annex reflects it once the sweep has looked at EC2 (every minute on AWS; run here).
    process.env.ANNEX_ORPHAN_MIN_AGE_SECONDS = '1';
    const after = await waitFor('the sweep to record the instance gone', 20_000, async () => {
      await enforcer.runRateFunctions();
      const d = await detail(name);
      return d.instances.find((x) => x.instanceId === instanceId)?.state === 'terminated' ? d : undefined;
    });
    expect(after.annex.runningCount).toBe(0);
    expect(after.events.some((e) => e.detail?.instanceIds?.includes(instanceId))).toBe(true);

    // The lifecycle as `npm run dev` prints it.
    const lines = runnerLog.filter((l) => l.startsWith(instanceId));
    for (const step of ['booted', 'joined: first heartbeat', 'lease now ends at', 'shutdown: powered off'])
      expect(
        lines.some((l) => l.includes(step)),
        step,
      ).toBe(true);
  }, 120_000);

  it('gives an IDTOKENS instance its own token, never the key, and renews it within one heartbeat of an extension', async () => {
    // Prepare: a private IDTOKENS pool of alice's, and an annex of one instance in it.
    const key = `annex-it-${randomBytes(16).toString('hex')}`;
    const pool = `tok${randomBytes(3).toString('hex')}`;
    const registered = await alice.request('PUT', `/v1/pools/${pool}`, {
      collectorHost: '127.0.0.1',
      collectorPort: 9618,
      trustDomain: 'pool.test',
      credential: { type: 'idtokens-signing-key', value: key },
    });
    expect(registered.status).toBe(200);
    const name = `tok${randomBytes(3).toString('hex')}`;
    const created = await alice.request(
      'POST',
      '/v1/annexes',
      { name, pool, count: 1, instanceTypes: ['m5.large'], durationSeconds: 3600 },
      { 'Idempotency-Key': `${name}-1` },
    );
    expect(created.status).toBe(201);
    // Quick, before the runner's idle shutdown (IDLE_SECONDS) ends the instance: no wait for joined.
    const instanceId = await waitFor('a bootstrapped instance', 30_000, async () => {
      const i = (await detail(name)).instances[0];
      return i?.bootstrappedAt === undefined ? undefined : i.instanceId;
    });
    const root = runner.instance(instanceId)?.root ?? '';
    const tokenFile = join(root, 'etc/condor/tokens.d/annex');
    const standIn = join(root, '..', 'condor', 'token');
    const claimsOf = () => verifyToken(readFileSync(tokenFile, 'utf8'), Buffer.from(key))?.claims;
    await waitFor('the stand-in to read the token', 15_000, async () =>
      existsSync(standIn) ? true : undefined,
    );

    // Assess: no copy of the key anywhere on the instance, clear or scrambled as HTCondor stores it.
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
      );
    const scrambled = condorScramble(Buffer.from(key));
    for (const file of files(root)) {
      const bytes = readFileSync(file);
      expect(bytes.includes(Buffer.from(key)), file).toBe(false);
      expect(bytes.includes(scrambled), file).toBe(false);
    }
    expect(existsSync(join(root, 'etc/condor/passwords.d/POOL'))).toBe(false);
    // Its own token, root-only, verifying under HTCondor's derivation with an execute point's claims.
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const { annex } = await detail(name);
    const first = claimsOf();
    expect(first).toMatchObject({
      iss: 'pool.test',
      sub: `annex-${instanceId}@pool.test`,
      exp: epoch(annex.expiresAt) + TOKEN_GRACE_SECONDS,
      scope: 'condor:/READ condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER',
    });
    // The HTCondor stand-in read it from SEC_TOKEN_SYSTEM_DIRECTORY.
    expect(readFileSync(standIn, 'utf8')).toContain(`jti=${String(first?.jti)}`);

    // Act: extend the lease.
    const heartbeatsBefore = runner.instance(instanceId)?.heartbeats ?? 0;
    const extended = await alice.request<{ annex: { expiresAt: string } }>(
      'POST',
      `/v1/annexes/${name}/extend`,
      { durationSeconds: 7200 },
    );
    expect(extended.status).toBe(200);
    const newExp = epoch(extended.body.annex.expiresAt) + TOKEN_GRACE_SECONDS;

    // Assess: the next heartbeat brings a renewed token; annex-agent installs it and HTCondor re-reads it.
    const renewed = await waitFor('the renewed token', 20_000, async () =>
      claimsOf()?.exp === newExp ? claimsOf() : undefined,
    );
    expect((runner.instance(instanceId)?.heartbeats ?? 0) - heartbeatsBefore).toBeLessThanOrEqual(2);
    expect(renewed?.jti).not.toBe(first?.jti);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    await waitFor('the stand-in to use the renewed token', 10_000, async () =>
      readFileSync(standIn, 'utf8').includes(`jti=${String(renewed?.jti)}`) ? true : undefined,
    );

    // Ending the annex lists both jtis, for SEC_TOKEN_REVOCATION_EXPR.
    expect((await alice.request('DELETE', `/v1/annexes/${name}`)).status).toBe(202);
    const ended = await detail(name);
    expect(ended.events.find((e) => e.type === 'terminated')?.detail?.tokenIds).toEqual([
      first?.jti,
      renewed?.jti,
    ]);
  }, 90_000);

  it('stops an instance the control plane terminated (annex deleted)', async () => {
    // Prepare: a joined instance.
    const name = `del${randomBytes(3).toString('hex')}`;
    const created = await alice.request(
      'POST',
      '/v1/annexes',
      { name, count: 1, instanceTypes: ['m5.large'], durationSeconds: 3600 },
      { 'Idempotency-Key': `${name}-1` },
    );
    expect(created.status).toBe(201);
    const instanceId = await waitFor('a joined instance', 30_000, async () => {
      const i = (await detail(name)).instances[0];
      return i?.agentState === 'joined' ? i.instanceId : undefined;
    });

    // Act: end the annex now.
    expect((await alice.request('DELETE', `/v1/annexes/${name}`)).status).toBe(202);

    // Assess: terminated in moto, and the runner has stopped everything the instance ran.
    expect(await ec2State(instanceId)).toBe('terminated');
    await waitFor('its processes to stop', 15_000, async () =>
      runner.instance(instanceId)?.phase === 'terminated' ? true : undefined,
    );
  }, 60_000);
});
