/** annex pools list | set POOL … | check POOL. */
import type { Context } from '../context.ts';
import { withHint } from '../context.ts';
import { CliError, usageError } from '../errors.ts';
import { checkText, renderPools } from '../render.ts';
import type { Pool, PoolCheck } from '../types.ts';
import { fieldHint, readTextFile } from './common.ts';

/** HTCondor's PASSWORD method needs the password itself on every machine of the pool. */
export const PASSWORD_POOL_WARNING =
  'a password pool hands its pool-wide secret to every annex machine (whoever is root there can ' +
  'join or impersonate any daemon of the pool); register the IDTOKENS signing key instead ' +
  '(--token-key-file): each instance then gets only its own token, limited to an execute point ' +
  'and expiring with its lease';

const poolPath = (name: string, suffix = '') => `/v1/pools/${encodeURIComponent(name)}${suffix}`;

export const parseCollector = (text: string): { collectorHost: string; collectorPort?: number } => {
  const match = /^([^:\s]+)(?::(\d+))?$/.exec(text);
  const port = match?.[2] === undefined ? undefined : Number(match[2]);
  if (match?.[1] === undefined || (port !== undefined && (port < 1 || port > 65535))) {
    throw usageError(
      `--collector ${JSON.stringify(text)} must be HOST or HOST:PORT`,
      'for example cm.example.org:9618',
    );
  }
  return { collectorHost: match[1], ...(port === undefined ? {} : { collectorPort: port }) };
};

/** The --policy-file's JSON object (the API checks its fields and names a wrong one). */
const parsePolicy = (text: string): Record<string, unknown> => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw usageError('--policy-file must be a JSON object', 'for example {"allowUserData": true}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw usageError('--policy-file must be a JSON object', 'for example {"allowUserData": true}');
  }
  return parsed as Record<string, unknown>;
};

const list = async (ctx: Context): Promise<number> => {
  const api = await ctx.api();
  const { pools } = await api.request<{ pools: Pool[] }>('GET', '/v1/pools');
  ctx.out.data({ pools });
  ctx.out.print(renderPools(pools, ctx.now(), ctx.out.paint, ctx.out.columns));
  return 0;
};

const set = async (ctx: Context): Promise<number> => {
  const name = ctx.name;
  const collector = ctx.string('collector');
  if (collector === undefined) throw usageError('annex pools set needs --collector HOST[:PORT]');
  const passwordFile = ctx.string('password-file');
  const keyFile = ctx.string('token-key-file');
  if ((passwordFile === undefined) === (keyFile === undefined)) {
    throw usageError(
      'give one of --password-file FILE or --token-key-file FILE',
      'the credential instances join the pool with',
    );
  }
  const scope = ctx.string('scope');
  if (scope !== undefined && scope !== 'shared' && scope !== 'private')
    throw usageError('--scope must be shared or private');
  const value =
    passwordFile !== undefined
      ? await readTextFile(ctx, passwordFile, '--password-file')
      : await readTextFile(ctx, keyFile ?? '', '--token-key-file');
  const policyFile = ctx.string('policy-file');
  const policy =
    policyFile === undefined ? undefined : parsePolicy(await readTextFile(ctx, policyFile, '--policy-file'));
  const body = {
    ...parseCollector(collector),
    ...(policy === undefined ? {} : { policy }),
    credential: {
      type: passwordFile !== undefined ? 'password' : 'idtokens-signing-key',
      // A file written by an editor ends with a newline that is not part of the secret.
      value: value.replace(/\r?\n$/, ''),
    },
    ...(scope === undefined ? {} : { scope }),
  };
  const api = await ctx.api();
  const { pool } = await api
    .request<{ pool: Pool }>('PUT', poolPath(name), { body })
    .catch((e: unknown) =>
      withHint(e, (error) =>
        error.code === 'Forbidden' && error.field === undefined
          ? 'only an administrator may register a shared pool: use --scope private'
          : fieldHint(error),
      ),
    );
  ctx.out.data({ pool });
  ctx.out.print(
    `Pool ${pool.name} (${pool.scope}) registered: collector ${pool.collectorHost}:${pool.collectorPort}.`,
  );
  if (pool.credentialType === 'password') ctx.out.note(`warning: ${PASSWORD_POOL_WARNING}`);
  return 0;
};

export const checkPool = async (ctx: Context, name: string): Promise<PoolCheck> => {
  const api = await ctx.api();
  const { check } = await api
    .request<{ check: PoolCheck }>('POST', poolPath(name, '/check'))
    .catch((e: unknown) =>
      withHint(e, (error) =>
        error.code === 'NotFound' ? 'see the pools you may use with annex pools list' : undefined,
      ),
    );
  return check;
};

const check = async (ctx: Context): Promise<number> => {
  const result = await checkPool(ctx, ctx.name);
  ctx.out.data({ check: result });
  if (!result.reachable) {
    throw new CliError(`pool ${result.pool}: ${checkText(result)}`, {
      code: 'CollectorUnreachable',
      hint: `open TCP port ${result.collectorPort} on ${result.collectorHost} to the cloud (firewall, security group), or fix the pool with annex pools set`,
    });
  }
  ctx.out.print(`Pool ${result.pool}: ${checkText(result)}.`);
  return 0;
};

export const run = async (ctx: Context): Promise<number> => {
  switch (ctx.command.name) {
    case 'pools list':
      return list(ctx);
    case 'pools set':
      return set(ctx);
    default:
      return check(ctx);
  }
};
