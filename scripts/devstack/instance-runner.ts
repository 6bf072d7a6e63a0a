// Makes the local stack's EC2 instances do what an annex instance does on AWS. moto only records
// instances; this runner watches it for the stage's running instances and, for each new one,
// plays the instance: a fake IMDSv2 of its own (its instance id, region, public address and the
// instance role's session credentials, whose session name is the instance id), then the real
// image/annex-boot and, once it has joined, the real image/annex-agent and a stand-in for HTCondor
// (scripts/devstack/fake-bin: a startd whose slots stay Unclaimed, so STARTD_NOCLAIM_SHUTDOWN ends it),
// each as a child process in a temporary root (ANNEX_ROOT). Power-off terminates the instance in
// moto, as powering off an instance whose shutdown behaviour is terminate does on AWS; an instance
// terminated in moto (by the control plane) has its processes stopped. Nothing here touches this
// machine's firewall, HTCondor or power: every such command is a stand-in (the firewall's OUTPUT
// chain is a state file in the instance's directory, firewall/iptables.rules).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  DescribeInstancesCommand,
  EC2Client,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { startFakeImds, type FakeImds, type RoleCredentials } from './fake-imds.ts';
import { repoRoot } from './serverless-config.ts';
import type { LocalStack } from './stack.ts';

const IMAGE_DIR = join(repoRoot, 'image');
const FAKE_BIN = join(repoRoot, 'scripts', 'devstack', 'fake-bin');
/** Instance-role sessions last this long (EC2's are about 6 h) and are renewed an hour before. */
const SESSION_MS = 6 * 3600_000;
const RENEW_BEFORE_MS = 3600_000;
/** annex-agent.service: Restart=always, RestartSec=5. */
const AGENT_RESTART_MS = 5000;

export type InstancePhase = 'booting' | 'booted' | 'joined' | 'shutting-down' | 'terminated' | 'failed';

export interface InstanceRunnerOptions {
  stack: Pick<
    LocalStack,
    'apiUrl' | 'region' | 'stage' | 'instanceRoleName' | 'instanceCredentials' | 'clientConfig'
  >;
  /** The agent's heartbeat interval (ANNEX_HEARTBEAT_INTERVAL); default: the API's (60 s). */
  heartbeatSeconds?: number;
  /** Replaces STARTD_NOCLAIM_SHUTDOWN in the HTCondor stand-in (demos, tests); default: the annex's. */
  idleSeconds?: number;
  /** Slots the HTCondor stand-in advertises, all unclaimed; default 2. */
  slots?: number;
  /** How often moto is asked for instances; default 2 s. */
  pollMs?: number;
  /** How long after an instance first shows up it "boots"; default 1 s. */
  bootDelayMs?: number;
  /** Extra settings for the image scripts (ANNEX_SHUTDOWN_SETTLE_SECONDS, …). */
  env?: Record<string, string>;
  /** Where the instances' roots go (one directory each); default a new temporary directory. */
  workDir?: string;
  /** Every line the scripts print, not only the lifecycle. */
  verbose?: boolean;
  log?: (line: string) => void;
}

export interface RunnerInstance {
  instanceId: string;
  annexName: string;
  phase: InstancePhase;
  /** The instance's file system root (ANNEX_ROOT): etc/condor/config.d/50-annex.conf, var/lib/annex. */
  root: string;
  heartbeats: number;
  /** The last heartbeat as the agent logged it: state, slots, idle time and the API's action. */
  lastHeartbeat?: string;
  /** Why it powered off, when it did. */
  powerOffReason?: string;
}

export interface InstanceRunner {
  /** The instances it plays, current and ended (until stop). */
  instances(): RunnerInstance[];
  instance(instanceId: string): RunnerInstance | undefined;
  /** Serve (or, with undefined, stop serving) a spot interruption notice on the instance's IMDS. */
  setSpotAction(instanceId: string, notice: { action: string; time: string } | undefined): void;
  /** One look at moto now (the runner also polls on its own). */
  poll(): Promise<void>;
  workDir: string;
  stop(): Promise<void>;
}

interface Emulated extends RunnerInstance {
  dir: string;
  imds?: FakeImds;
  children: Set<ChildProcess>;
  stopping: boolean;
  lastReported?: string;
  bootTimer?: NodeJS.Timeout;
  restartTimer?: NodeJS.Timeout;
}

