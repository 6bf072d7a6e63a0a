// Section 1: bundle size per function. Each function of serverless.yml is bundled with esbuild's
// JS API using the options of `custom.esbuild` (as serverless-esbuild would), and compared with a
// "bare-clients baseline": an entry that imports exactly the AWS SDK names our sources import,
// instantiates the clients and keeps every imported name alive, bundled the same way.
import { build, type BuildOptions, type Metafile } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readServerlessYml, repoRoot } from '../devstack/serverless-config.ts';

export const bundleDir = join(repoRoot, '.bench', 'bundles');

/** Packages whose imports the baseline reproduces. */
const isClientPackage = (pkg: string): boolean =>
  pkg.startsWith('@aws-sdk/client-') || pkg === '@aws-sdk/lib-dynamodb';

/** Scopes that are the AWS SDK (or its runtime) whatever the function imports. */
const isSdkScope = (pkg: string): boolean =>
  pkg.startsWith('@aws-sdk/') ||
  pkg.startsWith('@smithy/') ||
  pkg.startsWith('@aws-crypto/') ||
  pkg.startsWith('@aws/');

export interface FunctionEntry {
  /** The key under `functions` in serverless.yml, e.g. `annexGet`. */
  key: string;
  /** The handler module's base name, e.g. `annex-get` (names the bundle files). */
  name: string;
  /** The serverless.yml handler string, e.g. `handlers/annex-get.handler`. */
  handler: string;
  /** The entry point, relative to the repository root, e.g. `handlers/annex-get.ts`. */
  entry: string;
}

export interface Contributor {
  /** A package name (`zod`, `@middy/core`) or a project source file (`shared/http/api.ts`). */
  name: string;
  bytes: number;
  /** For packages: the largest parts inside it (first two path components), largest first. */
  parts: { name: string; bytes: number; files: number }[];
}

export interface BundleResult {
  fn: FunctionEntry;
  file: string;
  bytes: number;
  baselineFile: string;
  baselineEntryFile: string;
  baselineBytes: number;
  ratio: number;
  /** `@aws-sdk/client-*` and `@aws-sdk/lib-dynamodb` packages in the bundle, with their own bytes. */
  clients: { pkg: string; bytes: number }[];
  includesEc2: boolean;
  /** What the baseline imports: package → names. */
  sdkImports: Record<string, string[]>;
  /** Bundle bytes from the SDK (scopes above, or any package the baseline also contains). */
  sdkBytes: number;
  /** Baseline bytes from the same classification (its whole content, bar its own entry). */
  baselineSdkBytes: number;
  /** Bundle bytes from everything else: our sources, zod, middy, ... */
  nonSdkBytes: number;
  nonSdk: Contributor[];
}

export interface BundleSection {
  options: BuildOptions;
  /** custom.esbuild keys that are serverless-esbuild settings rather than esbuild options. */
  ignoredKeys: string[];
  results: BundleResult[];
}

// ---------------------------------------------------------------------------------------------
// serverless.yml

const asRecord = (value: unknown, what: string): Record<string, unknown> => {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`serverless.yml: ${what} is not a mapping`);
  }
  return value as Record<string, unknown>;
};

export function readFunctions(): FunctionEntry[] {
  const config = asRecord(readServerlessYml(), 'the document');
  const functions = asRecord(config.functions, 'functions');
  const entries = Object.entries(functions).map(([key, value]) => {
    const handler = asRecord(value, `functions.${key}`).handler;
    if (typeof handler !== 'string' || !handler.includes('.')) {
      throw new Error(`serverless.yml: functions.${key}.handler is not a "module.export" string`);
    }
    const module = handler.slice(0, handler.lastIndexOf('.'));
    return { key, name: basename(module), handler, entry: `${module}.ts` };
  });
  // Two functions on one module would overwrite each other's bundle: name those by key instead.
  const counts = new Map<string, number>();
  for (const e of entries) counts.set(e.name, (counts.get(e.name) ?? 0) + 1);
  return entries.map((e) => ((counts.get(e.name) ?? 0) > 1 ? { ...e, name: e.key } : e));
}

/** esbuild options from `custom.esbuild`, keeping only keys esbuild's JS API understands. */
export function esbuildOptionsFromServerless(): { options: BuildOptions; ignoredKeys: string[] } {
  const config = asRecord(readServerlessYml(), 'the document');
  const custom = asRecord(config.custom, 'custom');
  const raw = asRecord(custom.esbuild, 'custom.esbuild');
  const passThrough = [
    'bundle',
    'minify',
    'sourcemap',
    'format',
    'platform',
    'target',
    'mainFields',
    'banner',
    'footer',
    'external',
    'define',
    'keepNames',
    'treeShaking',
    'conditions',
    'legalComments',
    'loader',
    'inject',
    'alias',
    'packages',
  ] as const;
  const options: Record<string, unknown> = {};
  const ignoredKeys: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if ((passThrough as readonly string[]).includes(key)) options[key] = value;
    else ignoredKeys.push(key);
  }
  // serverless-esbuild's `exclude` becomes esbuild `external`; it is `[]` here (bundle everything).
  if (Array.isArray(raw.exclude) && raw.exclude.length > 0) {
    options.external = [...((options.external as string[] | undefined) ?? []), ...(raw.exclude as string[])];
  }
  return { options: options as BuildOptions, ignoredKeys };
}

