// Runs the real `annex` binary (cli/bin/annex.js → cli/dist, built once per file) against a local
// stack in this process. Every child gets an environment built from scratch: the dev user's keys,
// ANNEX_API_URL, and AWS_ENDPOINT_URL pointing at moto (which the CLI must ignore); HOME and the AWS
// config files point into a temporary directory, and the instance metadata service is off, so no
// credential or request can come from or go to anywhere but 127.0.0.1.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCli, cliCommand } from '../../cli/scripts/build.ts';
import type { LocalStack } from '../../scripts/devstack/stack.ts';

export const annexBin = cliCommand;

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface Cli {
  home: string;
  /** The environment a user of the local stack has after `source .annex/dev.env`. */
  env: Record<string, string>;
  run(
    args: string[],
    options?: { env?: Record<string, string | undefined>; input?: string; timeoutMs?: number },
  ): Promise<Run>;
  /** Runs with --json and parses stdout. */
  json<T = Record<string, unknown>>(
    args: string[],
    options?: { env?: Record<string, string | undefined>; input?: string; timeoutMs?: number },
  ): Promise<{ run: Run; body: T }>;
}

export const buildOnce = (() => {
  let built: Promise<string> | undefined;
  return () => (built ??= buildCli());
})();

export const cliFor = (stack: LocalStack, userName = 'alice'): Cli => {
  const user = stack.users.find((u) => u.name === userName);
  if (user === undefined) throw new Error(`no dev user ${userName}`);
  const home = mkdtempSync(join(tmpdir(), 'annex-e2e-'));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: home,
    ANNEX_CONFIG_FILE: join(home, 'annex-config.json'),
    AWS_CONFIG_FILE: join(home, 'aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ANNEX_API_URL: stack.apiUrl,
    AWS_ENDPOINT_URL: stack.motoEndpoint,
    AWS_REGION: stack.region,
    AWS_ACCESS_KEY_ID: user.accessKeyId,
    AWS_SECRET_ACCESS_KEY: user.secretAccessKey,
  };
  const run: Cli['run'] = (args, options = {}) =>
    new Promise((resolve, reject) => {
      const childEnv: Record<string, string> = { ...env };
      for (const [k, v] of Object.entries(options.env ?? {})) {
        if (v === undefined) delete childEnv[k];
        else childEnv[k] = v;
      }
      const started = Date.now();
      // Asynchronous on purpose: the API answering this child runs in this very process.
      const child = spawn(process.execPath, [annexBin, ...args], { env: childEnv, stdio: 'pipe' });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr, ms: Date.now() - started });
      });
      child.stdin.end(options.input ?? '');
    });
  return {
    home,
    env,
    run,
    async json(args, options) {
      const result = await run([...args, '--json'], options);
      try {
        return { run: result, body: JSON.parse(result.stdout) };
      } catch {
        throw new Error(
          `annex ${args.join(' ')} printed no JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`,
        );
      }
    },
  };
};

/** The lines of an error output: every failure is exactly one. */
export const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');
