/** annex create NAME --count N --type T …: launch, wait until running, print the annex. */
import type { Context } from '../context.ts';
import { withHint } from '../context.ts';
import { CliError, usageError } from '../errors.ts';
import { highestHourly, onDemandPrices, type PriceTable } from '../prices.ts';
import { renderStatus, usd } from '../render.ts';
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
  listOption,
  readTextFile,
  typesOption,
  waitSummary,
  waitWithProgress,
} from './common.ts';

/** condor_annex's defaults, which the API also uses; sent explicitly so the prompt tells the truth. */
export const DEFAULT_DURATION_SECONDS = 3000;
export const DEFAULT_IDLE_SECONDS = 900;

export interface InstanceRequirements {
  vCpus: { min: number; max?: number };
  memoryMiB: { min: number; max?: number };
  gpus?: { min?: number; max?: number };
}

export interface CreateRequest {
  name: string;
  pool: string;
  /** Absent when a Spot Fleet config gives TargetCapacity. */
  count?: number;
  instanceTypes?: string[];
  instanceRequirements?: InstanceRequirements;
  market?: 'on-demand' | 'spot' | 'mixed';
  onDemandBaseCount?: number;
  allocationStrategy?: string;
  maxPrice?: string;
  capacityPolicy?: string;
  spotFleetConfig?: Record<string, unknown>;
  replaceInterrupted?: boolean;
  maxReplacements?: number;
  maxSpend?: number;
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

/** `4`, `4-8`: a range of whole numbers for --vcpus, --memory-gib, --gpus. */
export const parseRange = (text: string, option: string): { min: number; max?: number } => {
  const match = /^(\d+)(?:-(\d+))?$/.exec(text.trim());
  if (match?.[1] === undefined)
    throw usageError(`${option} ${JSON.stringify(text)} must be MIN or MIN-MAX`, `for example ${option} 4-8`);
  const min = Number(match[1]);
  const max = match[2] === undefined ? undefined : Number(match[2]);
  if (max !== undefined && max < min) throw usageError(`${option} ${text}: MAX is below MIN`);
  return max === undefined ? { min } : { min, max };
};

const wholeNumber = (ctx: Context, option: string, least: number): number | undefined => {
  const text = ctx.string(option);
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < least)
    throw usageError(`--${option} ${JSON.stringify(text)} must be a whole number of at least ${least}`);
  return Number(text);
};

const requirementsOption = (ctx: Context): InstanceRequirements | undefined => {
  const [vcpus, memory, gpus] = [ctx.string('vcpus'), ctx.string('memory-gib'), ctx.string('gpus')];
  if (vcpus === undefined && memory === undefined && gpus === undefined) return undefined;
  if (vcpus === undefined || memory === undefined)
    throw usageError(
      'hardware needs take --vcpus and --memory-gib (and optionally --gpus)',
      'for example --vcpus 4-8 --memory-gib 16',
    );
  const mem = parseRange(memory, '--memory-gib');
  return {
    vCpus: parseRange(vcpus, '--vcpus'),
    memoryMiB: { min: mem.min * 1024, ...(mem.max === undefined ? {} : { max: mem.max * 1024 }) },
    ...(gpus === undefined ? {} : { gpus: parseRange(gpus, '--gpus') }),
  };
};

/** --spot and --on-demand-base N: the market of a create or add-nodes request. */
export const marketOption = (ctx: Context): { market?: 'spot' | 'mixed'; onDemandBaseCount?: number } => {
  const base = wholeNumber(ctx, 'on-demand-base', 0);
  if (!ctx.flag('spot')) {
    if (base !== undefined)
      throw usageError('--on-demand-base goes with --spot', 'for example --spot --on-demand-base 1');
    return {};
  }
  return base === undefined ? { market: 'spot' } : { market: 'mixed', onDemandBaseCount: base };
};