// ---------------------------------------------------------------------------------------------
// Metafile analysis

/** The package a metafile input path belongs to, or undefined for a project source file. */
export function packageOf(inputPath: string): string | undefined {
  const at = inputPath.lastIndexOf('node_modules/');
  if (at === -1) return undefined;
  const rest = inputPath.slice(at + 'node_modules/'.length).split('/');
  return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
}

const isProjectSource = (inputPath: string): boolean =>
  packageOf(inputPath) === undefined && !inputPath.startsWith('<') && /\.(ts|mts|js|mjs)$/.test(inputPath);

const outputOf = (metafile: Metafile): Metafile['outputs'][string] => {
  const outputs = Object.values(metafile.outputs);
  if (outputs.length !== 1 || outputs[0] === undefined) {
    throw new Error(`expected one esbuild output, got ${outputs.length}`);
  }
  return outputs[0];
};

interface Contribution {
  isPackage: boolean;
  bytes: number;
  files: Map<string, number>;
}

/** Bytes in the output per package (node_modules) or per file (project sources). */
function contributions(metafile: Metafile): Map<string, Contribution> {
  const byName = new Map<string, Contribution>();
  for (const [path, input] of Object.entries(outputOf(metafile).inputs)) {
    const pkg = packageOf(path);
    const name = pkg ?? path;
    const entry = byName.get(name) ?? {
      isPackage: pkg !== undefined,
      bytes: 0,
      files: new Map<string, number>(),
    };
    entry.bytes += input.bytesInOutput;
    entry.files.set(path, input.bytesInOutput);
    byName.set(name, entry);
  }
  return byName;
}

/** Groups a package's files by the first two path components inside the package. */
function partsOf(pkg: string, files: Map<string, number>): Contributor['parts'] {
  const parts = new Map<string, { bytes: number; files: number }>();
  for (const [path, size] of files) {
    const inside = path.slice(path.lastIndexOf(`node_modules/${pkg}/`) + `node_modules/${pkg}/`.length);
    const segments = inside.split('/');
    const key = segments.length > 2 ? `${segments.slice(0, 2).join('/')}/` : inside;
    const part = parts.get(key) ?? { bytes: 0, files: 0 };
    part.bytes += size;
    part.files += 1;
    parts.set(key, part);
  }
  return [...parts]
    .filter(([, p]) => p.bytes > 0)
    .map(([name, p]) => ({ name: `${pkg}/${name}`, ...p }))
    .sort((a, b) => b.bytes - a.bytes);
}

const namedImport =
  /(?:^|;|\n)\s*(import|export)\s+(type\s+)?(?:([\w$]+)\s*,\s*)?(\{[\s\S]*?\}|\*\s+as\s+[\w$]+|[\w$]+)\s+from\s+['"]([^'"]+)['"]/g;

/**
 * The value names our source files import from SDK client packages: `import { A, type B } from
 * '@aws-sdk/client-x'` gives A; `import type { … }` gives nothing. A default or namespace import of
 * an SDK package cannot be reproduced name by name, so it stops the benchmark rather than
 * producing a baseline that silently differs.
 */
