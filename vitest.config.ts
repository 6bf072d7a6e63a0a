import { randomUUID } from 'node:crypto';
import { defineConfig } from 'vitest/config';

// One id per run: the integration processes record their functions' AWS calls under it and the
// IAM evaluation reads that run's calls only (test/support/iam/recording.ts).
process.env.ANNEX_IAM_RUN ??= randomUUID();

// Three projects, in order: unit tests run in parallel with no emulator; integration tests share
// one DynamoDB Local and one moto server, started once per run by the global setup, and run one
// file at a time (after the unit tests) so a file may reset moto without disturbing another. Each
// integration file creates its own lease table under a unique name (test/integration/local-aws.ts).
// Last, the IAM evaluation of the packaged template's roles, over the calls the integration and
// e2e suites recorded (test/iam).
export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    env: {
      // Tests run on Node 20; Lambda runs Node 22. The SDK would warn about it in every worker.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // No SDK client may look for credentials on an EC2 metadata endpoint.
      AWS_EC2_METADATA_DISABLED: 'true',
      ANNEX_IAM_RUN: process.env.ANNEX_IAM_RUN,
    },
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/iam/recording-setup.ts', 'test/integration/global-setup.ts'],
          setupFiles: ['test/support/iam/record-setup.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'iam',
          include: ['test/iam/**/*.test.ts'],
          globalSetup: ['test/support/package-setup.ts'],
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