const spotFleetConfigOption = async (ctx: Context): Promise<Record<string, unknown> | undefined> => {
  const path = ctx.string('spot-fleet-config');
  if (path === undefined) return undefined;
  const text = await readTextFile(ctx, path, '--spot-fleet-config');
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw usageError(`--spot-fleet-config ${path} is not JSON: ${(e as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    throw usageError(`--spot-fleet-config ${path} must be a JSON object (a Spot Fleet request config)`);
  // condor_annex's files are a SpotFleetRequestConfig; some wrap it as the CLI's request does.
  const wrapped = (config as { SpotFleetRequestConfig?: unknown }).SpotFleetRequestConfig;
  return typeof wrapped === 'object' && wrapped !== null
    ? (wrapped as Record<string, unknown>)
    : (config as Record<string, unknown>);
};

/** The request body from the command line (no I/O but reading the user data and fleet config files). */
export const createRequest = async (ctx: Context): Promise<CreateRequest> => {
  const spotFleetConfig = await spotFleetConfigOption(ctx);
  const count =
    spotFleetConfig !== undefined && ctx.string('count') === undefined ? undefined : countOption(ctx);
  const instanceTypes = typesOption(ctx);
  const instanceRequirements = requirementsOption(ctx);
  if (instanceTypes.length > 0 && instanceRequirements !== undefined)
    throw usageError('give --type or hardware needs (--vcpus, --memory-gib), not both');
  if (instanceTypes.length === 0 && instanceRequirements === undefined && spotFleetConfig === undefined) {
    throw usageError(
      'annex create needs --type TYPE',
      'for example --type p2.xlarge (condor_annex: -aws-on-demand-instance-type), or --spot --vcpus 4 --memory-gib 16',
    );
  }
  const market = marketOption(ctx);
  if (instanceRequirements !== undefined && market.market === undefined && spotFleetConfig === undefined)
    throw usageError(
      'hardware needs (--vcpus, --memory-gib) go with --spot',
      'EC2 picks the types from an EC2 Fleet',
    );
  const userDataText = ctx.string('user-data');
  const userDataFile = ctx.string('user-data-file');
  if (userDataText !== undefined && userDataFile !== undefined)
    throw usageError('give --user-data or --user-data-file, not both');
  const userData =
    userDataFile === undefined ? userDataText : await readTextFile(ctx, userDataFile, '--user-data-file');
  const securityGroupIds = listOption(ctx, 'security-group');
  const subnetIds = ctx.list('subnet');
  const tags = parseTags(ctx.list('tag'));
  const image = ctx.string('image');
  const keyName = ctx.string('key-name');
  const allowedUsers = ownersOption(ctx);
  const allocationStrategy = ctx.string('allocation-strategy');
  const maxPrice = ctx.string('max-price');
  const capacityPolicy = ctx.string('capacity-policy');
  const maxReplacements = wholeNumber(ctx, 'max-replacements', 0);
  const maxSpendText = ctx.string('max-spend');
  const maxSpend = maxSpendText === undefined ? undefined : Number(maxSpendText.replace(/^\$/, ''));
  if (maxSpend !== undefined && !(Number.isFinite(maxSpend) && maxSpend > 0))
    throw usageError(
      `--max-spend ${JSON.stringify(maxSpendText)} must be an amount in USD`,
      'for example --max-spend 25',
    );
  const replace = ctx.flag('replace-interrupted');
  if (maxReplacements !== undefined && !replace)
    throw usageError('--max-replacements goes with --replace-interrupted');
  return {
    name: ctx.name,
    pool: ctx.pool,
    ...(count === undefined ? {} : { count }),
    ...(instanceTypes.length === 0 ? {} : { instanceTypes }),
    ...(instanceRequirements === undefined ? {} : { instanceRequirements }),
    ...(spotFleetConfig === undefined && market.market === undefined
      ? { market: 'on-demand' as const }
      : market),
    ...(allocationStrategy === undefined ? {} : { allocationStrategy }),
    ...(maxPrice === undefined ? {} : { maxPrice }),
    ...(capacityPolicy === undefined ? {} : { capacityPolicy }),
    ...(spotFleetConfig === undefined ? {} : { spotFleetConfig }),
    ...(replace ? { replaceInterrupted: true } : {}),
    ...(maxReplacements === undefined ? {} : { maxReplacements }),
    ...(maxSpend === undefined ? {} : { maxSpend }),
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
  const owners = listOption(ctx, 'owner');
  if (ctx.flag('no-owner')) {
    if (owners.length > 0) throw usageError('give --owner or --no-owner, not both');
    return [];
  }
  if (ctx.list('owner').length > 0 && owners.length === 0)
    throw usageError('--owner needs a user name', 'for example --owner alice or --owner alice,bob');
  return owners.length === 0 ? undefined : owners;
};

/** How many instances a request asks for: its count, else the fleet config's TargetCapacity. */
export const requestedCount = (request: CreateRequest): number | undefined => {
  if (request.count !== undefined) return request.count;
  const target = Number(request.spotFleetConfig?.TargetCapacity);
  return Number.isInteger(target) && target > 0 ? target : undefined;
};

const what = (request: CreateRequest): string => {
  const count = requestedCount(request);
  const n = count === undefined ? 'the' : String(count);
  if (request.spotFleetConfig !== undefined && request.instanceTypes === undefined)
    return `${n} instance(s) as the Spot Fleet config describes`;
  const kinds =
    request.instanceTypes?.join(' or ') ??
    (request.instanceRequirements === undefined
      ? ''
      : `(${request.instanceRequirements.vCpus.min}+ vCPUs, ${request.instanceRequirements.memoryMiB.min / 1024}+ GiB${
          request.instanceRequirements.gpus?.min === undefined
            ? ''
            : `, ${request.instanceRequirements.gpus.min}+ GPUs`
        })`);
  const market =
    request.market === 'mixed'
      ? `instance(s), ${request.onDemandBaseCount ?? 0} on-demand and the rest spot,`
      : `${request.market ?? 'spot'} instance(s)`;
  return `${n} ${kinds} ${market}`;
};

/** "Estimated cost: at most $0.90 per hour, $0.75 for the lease (…)", when the table knows the types. */
export const estimatedCostText = (request: CreateRequest, prices: PriceTable = onDemandPrices): string => {
  const count = requestedCount(request);
  const hourly = highestHourly(request.instanceTypes ?? [], prices);
  if (count === undefined || hourly === undefined) return '';
  const perHour = hourly * count;
  const lease = perHour * (request.durationSeconds / 3600);
  const spot =
    request.market === 'spot' || request.market === 'mixed' ? ' (spot usually costs much less)' : '';
  return (
    ` Estimated cost: at most ${usd(perHour)} per hour, ${usd(lease)} for the whole lease${spot},` +
    ` at ${prices.region} on-demand list prices of ${prices.transcribed}.`
  );
};

/**
 * condor_annex's confirmation: "Will request 1 p2.xlarge on-demand instance(s) for 0.83 hours. Each
 * instance will terminate after being idle for 0.25 hours." Then the estimated cost, when the
 * bundled price table has every type (never a made-up number).
 */
export const confirmationText = (request: CreateRequest): string =>
  `Will request ${what(request)} for ${formatHours(request.durationSeconds)} hours. ` +
  `Each instance will terminate after being idle for ${formatHours(request.idleSeconds)} hours.` +
  (request.pool === 'default' ? '' : ` They will join pool ${request.pool}.`) +
  (request.allowedUsers === undefined
    ? ''
    : request.allowedUsers.length === 0
      ? ' They will run jobs of any user of the pool.'
      : ` They will run jobs of ${request.allowedUsers.join(', ')} only.`) +
  estimatedCostText(request);

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
  // A Spot Fleet config may give the count (TargetCapacity): the annex says what it asked for.
  const count = request.count ?? (await getDetail(ctx, request.name)).annex.requestedCount;
  if (ctx.flag('no-wait')) {
    detail = await getDetail(ctx, request.name);
    summary = `${request.name}: requested ${count} instance(s); follow it with annex status ${request.name} --watch.`;
  } else {
    const result = await waitWithProgress(ctx, request.name, count, new Set());
    detail = result.detail;
    summary = waitSummary(result, count, 'launched');
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
