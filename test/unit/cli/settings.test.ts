import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CliError } from '../../../cli/src/errors.ts';
import {
  configFilePath,
  readConfigFile,
  regionOfEndpoint,
  resolveEndpoint,
  resolveRegion,
  writeConfigFile,
} from '../../../cli/src/settings.ts';

const CONFIG = '/home/u/.config/annex/config.json';
const noProfileRegion = async (): Promise<string | undefined> => undefined;

describe('the endpoint', () => {
  it('comes from --endpoint, else ANNEX_API_URL, else the config file; AWS_ENDPOINT_URL never counts', () => {
    const env = { ANNEX_API_URL: 'http://127.0.0.1:8787', AWS_ENDPOINT_URL: 'http://127.0.0.1:5050' };
    const config = { endpoint: 'https://from-config.example' };
    expect(resolveEndpoint({ endpoint: 'https://flag.example/' }, env, config, CONFIG)).toMatchObject({
      source: '--endpoint',
    });
    expect(resolveEndpoint({}, env, config, CONFIG).value.href).toBe('http://127.0.0.1:8787/');
    expect(resolveEndpoint({}, {}, config, CONFIG)).toMatchObject({ source: CONFIG });
    const none = (() => {
      try {
        return resolveEndpoint({}, { AWS_ENDPOINT_URL: 'http://127.0.0.1:5050' }, {}, CONFIG);
      } catch (e) {
        return e;
      }
    })() as CliError;
    expect(none.code).toBe('NoEndpoint');
    expect(none.exitCode).toBe(2);
  });

  it('keeps a base path and refuses what is not an http(s) URL', () => {
    expect(resolveEndpoint({ endpoint: 'https://api.example/annex/' }, {}, {}, CONFIG).value.pathname).toBe(
      '/annex',
    );
    for (const bad of ['ftp://x', 'not a url', 'https://x/?q=1']) {
      expect(() => resolveEndpoint({ endpoint: bad }, {}, {}, CONFIG)).toThrow(CliError);
    }
  });
});

describe('the signing region', () => {
  const url = (href: string) => ({ value: new URL(href), source: 'ANNEX_API_URL' });

  it('reads the region of an execute-api host name', () => {
    expect(regionOfEndpoint(new URL('https://abc123.execute-api.eu-west-1.amazonaws.com'))).toBe('eu-west-1');
    expect(regionOfEndpoint(new URL('https://annex.example.org'))).toBeUndefined();
  });

  it('prefers --region, then the endpoint host, then the environment, then the profile', async () => {
    const env = { AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-west-1' };
    const api = url('https://abc.execute-api.eu-west-1.amazonaws.com');
    const local = url('http://127.0.0.1:8787');
    const region = (
      flags: { region?: string },
      e: Record<string, string>,
      endpoint = local,
      profile = noProfileRegion,
    ) => resolveRegion(flags, e, endpoint, {}, CONFIG, undefined, profile);
    expect((await region({ region: 'ap-south-1' }, env, api)).value).toBe('ap-south-1');
    expect((await region({}, env, api)).value).toBe('eu-west-1');
    expect((await region({}, env)).value).toBe('us-east-1');
    expect((await region({}, { AWS_DEFAULT_REGION: 'us-west-1' })).value).toBe('us-west-1');
    expect((await region({}, {}, local, async () => 'ca-central-1')).source).toBe('AWS profile default');
    await expect(region({}, {})).rejects.toMatchObject({ code: 'NoRegion', exitCode: 2 });
  });

  it('uses the config file’s region only with the config file’s endpoint', async () => {
    const config = { endpoint: 'https://annex.example.org', region: 'eu-north-1' };
    const fromConfig = { value: new URL(config.endpoint), source: CONFIG };
    expect(
      (
        await resolveRegion(
          {},
          { AWS_REGION: 'us-east-1' },
          fromConfig,
          config,
          CONFIG,
          undefined,
          noProfileRegion,
        )
      ).value,
    ).toBe('eu-north-1');
    expect(
      (
        await resolveRegion(
          {},
          { AWS_REGION: 'us-east-1' },
          url('http://127.0.0.1:1'),
          config,
          CONFIG,
          undefined,
          noProfileRegion,
        )
      ).value,
    ).toBe('us-east-1');
  });
});

describe('the config file', () => {
  it('lives at $ANNEX_CONFIG_FILE, else under $XDG_CONFIG_HOME, else ~/.config', () => {
    expect(configFilePath({ ANNEX_CONFIG_FILE: '/x/c.json', HOME: '/h' })).toBe('/x/c.json');
    expect(configFilePath({ XDG_CONFIG_HOME: '/xdg', HOME: '/h' })).toBe('/xdg/annex/config.json');
    expect(configFilePath({ HOME: '/h' })).toBe('/h/.config/annex/config.json');
  });

  it('is written readable by its owner only and read back; a missing file is empty', () => {
    const dir = mkdtempSync(join(tmpdir(), 'annex-config-'));
    const path = join(dir, 'annex', 'config.json');
    expect(readConfigFile(path)).toEqual({});
    writeConfigFile(path, { endpoint: 'https://a.example', region: 'us-east-1' });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readConfigFile(path)).toEqual({ endpoint: 'https://a.example', region: 'us-east-1' });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({
      endpoint: 'https://a.example',
      region: 'us-east-1',
    });
  });

  it('names the file when it is malformed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'annex-config-'));
    const path = join(dir, 'config.json');
    writeFileSync(path, '{ not json');
    expect(() => readConfigFile(path)).toThrow(`${path} is not valid JSON`);
    writeFileSync(path, '{"region": 3}');
    expect(() => readConfigFile(path)).toThrow('region must be a string');
  });
});
