/**
 * annex off NAME: `condor_off -master -annex NAME`, as condor_annex's off did. The annex's
 * daemons shut down and the instances end themselves; the lease is not touched.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Context } from '../context.ts';
import { CliError } from '../errors.ts';

/** The first executable `command` on PATH. */
export const findOnPath = (command: string, path: string | undefined): string | undefined => {
  for (const dir of (path ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
};

export const run = async (ctx: Context): Promise<number> => {
  const name = ctx.name;
  const condorOff = findOnPath('condor_off', ctx.io.env.PATH);
  if (condorOff === undefined) {
    throw new CliError('condor_off is not on PATH: annex off needs HTCondor’s tools', {
      code: 'NoCondorTools',
      hint: `run it where HTCondor is installed, or end the annex with annex terminate ${name}`,
    });
  }
  const args = ['-master', '-annex', name];
  const capture = ctx.out.json;
  const child = spawn(condorOff, args, {
    stdio: capture ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    env: { ...ctx.io.env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
  ctx.out.data({ name, command: ['condor_off', ...args], exitCode, stdout, stderr });
  if (exitCode !== 0) {
    throw new CliError(`condor_off -master -annex ${name} failed (exit ${exitCode})`, {
      code: 'CondorOffFailed',
      hint: 'see its output above; check the pool with condor_status -annex ' + name,
    });
  }
  return 0;
};
