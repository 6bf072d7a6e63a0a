// The first hour of a newcomer: on a fresh clone (no cli/dist, no .annex), `npm run dev`, then every
// `npx annex …`, `npm run dev:…` and `curl …` line that it prints, and every such line of the
// README outside "Deploying for real" (which needs an AWS account), run as printed and succeed
// against the local stack. The lines are parsed from the output and the README, never copied here.
//
// The clone is this checkout's working tree as `git ls-files` has it (tracked and new files, the
// state a fresh clone of it would have), with this checkout's installed packages and Python venv
// linked in rather than installed again (npm ci and pip would need minutes and the registries).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/devstack/emulators.ts';
import { repoRoot } from '../../scripts/devstack/serverless-config.ts';

/** The command lines a reader is told to run: shell lines joined over `\` and without comments. */
const commandLines = (text: string): string[] => {
  const joined = text.replace(/\\\n\s*/g, '');
  return joined
    .split('\n')
    .map((line) => line.trim().replace(/\s+#\s.*$/, ''))
    .filter((line) => /^(source |npx annex |npm run dev:|curl )/.test(line));
};

/** The README's sh blocks, outside the section that deploys to AWS. */
const readmeBlocks = (readme: string): string => {
  const sections = readme.split(/^(?=## )/m).filter((s) => !s.startsWith('## Deploying for real'));
  return [...sections.join('').matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1]).join('\n');
};

const makeClone = (): string => {
  const clone = join(mkdtempSync(join(tmpdir(), 'annex-clone-')), 'annex');
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`);
  for (const file of listed.stdout.split('\0').filter((f) => f !== '')) {
    const from = join(repoRoot, file);
    if (!existsSync(from)) continue;
    mkdirSync(dirname(join(clone, file)), { recursive: true });
    cpSync(from, join(clone, file), { preserveTimestamps: true });
  }
  // What `npm ci` would install, minus its `prepare` build: the packages by link, the workspace
  // link and the bin links pointing into the clone itself.
  const modules = join(repoRoot, 'node_modules');
  mkdirSync(join(clone, 'node_modules', '@annex'), { recursive: true });
  for (const entry of readdirSync(modules)) {
    if (entry === '@annex' || entry === '.bin') continue;
    if (entry === '.package-lock.json') {
      cpSync(join(modules, entry), join(clone, 'node_modules', entry), { preserveTimestamps: true });
      continue;
    }
    symlinkSync(join(modules, entry), join(clone, 'node_modules', entry));
  }
  symlinkSync('../../cli', join(clone, 'node_modules', '@annex', 'cli'));
  cpSync(join(modules, '.bin'), join(clone, 'node_modules', '.bin'), {
    recursive: true,
    verbatimSymlinks: true,
  });
  if (existsSync(join(repoRoot, 'cli', 'node_modules')))
    symlinkSync(join(repoRoot, 'cli', 'node_modules'), join(clone, 'cli', 'node_modules'));
  symlinkSync(join(repoRoot, '.venv'), join(clone, '.venv'));
  return clone;
};

/** Reads `annex list --json` on stdin, prints the names of the live annexes. */
const liveNames =
  'for (const a of JSON.parse(require("fs").readFileSync(0, "utf8")).annexes) ' +
  'if (!["TERMINATED", "FAILED"].includes(a.state)) console.log(a.name)';

interface Ran {
  line: string;
  code: number | null;
  output: string;
}

describe('a fresh clone: npm run dev, then every command it and the README print', () => {
  let clone: string;
  let home: string;
  let dev: ChildProcess | undefined;
  let printed = '';
  let devLog = '';
  const env = (): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH ?? '',
    HOME: home,
    AWS_CONFIG_FILE: join(home, 'aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    npm_config_update_notifier: 'false',
  });

  /** Runs a line in bash in the clone, after the `source`/`export` lines read before it. */
  const runLine = (line: string, state: string[]): Promise<Ran> =>
    new Promise((resolve) => {
      const child = spawn('bash', ['-c', [...state, line].join('\n')], {
        cwd: clone,
        env: env(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ line, code, output });
      });
    });

  const runAll = async (lines: string[]): Promise<Ran[]> => {
    const state: string[] = ['set -euo pipefail'];
    const ran: Ran[] = [];
    for (const line of lines) {
      if (/^(source|export) /.test(line)) {
        state.push(line);
        continue;
      }
      ran.push(await runLine(line, state));
    }
    return ran;
  };

  beforeAll(async () => {
    clone = makeClone();
    home = mkdtempSync(join(tmpdir(), 'annex-first-hour-home-'));
    expect(existsSync(join(clone, 'cli', 'dist'))).toBe(false);
    const [api, dynamo, moto] = [await freePort(), await freePort(), await freePort()];
    dev = spawn('npm', ['run', 'dev'], {
      cwd: clone,
      env: {
        ...env(),
        ANNEX_DEV_API_PORT: String(api),
        ANNEX_DEV_DYNAMODB_PORT: String(dynamo),
        ANNEX_DEV_MOTO_PORT: String(moto),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    dev.stderr?.on('data', (d: Buffer) => (devLog += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`npm run dev did not come up:\n${devLog}`)), 120_000);
      dev?.stdout?.on('data', (d: Buffer) => {
        printed += d.toString();
        if (printed.includes('Ctrl-C stops everything.')) {
          clearTimeout(timer);
          resolve();
        }
      });
      dev?.once('exit', (code) => reject(new Error(`npm run dev exited ${code}:\n${devLog}`)));
    });
  }, 150_000);

  afterAll(async () => {
    if (dev?.pid !== undefined && dev.exitCode === null) {
      const exited = new Promise((resolve) => dev?.once('exit', resolve));
      process.kill(-dev.pid, 'SIGINT');
      await exited;
    }
    rmSync(dirname(clone), { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }, 60_000);

  it('runs every line npm run dev printed, then every line of the README, each exiting 0', async () => {
    const readmeLines = commandLines(readmeBlocks(readFileSync(join(clone, 'README.md'), 'utf8')));
    const printedLines = commandLines(printed.slice(printed.indexOf('In another terminal:')));
    expect(readmeLines.filter((l) => l.startsWith('npx annex')).length).toBeGreaterThan(0);
    expect(printedLines.filter((l) => l.startsWith('curl')).length).toBeGreaterThan(0);
    expect(printedLines.filter((l) => l.startsWith('npm run dev:')).length).toBeGreaterThan(0);
    expect(existsSync(join(clone, 'cli', 'dist', 'annex.js'))).toBe(true);

    const fromDev = await runAll(printedLines);
    // The two lists reuse names (ToddsGPU, demo2): end what the printed lines left running.
    const ended = await runAll([
      'source .annex/dev.env',
      `for name in $(npx annex list --json | node -e '${liveNames}'); do npx annex terminate "$name" --yes; done`,
    ]);
    // A line the README shares with the printout has run once already.
    const fromReadme = await runAll(
      readmeLines.filter((l) => l.startsWith('source ') || !printedLines.includes(l)),
    );
    const help = await runLine('npx annex --help', []);

    for (const ran of [...fromDev, ...ended, ...fromReadme, help])
      expect({ line: ran.line, code: ran.code, output: ran.code === 0 ? '' : ran.output }).toEqual({
        line: ran.line,
        code: 0,
        output: '',
      });
  }, 600_000);
});
