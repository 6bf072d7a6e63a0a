#!/usr/bin/env node
// The `annex` command. The program is built from src/ into dist/ (npm run build -w @annex/cli, or
// npm pack); this file exists in the repository so that npm links the command even before a build.
/* global process */
try {
  await import('../dist/annex.js');
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('dist/annex.js')) throw e;
  process.stderr.write('annex: Unbuilt: the CLI is not built yet (hint: npm run build -w @annex/cli)\n');
  process.exitCode = 1;
}
