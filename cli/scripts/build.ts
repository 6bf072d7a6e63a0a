// Builds cli/dist with esbuild: src/bin.ts → dist/annex.js plus one chunk per lazily loaded part
// (code splitting), so `annex --help` loads only the small entry chunk. Dependencies stay external
// (installed from the registry with the package); the package's version is compiled in.
import { build } from 'esbuild';
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const cliRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const cliBinary = join(cliRoot, 'dist', 'annex.js');
/** What npm links as `annex`: a small stub that imports the built program. */
export const cliCommand = join(cliRoot, 'bin', 'annex.js');

export async function buildCli(): Promise<string> {
  const { version } = JSON.parse(readFileSync(join(cliRoot, 'package.json'), 'utf8')) as { version: string };
  const outdir = join(cliRoot, 'dist');
  rmSync(outdir, { recursive: true, force: true });
  await build({
    absWorkingDir: cliRoot,
    entryPoints: { annex: 'src/bin.ts' },
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    chunkNames: 'chunks/[name]-[hash]',
    define: { ANNEX_VERSION: JSON.stringify(version) },
    legalComments: 'none',
    logLevel: 'warning',
  });
  chmodSync(cliBinary, 0o755);
  return cliBinary;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = await buildCli();
  console.error(`built ${out}`);
}
