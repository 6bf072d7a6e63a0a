/** annex create NAME --count N --type T …: launch, wait until running, print the annex. */
import type { Context } from '../context.ts';
import { withHint } from '../context.ts';
import { CliError, usageError } from '../errors.ts';
import { SPOT_UNSUPPORTED } from '../condor.ts';
import { renderStatus } from '../render.ts';
import { formatHours, formatLocal, relativeTo } from '../time.ts';
import type { AnnexDetail } from '../types.ts';
import {
  annexHint,
  confirm,
  countOption,
  durationOption,
  getDetail,
  idempotencyKey,
  interactive,
  readTextFile,
  typesOption,
  waitSummary,
  waitWithProgress,
} from './common.ts';

/** condor_annex's defaults, which the API also uses; sent explicitly so the prompt tells the truth. */
export const DEFAULT_DURATION_SECONDS = 3000;
export const DEFAULT_IDLE_SECONDS = 900;

export interface CreateRequest {
  name: string;
  pool: string;
  count: number;
  instanceTypes: string[];
  market: 'on-demand';
  durationSeconds: number;
  idleSeconds: number;
  imageId?: string;
  subnetIds?: string[];
  securityGroupIds?: string[];
  keyName?: string;
  userData?: string;
  tags?: Record<string, string>;
  allowedUsers?: string[];
}

const TAG = /^([^=]+)=(.*)$/s;

export const parseTags = (values: string[]): Record<string, string> | undefined => {
  if (values.length === 0) return undefined;
  const tags: Record<string, string> = {};
  for (const value of values) {
    const match = TAG.exec(value);
    if (match?.[1] === undefined)
      throw usageError(`--tag ${JSON.stringify(value)} must be KEY=VALUE`, 'for example --tag project=gpu');
    tags[match[1]] = match[2] ?? '';
  }
  return tags;
};

/** The request body from the command line (no I/O but reading the user data file). */
export const createRequest = async (ctx: Context): Promise<CreateRequest> => {
  if (ctx.flag('spot')) throw usageError(SPOT_UNSUPPORTED, 'leave out --spot to get on-demand instances');
  const count = countOption(ctx);
  const instanceTypes = typesOption(ctx);
  if (instanceTypes.length === 0) {
    throw usageError(
      'annex create needs --type TYPE',
      'for example --type p2.xlarge (condor_annex: -aws-on-demand-instance-type)',
    );
  }
  const userDataText = ctx.string('user-data');
  const userDataFile = ctx.string('user-data-file');
  if (userDataText !== undefined && userDataFile !== undefined)
    throw usageError('give --user-data or --user-data-file, not both');
  const userData =
    userDataFile === undefined ? userDataText : await readTextFile(ctx, userDataFile, '--user-data-file');
  const securityGroupIds = ctx.list('security-group').flatMap((g) =>
    g
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  );
  const subnetIds = ctx.list('subnet');
  const tags = parseTags(ctx.list('tag'));
  const image = ctx.string('image');
  const keyName = ctx.string('key-name');
  const allowedUsers = ownersOption(ctx);
  return {
    name: ctx.name,
    pool: ctx.pool,
    count,
    instanceTypes,
    market: 'on-demand',
    durationSeconds: durationOption(ctx, 'duration', DEFAULT_DURATION_SECONDS) ?? DEFAULT_DURATION_SECONDS,
    idleSeconds: durationOption(ctx, 'idle', DEFAULT_IDLE_SECONDS) ?? DEFAULT_IDLE_SECONDS,
    ...(image === undefined ? {} : { imageId: image }),
    ...(subnetIds.length === 0 ? {} : { subnetIds }),
    ...(securityGroupIds.length === 0 ? {} : { securityGroupIds }),
    ...(keyName === undefined ? {} : { keyName }),
    ...(userData === undefined ? {} : { userData }),
    ...(tags === undefined ? {} : { tags }),
    ...(allowedUsers === undefined ? {} : { allowedUsers }),
  };
};

/**
 * Who may run jobs on the annex, as condor_annex's -owner / -no-owner: `--owner a,b` → those
 * HTCondor users; `--no-owner` → any user of the pool (an empty list); neither → the pool's user.
 */
export const ownersOption = (ctx: Context): string[] | undefined => {
  const owners = ctx.list('owner').flatMap((o) =>
    o
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  );
  if (ctx.flag('no-owner')) {
    if (owners.length > 0) throw usageError('give --owner or --no-owner, not both');
    return [];
  }
  if (ctx.list('owner').length > 0 && owners.length === 0)
    throw usageError('--owner needs a user name', 'for example --owner alice or --owner alice,bob');
  return owners.length === 0 ? undefined : owners;
};

/**
 * condor_annex's confirmation: "Will request 1 p2.xlarge on-demand instance(s) for 0.83 hours. Each
 * instance will terminate after being idle for 0.25 hours." (No price: the control plane has no
 * price table yet, and a made-up estimate would be worse than none.)
 */
export const confirmationText = (request: CreateRequest): string =>
  `Will request ${request.count} ${request.instanceTypes.join(' or ')} on-demand instance(s) for ${formatHours(request.durationSeconds)} hours. ` +
  `Each instance will terminate after being idle for ${formatHours(request.idleSeconds)} hours.` +
  (request.pool === 'default' ? '' : ` They will join pool ${request.pool}.`) +
  (request.allowedUsers === undefined
    ? ''
    : request.allowedUsers.length === 0
      ? ' They will run jobs of any user of the pool.'
      : ` They will run jobs of ${request.allowedUsers.join(', ')} only.`);

export const run = async (ctx: Context): Promise<number> => {
  const request = await createRequest(ctx);
  if (!ctx.flag('yes') && interactive(ctx)) {
    if (!(await confirm(ctx, `${confirmationText(request)}\nIs that OK?`))) {
      throw new CliError('not creating the annex', { code: 'Cancelled', hint: 'nothing was launched' });
    }
  }
  const api = await ctx.api();
  const key = idempotencyKey(ctx);
  await api
    .request('POST', '/v1/annexes', { body: request, idempotencyKey: key })
    .catch((e: unknown) =>
      withHint(e, (error) =>
        error.code === 'Conflict' && /already live/.test(error.message)
          ? `choose another name, or see it with annex status ${request.name}`
          : error.code === 'Conflict' && /Idempotency-Key/.test(error.message)
            ? 'use a new --idempotency-key for a different request'
            : annexHint(request.name)(error),
      ),
    );
  let detail: AnnexDetail;
  let summary: string | undefined;
  if (ctx.flag('no-wait')) {
    detail = await getDetail(ctx, request.name);
    summary = `${request.name}: requested ${request.count} instance(s); follow it with annex status ${request.name} --watch.`;
  } else {
    const result = await waitWithProgress(ctx, request.name, request.count, new Set());
    detail = result.detail;
    summary = waitSummary(result, request.count, 'launched');
  }
  const now = ctx.now();
  ctx.out.data(detail);
  ctx.out.print(renderStatus(detail, now, ctx.out.paint, ctx.out.columns));
  ctx.out.print();
  ctx.out.print(summary);
  ctx.out.print(
    `The lease ends ${relativeTo(new Date(detail.annex.expiresAt), now)} (${formatLocal(new Date(detail.annex.expiresAt), now)}); ` +
      `extend it with annex extend ${request.name} --by 1h.`,
  );
  return 0;
};
