/**
 * Where the API is, which region requests are signed for, and which AWS profile to use: from the
 * command line, the environment, and the config file `annex configure` writes
 * (`~/.config/annex/config.json`). `AWS_ENDPOINT_URL` is deliberately ignored: it redirects AWS
 * SDK clients, and the Annex API is not one of them.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError, EXIT, usageError } from './errors.ts';

export interface ConfigFile {
  endpoint?: string;
  region?: string;
  profile?: string;
  pool?: string;
}

const CONFIG_KEYS = ['endpoint', 'region', 'profile', 'pool'] as const;

export type Env = Readonly<Record<string, string | undefined>>;

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);

/** `$ANNEX_CONFIG_FILE`, else `$XDG_CONFIG_HOME/annex/config.json`, else `~/.config/annex/config.json`. */
export const configFilePath = (env: Env): string =>
  nonEmpty(env.ANNEX_CONFIG_FILE) ??
  join(
    nonEmpty(env.XDG_CONFIG_HOME) ?? join(nonEmpty(env.HOME) ?? homedir(), '.config'),
    'annex',
    'config.json',
  );

export const readConfigFile = (path: string): ConfigFile => {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${path}: ${(e as Error).message}`, { code: 'Config' });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not valid JSON`, {
      code: 'Config',
      hint: 'fix it, or rewrite it with annex configure',
    });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CliError(`${path} must hold a JSON object`, { code: 'Config' });
  }
  const config: ConfigFile = {};
  for (const key of CONFIG_KEYS) {
    const value = (parsed as Record<string, unknown>)[key];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new CliError(`${path}: ${key} must be a string`, { code: 'Config' });
    config[key] = value;
  }
  return config;
};

export const writeConfigFile = (path: string, config: ConfigFile): void => {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
};

/** An http(s) URL without query or fragment; a trailing slash is dropped. */
export const parseEndpoint = (text: string, source: string): URL => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usageError(
      `the API endpoint ${JSON.stringify(text)} (${source}) is not a URL`,
      'for example https://abc123.execute-api.us-east-1.amazonaws.com',
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw usageError(`the API endpoint ${text} (${source}) must be an http or https URL`);
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw usageError(`the API endpoint ${text} (${source}) must not carry a query, fragment or user name`);
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
};

export interface Resolved<T> {
  value: T;
  source: string;
}

export interface GlobalSettingsInput {
  endpoint?: string;
  region?: string;
  profile?: string;
}

/** The endpoint: `--endpoint`, else `ANNEX_API_URL`, else the config file. */
export const resolveEndpoint = (
  flags: GlobalSettingsInput,
  env: Env,
  config: ConfigFile,
  configPath: string,
): Resolved<URL> => {
  if (flags.endpoint !== undefined)
    return { value: parseEndpoint(flags.endpoint, '--endpoint'), source: '--endpoint' };
  const fromEnv = nonEmpty(env.ANNEX_API_URL);
  if (fromEnv !== undefined)
    return { value: parseEndpoint(fromEnv, 'ANNEX_API_URL'), source: 'ANNEX_API_URL' };
  if (config.endpoint !== undefined)
    return { value: parseEndpoint(config.endpoint, configPath), source: configPath };
  throw new CliError('no Annex API endpoint is configured', {
    exitCode: EXIT.usage,
    code: 'NoEndpoint',
    hint: 'run annex configure --endpoint https://…, set ANNEX_API_URL, or pass --endpoint',
  });
};

/** `https://<id>.execute-api.<region>.amazonaws.com` names its own region. */
export const regionOfEndpoint = (url: URL): string | undefined =>
  /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(url.hostname)?.[1];

/** The AWS profile: `--profile`, else `AWS_PROFILE` (read by the credential chain), else the config file. */
export const resolveProfile = (
  flags: GlobalSettingsInput,
  env: Env,
  config: ConfigFile,
): Resolved<string> | undefined => {
  if (flags.profile !== undefined) return { value: flags.profile, source: '--profile' };
  const fromEnv = nonEmpty(env.AWS_PROFILE);
  if (fromEnv !== undefined) return { value: fromEnv, source: 'AWS_PROFILE' };
  if (config.profile !== undefined) return { value: config.profile, source: 'config file' };
  return undefined;
};

/**
 * The region requests are signed for. The API lives in one region, so what names the endpoint's
 * region comes first: `--region`, the region in an execute-api host name, the config file's region
 * (when the endpoint also came from it), then `AWS_REGION`, `AWS_DEFAULT_REGION`, and the AWS
 * profile's region (looked up only when nothing else gave one).
 */
export const resolveRegion = async (
  flags: GlobalSettingsInput,
  env: Env,
  endpoint: Resolved<URL>,
  config: ConfigFile,
  configPath: string,
  profile: string | undefined,
  profileRegion: (profile: string | undefined) => Promise<string | undefined>,
): Promise<Resolved<string>> => {
  if (flags.region !== undefined) return { value: flags.region, source: '--region' };
  const fromHost = regionOfEndpoint(endpoint.value);
  if (fromHost !== undefined) return { value: fromHost, source: 'the endpoint host name' };
  if (endpoint.source === configPath && config.region !== undefined)
    return { value: config.region, source: configPath };
  for (const name of ['AWS_REGION', 'AWS_DEFAULT_REGION']) {
    const value = nonEmpty(env[name]);
    if (value !== undefined) return { value, source: name };
  }
  const fromProfile = await profileRegion(profile);
  if (fromProfile !== undefined) return { value: fromProfile, source: `AWS profile ${profile ?? 'default'}` };
  throw new CliError('no AWS region to sign requests for', {
    exitCode: EXIT.usage,
    code: 'NoRegion',
    hint: 'pass --region, set AWS_REGION, or run annex configure --region',
  });
};
