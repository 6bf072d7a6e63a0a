// Setup file of the integration project: records the AWS calls of every function invocation in
// this test process (test/support/iam/recorder.ts) into this run's recording.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, expect, inject } from 'vitest';
import { repoRoot } from '../../../scripts/devstack/serverless-config.ts';
import { recordAwsCalls } from './recorder.ts';
import { currentRun, filesList, recordingDir } from './recording.ts';

const run = currentRun();
if (run !== undefined) {
  const testFile = (): string | undefined => {
    const path = expect.getState().testPath;
    return path === undefined ? undefined : relative(repoRoot, path);
  };
  mkdirSync(recordingDir(run), { recursive: true });
  recordAwsCalls({
    file: join(recordingDir(run), `${process.pid}.jsonl`),
    motoEndpoint: inject('motoEndpoint'),
    region: 'us-east-1',
    testFile,
  });
  beforeAll(() => {
    appendFileSync(filesList(run), `${testFile() ?? 'unknown'}\n`);
  });
}
