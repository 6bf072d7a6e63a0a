import { defineConfig } from 'vitest/config';

// Two projects: unit tests run in parallel with no emulator; integration tests share one DynamoDB
// Local and one moto server, started once per run by the global setup, and run one file at a time
// (after the unit tests) so a file may reset moto without disturbing another. Each integration
// file creates its own lease table under a unique name (test/integration/local-aws.ts).
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
          globalSetup: ['test/integration/global-setup.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