const tag = (i: Instance, key: string): string | undefined => i.Tags?.find((t) => t.Key === key)?.Value;

/** The environment of this process without AWS or Annex settings (an instance has neither). */
const cleanEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_') && !k.startsWith('ANNEX_')),
  );

const HEARTBEAT = /heartbeat: (\w+), (\d+)\/(\d+) slots claimed, idle (\d+)s -> (\S+)/;

export async function startInstanceRunner(options: InstanceRunnerOptions): Promise<InstanceRunner> {
  const { stack } = options;
  const log = options.log ?? (() => {});
  const pollMs = options.pollMs ?? 2000;
  const bootDelayMs = options.bootDelayMs ?? 1000;
  const workDir = options.workDir ?? mkdtempSync(join(tmpdir(), 'annex-instances-'));
  const ec2 = new EC2Client(stack.clientConfig('moto'));
  const emulated = new Map<string, Emulated>();
  let stopped = false;

  const say = (e: Pick<Emulated, 'instanceId' | 'annexName'>, line: string) =>
    log(`${e.instanceId} (${e.annexName}) ${line}`);

  // ---- power-off: the stand-ins' way back to the runner ---------------------------------------
  const control = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      if (body.length < 2000) body += chunk;
    });
    req.on('end', () => {
      const m = /^\/instances\/(i-[0-9a-f]+)\/poweroff$/.exec(req.url ?? '');
      const e = m?.[1] === undefined ? undefined : emulated.get(m[1]);
      if (req.method !== 'POST' || e === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(202).end();
      void powerOff(e, body.replace(/[^\x20-\x7e]/g, ' ').slice(0, 300) || 'powered off');
    });
  });
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
  const controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;

  const powerOff = async (e: Emulated, reason: string): Promise<void> => {
    if (e.stopping) return;
    e.stopping = true;
    e.powerOffReason = reason;
    e.phase = 'shutting-down';
    say(e, `shutdown: powered off (${reason}); terminating it in EC2 (shutdown behaviour terminate)`);
    try {
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: [e.instanceId] }));
    } catch (error) {
      say(e, `TerminateInstances failed: ${(error as Error).message}`);
    }
    await halt(e, 'terminated');
  };

  // ---- processes -------------------------------------------------------------------------------
  const killGroup = (child: ChildProcess, signal: NodeJS.Signals) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };

  /** Stops everything the instance runs (each child's own process group, by pid), then its IMDS. */
  const halt = async (e: Emulated, phase: InstancePhase): Promise<void> => {
    e.stopping = true;
    clearTimeout(e.bootTimer);
    clearTimeout(e.restartTimer);
    const children = [...e.children];
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const force = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
            child.once('close', () => {
              clearTimeout(force);
              resolve();
            });
            killGroup(child, 'SIGTERM');
          }),
      ),
    );
    await e.imds?.stop().catch(() => undefined);
    if (e.phase !== 'failed') e.phase = phase;
  };

  const instanceEnv = (e: Emulated): NodeJS.ProcessEnv => {
    const condorDir = join(e.dir, 'condor');
    return {
      ...cleanEnv(),
      PATH: `${FAKE_BIN}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      TMPDIR: join(e.dir, 'tmp'),
      ANNEX_ROOT: e.root,
      ANNEX_IMDS_URL: e.imds?.url ?? '',
      // Absolute paths: no PATH lookup may ever reach this machine's own poweroff or firewall.
      ANNEX_POWEROFF_CMD: `exec '${join(FAKE_BIN, 'poweroff')}'`,
      ANNEX_IPTABLES: join(FAKE_BIN, 'iptables'),
      ANNEX_IP6TABLES: join(FAKE_BIN, 'ip6tables'),
      ANNEX_NFT: join(FAKE_BIN, 'no-nft'),
      // The scripts run unprivileged here: the stand-in firewall keeps OUTPUT in this directory,
      // and the stand-in `id` answers root, as annex-boot is on an instance. annex-lib.sh honours
      // ANNEX_ID only against a fake metadata service, never on EC2.
      ANNEX_DEV_FIREWALL_DIR: join(e.dir, 'firewall'),
      ANNEX_ID: join(FAKE_BIN, 'id-as-root'),
      // condor.service starts after annex-boot.service: the runner starts the stand-in then.
      ANNEX_CONDOR_START: ': >"$ANNEX_DEV_CONDOR_DIR/start-requested"',
      ANNEX_STARTD_HOST: `${e.instanceId}.annex.local`,
      ANNEX_DEV_CONDOR_DIR: condorDir,
      ANNEX_DEV_LIBEXEC: IMAGE_DIR,
      ANNEX_DEV_CONTROL_URL: `${controlUrl}/instances/${e.instanceId}`,
      ANNEX_DEV_SLOTS: String(options.slots ?? 2),
      ...(options.idleSeconds === undefined ? {} : { ANNEX_DEV_IDLE_SECONDS: String(options.idleSeconds) }),
      ...(options.heartbeatSeconds === undefined
        ? {}
        : { ANNEX_HEARTBEAT_INTERVAL: String(options.heartbeatSeconds) }),
      ...options.env,
    };
  };

  /** What a script line means for the instance's lifecycle; the line itself in verbose mode. */
  const onLine = (e: Emulated, line: string) => {
    if (options.verbose === true) say(e, `| ${line}`);
    const hb = HEARTBEAT.exec(line);
    if (hb !== null) {
      const [, state, claimed, total, idle, action] = hb;
      e.heartbeats++;
      e.lastHeartbeat = `${state} ${claimed}/${total} claimed, idle ${idle}s -> ${action}`;
      // Every change of state or answer is a lifecycle line; the same heartbeat again is not.
      const summary = `${state} -> ${action}`;
      const changed = summary !== e.lastReported;
      e.lastReported = summary;
      if (state === 'joined' && e.phase === 'booted') {
        e.phase = 'joined';
        say(e, `joined: first heartbeat seen (${e.lastHeartbeat})`);
      } else if (changed) {
        say(e, `heartbeat: ${e.lastHeartbeat}`);
      }
      return;
    }
    if (options.verbose === true) return;
    if (
      /joined annex |cannot join the annex|lease now ends at|AnnexExpiresAt = |condor_reconfig: |IDTOKEN|shutting down: |powering off: |STARTD_NOCLAIM_SHUTDOWN|condor_master exits|did not re-read|stopped unexpectedly/.test(
        line,
      )
    ) {
      say(e, line.replace(/^\S+Z /, ''));
    }
  };

  const run = (e: Emulated, name: string, command: string[], onExit: (code: number | null) => void) => {
    const [file, ...args] = command;
    if (file === undefined) return;
    const child = spawn(file, args, {
      env: instanceEnv(e),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    e.children.add(child);
    for (const stream of [child.stdout, child.stderr]) {
      if (stream !== null) createInterface({ input: stream }).on('line', (line) => onLine(e, line));
    }
    child.on('error', (error) => say(e, `${name} could not start: ${error.message}`));
    child.on('close', (code) => {
      e.children.delete(child);
      onExit(code);
    });
  };

  const startAgent = (e: Emulated) => {
    if (e.stopping) return;
    run(e, 'annex-agent', ['bash', join(IMAGE_DIR, 'annex-agent')], (code) => {
      if (e.stopping || stopped) return;
      say(e, `annex-agent exited (${code ?? 'signal'}); restarting it in ${AGENT_RESTART_MS / 1000} s`);
      e.restartTimer = setTimeout(() => startAgent(e), AGENT_RESTART_MS);
    });
  };

  const boot = async (e: Emulated, publicIp: string | undefined) => {
    for (const sub of ['root/etc/annex', 'tmp', 'condor', 'firewall'])
      mkdirSync(join(e.dir, sub), { recursive: true });
    // As image/install.sh --api-url bakes it into an image.
    writeFileSync(join(e.root, 'etc/annex/annex.env'), `ANNEX_API_URL=${stack.apiUrl}\n`);
    let session = stack.instanceCredentials(e.instanceId);
    let issuedAt = Date.now();
    const credentials = (): RoleCredentials => {
      if (Date.now() >= issuedAt + SESSION_MS - RENEW_BEFORE_MS) {
        session = stack.instanceCredentials(e.instanceId);
        issuedAt = Date.now();
      }
      return {
        accessKeyId: session.accessKeyId,
        secretAccessKey: session.secretAccessKey,
        sessionToken: session.sessionToken ?? '',
        expiration: new Date(issuedAt + SESSION_MS),
      };
    };
    e.imds = await startFakeImds({
      instanceId: e.instanceId,
      region: stack.region,
      roleName: stack.instanceRoleName,
      credentials,
      ...(publicIp === undefined ? {} : { publicIpv4: publicIp }),
    });
    if (e.stopping) {
      await e.imds.stop();
      return;
    }
    say(e, `booting: annex-boot against its metadata service ${e.imds.url}, root ${e.root}`);
    run(e, 'annex-boot', ['bash', join(IMAGE_DIR, 'annex-boot')], (code) => {
      if (e.stopping || stopped) return;
      if (code !== 0) {
        e.phase = 'failed';
        say(e, `annex-boot failed (exit ${code ?? 'signal'})`);
        return;
      }
      e.phase = 'booted';
      say(e, 'booted: HTCondor (stand-in) and annex-agent starting');
      if (existsSync(join(e.dir, 'condor', 'start-requested'))) {
        run(e, 'condor_master', ['bash', join(FAKE_BIN, 'condor_master')], () => undefined);
      }
      startAgent(e);
    });
  };

  // ---- watching moto ---------------------------------------------------------------------------
  const running = async (): Promise<Instance[]> => {
    const found: Instance[] = [];
    let NextToken: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: 'tag:annex:stage', Values: [stack.stage] },
            { Name: 'instance-state-name', Values: ['pending', 'running'] },
          ],
          NextToken,
        }),
      );
      for (const r of page.Reservations ?? []) found.push(...(r.Instances ?? []));
      NextToken = page.NextToken;
    } while (NextToken !== undefined && NextToken !== '');
    return found;
  };

  let polling: Promise<void> | undefined;
  let lastError = '';
  const poll = (): Promise<void> => {
    polling ??= (async () => {
      try {
        const now = await running();
        lastError = '';
        const ids = new Set<string>();
        for (const i of now) {
          const id = i.InstanceId;
          if (id === undefined || stopped) continue;
          ids.add(id);
          if (emulated.has(id)) continue;
          const dir = join(workDir, id);
          const e: Emulated = {
            instanceId: id,
            annexName: tag(i, 'annex:name') ?? '?',
            phase: 'booting',
            root: join(dir, 'root'),
            dir,
            heartbeats: 0,
            children: new Set(),
            stopping: false,
          };
          emulated.set(id, e);
          say(e, `launched (${i.InstanceType ?? '?'}); booting`);
          e.bootTimer = setTimeout(() => {
            boot(e, i.PublicIpAddress).catch((error: unknown) => {
              e.phase = 'failed';
              say(e, `could not boot: ${(error as Error).message}`);
            });
          }, bootDelayMs);
        }
        for (const e of emulated.values()) {
          if (ids.has(e.instanceId) || e.stopping) continue;
          say(e, 'terminated in EC2; stopping its processes');
          await halt(e, 'terminated');
        }
      } catch (error) {
        const message = (error as Error).message;
        if (message !== lastError) log(`instance runner: could not list instances: ${message}`);
        lastError = message;
      }
    })().finally(() => {
      polling = undefined;
    });
    return polling;
  };

  // Detached process groups outlive this process: should it exit without stop(), end them anyway.
  const killAll = () => {
    for (const e of emulated.values()) for (const child of e.children) killGroup(child, 'SIGKILL');
  };
  process.on('exit', killAll);

  const timer = setInterval(() => void poll(), pollMs);
  void poll();

  const snapshot = (e: Emulated): RunnerInstance => ({
    instanceId: e.instanceId,
    annexName: e.annexName,
    phase: e.phase,
    root: e.root,
    heartbeats: e.heartbeats,
    ...(e.lastHeartbeat === undefined ? {} : { lastHeartbeat: e.lastHeartbeat }),
    ...(e.powerOffReason === undefined ? {} : { powerOffReason: e.powerOffReason }),
  });

  return {
    workDir,
    instances: () => [...emulated.values()].map(snapshot),
    instance: (id) => {
      const e = emulated.get(id);
      return e === undefined ? undefined : snapshot(e);
    },
    setSpotAction: (id, notice) => {
      const imds = emulated.get(id)?.imds;
      if (imds !== undefined) imds.spotAction = notice;
    },
    poll,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      process.off('exit', killAll);
      await polling?.catch(() => undefined);
      await Promise.all([...emulated.values()].map((e) => halt(e, e.phase)));
      control.closeAllConnections();
      await new Promise<void>((resolve) => control.close(() => resolve()));
      ec2.destroy();
      if (options.workDir === undefined) rmSync(workDir, { recursive: true, force: true });
    },
  };
}