export function sdkImportsOf(sourceFiles: readonly string[]): Map<string, Set<string>> {
  const imports = new Map<string, Set<string>>();
  for (const file of sourceFiles) {
    const text = readFileSync(join(repoRoot, file), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
    for (const match of text.matchAll(namedImport)) {
      const [, , typeOnly, defaultName, clause = '', specifier = ''] = match;
      if (!isClientPackage(specifier) || typeOnly !== undefined) continue;
      if (defaultName !== undefined || !clause.startsWith('{')) {
        throw new Error(`${file}: unsupported import form for ${specifier} (use named imports)`);
      }
      const names = imports.get(specifier) ?? new Set<string>();
      for (const raw of clause.slice(1, -1).split(',')) {
        const item = raw.trim();
        if (item === '' || /^type\s/.test(item)) continue;
        const imported = item.split(/\s+as\s+/)[0]?.trim();
        if (imported !== undefined && imported !== '') names.add(imported);
      }
      imports.set(specifier, names);
    }
  }
  return imports;
}

/** The baseline entry: exactly those names, each client instantiated, everything kept alive. */
export function baselineEntrySource(imports: ReadonlyMap<string, ReadonlySet<string>>): string {
  const lines = [
    '// Generated by scripts/bench.ts: the bare AWS SDK clients one function imports, nothing else.',
  ];
  const packages = [...imports.keys()].sort();
  const names = new Map(packages.map((pkg) => [pkg, new Set(imports.get(pkg))]));
  const usesDocumentClient = names.get('@aws-sdk/lib-dynamodb')?.has('DynamoDBDocumentClient') === true;
  // DynamoDBDocumentClient.from() needs a DynamoDBClient even if our sources only import its type.
  if (usesDocumentClient) {
    const dynamo = names.get('@aws-sdk/client-dynamodb') ?? new Set<string>();
    dynamo.add('DynamoDBClient');
    names.set('@aws-sdk/client-dynamodb', dynamo);
    if (!packages.includes('@aws-sdk/client-dynamodb')) packages.unshift('@aws-sdk/client-dynamodb');
  }
  const all: string[] = [];
  for (const pkg of packages) {
    const list = [...(names.get(pkg) ?? [])].sort();
    all.push(...list);
    lines.push(`import { ${list.join(', ')} } from '${pkg}';`);
  }
  const clients: string[] = [];
  for (const pkg of packages) {
    if (!pkg.startsWith('@aws-sdk/client-')) continue;
    for (const name of [...(names.get(pkg) ?? [])].sort()) {
      if (!/^[A-Z][\w]*Client$/.test(name)) continue;
      const variable = `${name[0]?.toLowerCase()}${name.slice(1)}`;
      lines.push(`const ${variable} = new ${name}({});`);
      clients.push(variable);
    }
  }
  if (usesDocumentClient) {
    lines.push('const dynamoDBDocumentClient = DynamoDBDocumentClient.from(dynamoDBClient);');
    clients.push('dynamoDBDocumentClient');
  }
  lines.push(`export const clients = [${clients.join(', ')}];`);
  lines.push(`export const used = [${all.join(', ')}];`);
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// The section

export async function runBundleSection(log: (line: string) => void): Promise<BundleSection> {
  const { options, ignoredKeys } = esbuildOptionsFromServerless();
  mkdirSync(bundleDir, { recursive: true });
  const results: BundleResult[] = [];
  for (const fn of readFunctions()) {
    const file = join(bundleDir, `${fn.name}.mjs`);
    const built = await build({
      ...options,
      absWorkingDir: repoRoot,
      entryPoints: [fn.entry],
      outfile: file,
      metafile: true,
      write: true,
      logLevel: 'silent',
    });
    const metafile = built.metafile;
    const output = outputOf(metafile);
    const byName = contributions(metafile);

    const sources = Object.keys(metafile.inputs).filter(isProjectSource);
    const bundledPackages = new Set([...byName.entries()].filter(([, c]) => c.bytes > 0).map(([n]) => n));
    const imports = new Map(
      [...sdkImportsOf(sources)].filter(([pkg, names]) => bundledPackages.has(pkg) && names.size > 0),
    );

    const baselineEntryFile = join(bundleDir, `${fn.name}.baseline.entry.mjs`);
    writeFileSync(baselineEntryFile, baselineEntrySource(imports));
    const baselineFile = join(bundleDir, `${fn.name}.baseline.mjs`);
    const baseline = await build({
      ...options,
      absWorkingDir: repoRoot,
      entryPoints: [baselineEntryFile],
      outfile: baselineFile,
      metafile: true,
      write: true,
      logLevel: 'silent',
    });
    const baselineOutput = outputOf(baseline.metafile);
    const baselineNames = contributions(baseline.metafile);

    // SDK: the SDK's scopes, or any package the baseline (bare SDK clients) also contains.
    const isSdk = (name: string, c: Contribution): boolean =>
      c.isPackage && (isSdkScope(name) || baselineNames.get(name)?.isPackage === true);
    let sdkBytes = 0;
    const nonSdk: Contributor[] = [];
    for (const [name, c] of byName) {
      if (isSdk(name, c)) sdkBytes += c.bytes;
      else nonSdk.push({ name, bytes: c.bytes, parts: c.isPackage ? partsOf(name, c.files) : [] });
    }
    nonSdk.sort((a, b) => b.bytes - a.bytes);
    let baselineSdkBytes = 0;
    for (const c of baselineNames.values()) if (c.isPackage) baselineSdkBytes += c.bytes;

    const clients = [...byName]
      .filter(([name, c]) => isClientPackage(name) && c.bytes > 0)
      .map(([pkg, c]) => ({ pkg, bytes: c.bytes }))
      .sort((a, b) => a.pkg.localeCompare(b.pkg));
    const result: BundleResult = {
      fn,
      file,
      bytes: output.bytes,
      baselineFile,
      baselineEntryFile,
      baselineBytes: baselineOutput.bytes,
      ratio: output.bytes / baselineOutput.bytes,
      clients,
      includesEc2: clients.some((c) => c.pkg === '@aws-sdk/client-ec2'),
      sdkImports: Object.fromEntries([...imports].map(([pkg, names]) => [pkg, [...names].sort()])),
      sdkBytes,
      baselineSdkBytes,
      nonSdkBytes: nonSdk.reduce((sum, c) => sum + c.bytes, 0),
      nonSdk,
    };
    results.push(result);
    log(
      `bundle ${fn.name}: ${output.bytes} B, baseline ${baselineOutput.bytes} B (${result.ratio.toFixed(2)}×), ` +
        `clients ${clients.map((c) => c.pkg.replace('@aws-sdk/', '')).join(', ')}`,
    );
  }
  return { options, ignoredKeys, results };
}
