/**
 * Where a test run records the AWS calls its functions make: `.annex/iam-calls/<run>/`, one JSONL
 * file per test process and `files.txt`, the test files that ran with the recorder. The run id is
 * fixed once per `vitest` invocation (vitest.config.ts sets ANNEX_IAM_RUN for every worker), so the
 * evaluation reads this run's calls only.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../../scripts/devstack/serverless-config.ts';
import type { RecordedCall } from './recorder.ts';

export const recordingRoot = join(repoRoot, '.annex', 'iam-calls');

export const currentRun = (): string | undefined => process.env.ANNEX_IAM_RUN;

export const recordingDir = (run: string): string => join(recordingRoot, run);

export const filesList = (run: string): string => join(recordingDir(run), 'files.txt');

/** This run's recording: the calls and the test files that ran; undefined when none ran. */
export function readRecording(run: string): { calls: RecordedCall[]; testFiles: Set<string> } | undefined {
  const dir = recordingDir(run);
  if (!existsSync(filesList(run))) return undefined;
  const calls = readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) =>
      readFileSync(join(dir, f), 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as RecordedCall),
    );
  const testFiles = new Set(
    readFileSync(filesList(run), 'utf8')
      .split('\n')
      .filter((line) => line !== ''),
  );
  return { calls, testFiles };
}
