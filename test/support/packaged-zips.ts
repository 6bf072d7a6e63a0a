/**
 * Runs a function from its packaged zip (`npm run package`) as the Lambda Node.js runtime would:
 * the zip unpacked into a task root of its own, a fresh `node` process per invocation whose only
 * environment is the function's `Environment` from the template plus what the runtime sets
 * (AWS_LAMBDA_FUNCTION_NAME, LAMBDA_TASK_ROOT, AWS_REGION, credentials, ...) and the emulator
 * endpoints; the handler is the template's `Handler` (`<module>.<export>`, the module resolved
 * as `.js`, `.mjs` or `.cjs`, in the runtime's order) and gets the event and a Lambda context.
 * Nothing from this repository's node_modules is reachable from the task root.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageDir } from './package.ts';
import type { FunctionModel } from './iam/template.ts';

/** The runtime's side of one invocation: load the handler, call it, write what it returned. */
const BOOTSTRAP = `
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const [taskRoot, handlerSpec, eventFile, resultFile] = process.argv.slice(2);
const dot = handlerSpec.lastIndexOf('.');
const base = join(taskRoot, handlerSpec.slice(0, dot));
const file = ['.js', '.mjs', '.cjs'].map((ext) => base + ext).find((f) => existsSync(f));
if (file === undefined) throw new Error('Runtime.ImportModuleError: Cannot find module ' + base);
const module = await import(pathToFileURL(file).href);
const handler = module[handlerSpec.slice(dot + 1)];
if (typeof handler !== 'function') throw new Error('Runtime.HandlerNotFound: ' + handlerSpec + ' is undefined or not exported');
const { event, context: fields } = JSON.parse(readFileSync(eventFile, 'utf8'));
const unsupported = (name) => () => { throw new Error('context.' + name + '() is not supported here'); };
const context = {
  ...fields,
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => Math.max(0, fields.deadlineMs - Date.now()),
  done: unsupported('done'), fail: unsupported('fail'), succeed: unsupported('succeed'),
};
try {
  const result = await handler(event, context);
  writeFileSync(resultFile, JSON.stringify({ ok: true, result: result ?? null }));
} catch (e) {
  writeFileSync(resultFile, JSON.stringify({ ok: false, errorType: e?.name, errorMessage: e?.message }));
}
`;

export interface ZipInvocation {
  ok: boolean;
  result?: unknown;
  errorType?: string;
  errorMessage?: string;
  /** What the function printed (its logs). */
  output: string;
}

export interface ZipRuntime {
  /** Invokes the function's packaged handler once in a fresh process. */
  invoke(fn: FunctionModel, event: unknown, context?: { awsRequestId?: string }): Promise<ZipInvocation>;
  /** The directory the function's zip was unpacked into (its LAMBDA_TASK_ROOT). */
  taskRoot(fn: FunctionModel): string;
  stop(): void;
}

export interface ZipRuntimeOptions {
  /** Environment on top of the function's own, for the emulators (endpoints, credentials). */
  environment: Record<string, string>;
  /** Template settings that were empty at package time, as a deployer would have set them. */
  deploySettings?: Record<string, string>;
  region: string;
  /** Where the zips are (default: the package, .serverless). */
  zipDir?: string;
}

export function startZipRuntime(options: ZipRuntimeOptions): ZipRuntime {
  const root = mkdtempSync(join(tmpdir(), 'annex-zips-'));
  const bootstrap = join(root, 'bootstrap.mjs');
  writeFileSync(bootstrap, BOOTSTRAP);
  const roots = new Map<string, string>();
  let invocations = 0;

  const taskRoot = (fn: FunctionModel): string => {
    let dir = roots.get(fn.key);
    if (dir === undefined) {
      dir = join(root, 'task', fn.key);
      // Python's zipfile (the venv's interpreter is a project requirement): no unzip tool needed.
      execFileSync('python3', ['-m', 'zipfile', '-e', join(options.zipDir ?? packageDir, fn.zipFile), dir]);
      roots.set(fn.key, dir);
    }
    return dir;
  };

  const environment = (fn: FunctionModel, dir: string): Record<string, string> => {
    const own = Object.fromEntries(
      Object.entries(fn.environment).map(([k, v]) => [k, v === '' ? (options.deploySettings?.[k] ?? v) : v]),
    );
    return {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      LAMBDA_TASK_ROOT: dir,
      LAMBDA_RUNTIME_DIR: root,
      AWS_EXECUTION_ENV: `AWS_Lambda_${fn.runtime}`,
      AWS_LAMBDA_FUNCTION_NAME: fn.functionName,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memorySize),
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${fn.functionName}`,
      AWS_LAMBDA_LOG_STREAM_NAME: '2026/12/02/[$LATEST]0123456789abcdef',
      AWS_REGION: options.region,
      AWS_DEFAULT_REGION: options.region,
      // No shared config or credentials file of this machine's user may leak in.
      AWS_CONFIG_FILE: join(root, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(root, 'no-aws-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      ...own,
      ...options.environment,
    };
  };

  const invoke: ZipRuntime['invoke'] = async (fn, event, context = {}) => {
    const dir = taskRoot(fn);
    const n = invocations++;
    const eventFile = join(root, `event-${n}.json`);
    const resultFile = join(root, `result-${n}.json`);
    writeFileSync(
      eventFile,
      JSON.stringify({
        event,
        context: {
          functionName: fn.functionName,
          functionVersion: '$LATEST',
          invokedFunctionArn: `arn:aws:lambda:${options.region}:123456789012:function:${fn.functionName}`,
          memoryLimitInMB: String(fn.memorySize),
          awsRequestId: context.awsRequestId ?? `zip-${n}`,
          logGroupName: `/aws/lambda/${fn.functionName}`,
          logStreamName: '2026/12/02/[$LATEST]0123456789abcdef',
          deadlineMs: Date.now() + fn.timeout * 1000,
        },
      }),
    );
    const child = spawn(process.execPath, [bootstrap, dir, fn.handler, eventFile, resultFile], {
      cwd: dir,
      env: environment(fn, dir),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), fn.timeout * 1000 + 5_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    try {
      return { ...(JSON.parse(readFileSync(resultFile, 'utf8')) as Omit<ZipInvocation, 'output'>), output };
    } catch {
      return { ok: false, errorType: 'Runtime.ExitError', errorMessage: `exit ${String(code)}`, output };
    }
  };

  return { invoke, taskRoot, stop: () => rmSync(root, { recursive: true, force: true }) };
}
