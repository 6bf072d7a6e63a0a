/**
 * Can the cloud reach a pool's collector? The control plane opens a TCP connection to the
 * collector's host and port (as an annex instance would) and reports whether it connected and how
 * long that took. Nothing is sent on the connection.
 */
import { notFound } from './errors.ts';
import { toIso } from './lease.ts';
import type { Caller, PoolScope } from './model.ts';
import type { Clock, LeaseStore } from './ports.ts';

/** Why a connection failed, as a closed set: never a raw error message from the network stack. */
export type DialFailure = 'refused' | 'timeout' | 'dns' | 'unreachable' | 'other';

export type DialResult =
  { reachable: true; latencyMs: number } | { reachable: false; latencyMs: number; failure: DialFailure };

/** The port in front of the network: one TCP connection attempt, closed as soon as it is made. */
export interface Dialer {
  dial(host: string, port: number, timeoutMs: number): Promise<DialResult>;
}

export interface PoolCheckDeps {
  store: Pick<LeaseStore, 'getPool'>;
  dialer: Dialer;
  clock: Clock;
}

export interface PoolCheck {
  pool: string;
  scope: PoolScope;
  collectorHost: string;
  collectorPort: number;
  reachable: boolean;
  /** Milliseconds until the connection was made, refused or given up (name lookup included). */
  latencyMs: number;
  timeoutMs: number;
  checkedAt: string;
  error?: { code: DialFailure; message: string };
}

/** Long enough for a collector across the world, short enough for API Gateway's 30 s limit. */
export const POOL_CHECK_TIMEOUT_MS = 5000;

const failureMessage = (failure: DialFailure, timeoutMs: number): string =>
  ({
    refused: 'the connection was refused: nothing listens on that port, or a firewall rejects it',
    timeout: `no answer within ${timeoutMs} ms: a firewall or security group may drop the traffic`,
    dns: 'the host name does not resolve',
    unreachable: 'no route to the host',
    other: 'the connection failed',
  })[failure];

/** Dials the collector of a pool the caller may use (their own private pool or a shared one). */
export const checkPool = async (
  deps: PoolCheckDeps,
  caller: Caller,
  name: string,
  timeoutMs: number = POOL_CHECK_TIMEOUT_MS,
): Promise<PoolCheck> => {
  const pool = await deps.store.getPool(name, caller.principalArn);
  if (pool === undefined) throw notFound(`no pool named ${name} is registered for you`);
  const checkedAt = toIso(deps.clock.now());
  const result = await deps.dialer.dial(pool.collectorHost, pool.collectorPort, timeoutMs);
  return {
    pool: pool.name,
    scope: pool.scope,
    collectorHost: pool.collectorHost,
    collectorPort: pool.collectorPort,
    reachable: result.reachable,
    latencyMs: Math.round(result.latencyMs),
    timeoutMs,
    checkedAt,
    ...(result.reachable
      ? {}
      : { error: { code: result.failure, message: failureMessage(result.failure, timeoutMs) } }),
  };
};
