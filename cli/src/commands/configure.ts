/** annex configure: save endpoint, region, profile and pool in the config file. */
import type { Context } from '../context.ts';
import { parseEndpoint, writeConfigFile, type ConfigFile } from '../settings.ts';
import { interactive } from './common.ts';

const KEYS = ['endpoint', 'region', 'profile', 'pool'] as const;

const ask = async (
  ctx: Context,
  question: string,
  current: string | undefined,
): Promise<string | undefined> => {
  const answer = (await ctx.ask(`${question}${current === undefined ? '' : ` [${current}]`}: `)).trim();
  return answer === '' ? current : answer;
};

export const run = async (ctx: Context): Promise<number> => {
  const current = ctx.config;
  const given = KEYS.filter((k) => ctx.string(k) !== undefined);
  let next: ConfigFile = { ...current };
  if (given.length > 0) {
    for (const key of given) next[key] = ctx.string(key);
  } else if (interactive(ctx) && !ctx.out.json) {
    next = {
      endpoint: await ask(ctx, 'Annex API endpoint (https://…)', current.endpoint),
      region: await ask(ctx, 'AWS region of the API', current.region),
      profile: await ask(ctx, 'AWS profile (empty: the default chain)', current.profile),
      pool: await ask(ctx, 'HTCondor pool', current.pool ?? 'default'),
    };
  } else {
    ctx.out.data({ configFile: ctx.configPath, config: current, written: false });
    ctx.out.print(`${ctx.configPath}:`);
    for (const key of KEYS)
      ctx.out.print(`  ${key.padEnd(9)}${current[key] ?? ctx.out.paint.dim('(not set)')}`);
    return 0;
  }
  for (const key of KEYS) if (next[key] === undefined || next[key] === '') delete next[key];
  if (next.endpoint !== undefined)
    next.endpoint = parseEndpoint(next.endpoint, '--endpoint').href.replace(/\/$/, '');
  writeConfigFile(ctx.configPath, next);
  ctx.out.data({ configFile: ctx.configPath, config: next, written: true });
  ctx.out.print(`Wrote ${ctx.configPath}. Check it with annex check-setup.`);
  return 0;
};
