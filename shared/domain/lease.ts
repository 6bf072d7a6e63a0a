/** Lease rules: the state machine, lease arithmetic and the identifiers derived from a lease. */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { conflict, limitExceeded, validationError } from './errors.ts';
import type { Annex, AnnexState, LaunchSpec } from './model.ts';

/** condor_annex's defaults: a 50-minute lease, 15 minutes of idleness. */
export const DEFAULT_DURATION_SECONDS = 3000;
export const DEFAULT_IDLE_SECONDS = 900;
export const MIN_DURATION_SECONDS = 60;

const TRANSITIONS: Record<AnnexState, readonly AnnexState[]> = {
  REQUESTED: ['LAUNCHING', 'TERMINATING', 'FAILED'],
  LAUNCHING: ['RUNNING', 'TERMINATING', 'FAILED'],
  RUNNING: ['LAUNCHING', 'RUNNING', 'TERMINATING'],
  TERMINATING: ['TERMINATED', 'FAILED'],
  TERMINATED: [],
  FAILED: [],
};

export const canTransition = (from: AnnexState, to: AnnexState): boolean => TRANSITIONS[from].includes(to);

export const assertTransition = (annex: Pick<Annex, 'name' | 'state'>, to: AnnexState): void => {
  if (!canTransition(annex.state, to)) {
    throw conflict(`annex ${annex.name} is ${annex.state} and cannot become ${to}`);
  }
};

/** A live annex holds its name, may have instances, and is watched by the sweep. */
export const isLive = (state: AnnexState): boolean => state !== 'TERMINATED' && state !== 'FAILED';

export const isEnded = (state: AnnexState): boolean => !isLive(state);

/** Expiry as an ISO 8601 UTC instant with millisecond precision (sortable as a string). */
export const toIso = (date: Date): string => date.toISOString();

export const addSeconds = (date: Date, seconds: number): Date => new Date(date.getTime() + seconds * 1000);

/**
 * EventBridge Scheduler's documented precision: a one-time `at(12:00:00)` schedule (flexible
 * window off) fires somewhere in 12:00:00–12:00:59.
 */
export const SCHEDULER_PRECISION_SECONDS = 60;

/**
 * How long the expire function may wait for the exact second of an expiry: a schedule names a
 * minute that ends at or before the expiry, so it fires less than two minutes early.
 */
export const EXPIRY_MAX_WAIT_SECONDS = 2 * SCHEDULER_PRECISION_SECONDS;

/** A schedule is written this far ahead of the minute it names, or it names the next one. */
const SCHEDULE_AHEAD_MS = 5_000;

/**
 * The minute (epoch ms, on a minute boundary) an expiry schedule names: the latest one whose whole
 * firing window ends by the expiry, so the expire function is invoked 0–120 s early and waits for
 * the exact second. A lease that ends less than about two minutes after its schedule is written
 * gets the earliest minute still ahead instead; that one may fire up to a minute after the expiry.
 */
export const expiryFireMinute = (expiresAt: string, now: Date): number => {
  const minute = SCHEDULER_PRECISION_SECONDS * 1000;
  const latest = Math.floor((Date.parse(expiresAt) - minute) / minute) * minute;
  const earliest = Math.ceil((now.getTime() + SCHEDULE_AHEAD_MS) / minute) * minute;
  return Math.max(latest, earliest);
};

/**
 * The new expiry for a lease of `durationSeconds` from `now`, or an explicit `expiresAt`, checked
 * against the minimum and the configured maximum. `field` names the request field on failure.
 */
export const leaseExpiry = (
  now: Date,
  request: { durationSeconds?: number; expiresAt?: string },
  maxDurationSeconds: number,
): { expiresAt: Date; durationSeconds: number } => {
  let expiresAt: Date;
  let field: string;
  if (request.expiresAt !== undefined) {
    field = 'expiresAt';
    expiresAt = new Date(request.expiresAt);
    if (Number.isNaN(expiresAt.getTime())) throw validationError(field, 'must be an ISO 8601 time');
  } else {
    field = 'durationSeconds';
    expiresAt = addSeconds(now, request.durationSeconds ?? DEFAULT_DURATION_SECONDS);
  }
  const durationSeconds = Math.round((expiresAt.getTime() - now.getTime()) / 1000);
  if (durationSeconds < MIN_DURATION_SECONDS) {
    throw validationError(field, `the lease must last at least ${MIN_DURATION_SECONDS} seconds from now`);
  }
  if (durationSeconds > maxDurationSeconds) {
    throw limitExceeded(`${field}: the lease may last at most ${maxDurationSeconds} seconds from now`, field);
  }
  return { expiresAt, durationSeconds };
};

const hex = (value: string): string => createHash('sha256').update(value).digest('hex');

/**
 * An annex id. With an idempotency key it is derived from the stage, the owner and the key, so the
 * same request always lands on the same annex (and the same EC2 client tokens), and the same key
 * used against two stages of one account gives two annexes with distinct client tokens.
 */
export const annexIdFor = (stage: string, owner: string, idempotencyKey?: string): string =>
  idempotencyKey === undefined
    ? `ax-${randomBytes(10).toString('hex')}`
    : `ax-${hex(`${stage}\n${owner}\n${idempotencyKey}`).slice(0, 20)}`;

/** A new annex's launch secret: random, kept in the lease table only, never shown or tagged. */
export const newLaunchSecret = (): string => randomBytes(16).toString('hex');

/**
 * EC2 ClientToken for one launch attempt of one batch (≤ 64 ASCII characters). With the annex's
 * launch secret it ends in an HMAC of the annex, batch and attempt: only Annex can compute it, so
 * an instance (or fleet) carrying it was launched by Annex for that batch (see provenance.ts). An
 * annex created before launch secrets existed has the bare, guessable form.
 */
export const clientToken = (
  annexId: string,
  batch: number,
  attempt: number,
  launchSecret?: string,
): string => {
  const bare = `${annexId}-b${batch}-a${attempt}`;
  if (launchSecret === undefined) return bare;
  const mac = createHmac('sha256', launchSecret).update(bare).digest('hex').slice(0, 24);
  return `${bare}-${mac}`;
};

/** Whether `token` is the client token of some launch attempt of this annex's `batch`. */
export const isBatchClientToken = (
  annex: { id: string; launchSecret?: string },
  batch: number,
  token: string | undefined,
): boolean => {
  if (token === undefined) return false;
  const prefix = `${annex.id}-b${batch}-a`;
  if (!token.startsWith(prefix)) return false;
  const attempt = /^(0|[1-9]\d{0,3})(?:-|$)/.exec(token.slice(prefix.length))?.[1];
  if (attempt === undefined) return false;
  return token === clientToken(annex.id, batch, Number(attempt), annex.launchSecret);
};

/** Stable hash of a request body, ignoring key order. */
export const requestHash = (value: unknown): string => hex(stableStringify(value));

const stableStringify = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
};

/** Short, stable, non-reversible label for a principal (used in parameter paths, never as a secret). */
export const principalLabel = (principalArn: string): string => hex(principalArn).slice(0, 16);

/**
 * Whether a launch goes through EC2 Fleet from the annex's launch template: spot, mixed, or
 * hardware needs instead of types. Plain on-demand with instance types uses RunInstances.
 */
export const launchesThroughFleet = (spec: Pick<LaunchSpec, 'market' | 'instanceTypes'>): boolean =>
  spec.market !== 'on-demand' || spec.instanceTypes.length === 0;
