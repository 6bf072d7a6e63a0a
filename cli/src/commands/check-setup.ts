/**
 * annex check-setup: is everything in place to create an annex? Endpoint, region, credentials, a
 * signed request the API accepts, the pool's registration, and, asked of the control plane, whether
 * the pool's collector can be reached from the cloud. Later checks are skipped once one fails; the
 * failed one names the step of the README's "Deploying for real" that is missing.
 */
import { withHint, type Context } from '../context.ts';
import { CliError, asCliError, errorLine } from '../errors.ts';
import { checkText } from '../render.ts';
import type { Pool } from '../types.ts';
import { checkPool, PASSWORD_POOL_WARNING } from './pools.ts';

export interface SetupCheck {
  name: string;
  ok: boolean;
  detail: string;
}

const maskKey = (key: string) => (key.length > 8 ? `${key.slice(0, 4)}…${key.slice(-4)}` : '…');

export const run = async (ctx: Context): Promise<number> => {
  const checks: SetupCheck[] = [];
  const paint = ctx.out.paint;
  const record = (check: SetupCheck) => {
    checks.push(check);
    ctx.out.print(`${check.ok ? paint.green('✓') : paint.red('✗')} ${check.name.padEnd(12)}${check.detail}`);
  };
  const fail = (name: string, e: unknown) => {
    const error = asCliError(e);
    record({ name, ok: false, detail: errorLine(error).replace(/^annex: /, '') });
  };

  // Each step may rely on the ones before it having passed (the connection is resolved once).
  // `missing` turns a failure into the setup step that fixes it.
  let pool: Pool | undefined;
  const steps: { name: string; run: () => Promise<string>; missing?: (e: CliError) => string | undefined }[] =
    [
      {
        name: 'endpoint',
        missing: (e) =>
          e.code === 'NoEndpoint'
            ? "missing step: annex configure --endpoint URL, with the deployed stack's HttpApiUrl output"
            : undefined,
        run: async () => {
          const { endpoint, region } = await ctx.connect();
          return `${endpoint.value.href} (from ${endpoint.source}); region ${region.value} (from ${region.source})`;
        },
      },
      {
        name: 'credentials',
        missing: (e) =>
          e.code === 'NoCredentials'
            ? `missing step: AWS credentials of the IAM identity that has the AnnexUser policy; ${e.hint ?? ''}`
            : undefined,
        run: async () => {
          const { credentials, profile } = await ctx.connect();
          const { accessKeyId, sessionToken } = await credentials();
          return (
            `access key ${maskKey(accessKeyId)}` +
            (profile === undefined ? '' : ` (profile ${profile.value})`) +
            (sessionToken === undefined ? '' : ', temporary')
          );
        },
      },
      {
        name: 'API',
        missing: (e) => {
          if (e.code === 'Forbidden')
            return (
              `missing step: attach the stack's AnnexUser policy (output AnnexUserPolicyArn) to your IAM ` +
              `identity (aws iam attach-user-policy / attach-role-policy); or check the signing region`
            );
          if (e.code === 'NoSuchRoute') return "this is not an Annex API: use the stack's HttpApiUrl output";
          return undefined;
        },
        run: async () => {
          const { client } = await ctx.connect();
          const started = Date.now();
          const { pools } = await client.request<{ pools: Pool[] }>('GET', '/v1/pools');
          pool = pools.find((p) => p.name === ctx.pool);
          return `a signed request was accepted (GET /v1/pools in ${Date.now() - started} ms)`;
        },
      },
      {
        name: 'pool',
        run: async () => {
          if (pool === undefined) {
            throw new CliError(`no pool named ${ctx.pool} is registered for you`, {
              code: 'NoPool',
              hint:
                'missing step: register a pool (annex pools set POOL --collector HOST[:PORT] --token-key-file F), ' +
                'or pick one of annex pools list with --pool',
            });
          }
          const about = `${pool.name} (${pool.scope}): collector ${pool.collectorHost}:${pool.collectorPort}, ${pool.credentialType} credential`;
          return pool.credentialType === 'password' ? `${about} (warning: ${PASSWORD_POOL_WARNING})` : about;
        },
      },
      {
        name: 'collector',
        run: async () => {
          const result = await checkPool(ctx, ctx.pool);
          if (!result.reachable) {
            throw new CliError(checkText(result), {
              code: 'CollectorUnreachable',
              hint: `open TCP port ${result.collectorPort} on ${result.collectorHost} to the cloud (firewall, security group)`,
            });
          }
          return checkText(result);
        },
      },
    ];

  for (const step of steps) {
    try {
      record({
        name: step.name,
        ok: true,
        detail: await step.run().catch((e: unknown) => withHint(e, (error) => step.missing?.(error))),
      });
    } catch (e) {
      fail(step.name, e);
      break;
    }
  }
  for (const step of steps.slice(checks.length)) {
    checks.push({ name: step.name, ok: false, detail: 'skipped: an earlier check failed' });
    ctx.out.print(`${paint.dim('-')} ${step.name.padEnd(12)}${paint.dim('skipped')}`);
  }
  const ok = checks.every((c) => c.ok);
  ctx.out.data({ ok, checks });
  if (!ok) {
    const failed = checks.find((c) => !c.ok && !c.detail.startsWith('skipped'));
    throw new CliError(`the setup check failed at ${failed?.name ?? 'a step'}`, {
      code: 'SetupIncomplete',
      hint: 'fix what the ✗ line says and run annex check-setup again',
    });
  }
  ctx.out.print(paint.green('Everything is in place: annex create should work.'));
  return 0;
};
