/**
 * The packaged stack (`npm run package`: the CloudFormation template and one zip per function),
 * built again whenever it is missing or older than what it is built from, so the tests that read
 * it never judge a stale package. CI packages before `npm test`; a fresh `npm test` packages once.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { repoRoot } from '../../scripts/devstack/serverless-config.ts';
import { readTemplate } from './iam/template.ts';

export const packageDir = join(repoRoot, '.serverless');
export const templatePath = join(packageDir, 'cloudformation-template-update-stack.json');

/** What the package is built from. */
const SOURCES = ['serverless.yml', 'package-lock.json', 'tsconfig.json', 'handlers', 'shared', 'scripts/iam'];

const newest = (path: string): number => {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(path).reduce((m, name) => Math.max(m, newest(join(path, name))), stat.mtimeMs);
};

/** The template and every zip it names, or undefined when one is missing. */
const artifacts = (): string[] | undefined => {
  if (!existsSync(templatePath)) return undefined;
  const zips = Object.values(readTemplate(templatePath).Resources)
    .filter((r) => r.Type === 'AWS::Lambda::Function')
    .map((r) =>
      join(packageDir, basename(String((r.Properties?.Code as { S3Key?: string } | undefined)?.S3Key))),
    );
  return zips.every((z) => existsSync(z)) ? [templatePath, ...zips] : undefined;
};

export const packageIsCurrent = (): boolean => {
  const built = artifacts();
  if (built === undefined) return false;
  const builtAt = Math.min(...built.map((p) => statSync(p).mtimeMs));
  return SOURCES.every((s) => !existsSync(join(repoRoot, s)) || newest(join(repoRoot, s)) <= builtAt);
};

/** Runs `npm run package` unless the package is current (synchronously: one at a time). */
export function ensurePackaged(log: (line: string) => void = () => {}): void {
  if (packageIsCurrent()) return;
  log('the package is missing or older than its sources: npm run package');
  execFileSync('npm', ['run', 'package'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  if (!packageIsCurrent()) throw new Error('npm run package did not produce a current package');
}
