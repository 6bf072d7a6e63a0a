/** Wiring for the pool check: the lease table (to find the pool) and a TCP dialer. */
import type { PoolCheckDeps } from '../domain/pool-check.ts';
import { tcpDialer } from '../net/tcp-dialer.ts';
import { readDeps } from './deps.ts';

let deps: PoolCheckDeps | undefined;

export const poolCheckDeps = (): PoolCheckDeps => {
  if (deps === undefined) {
    const { store, clock } = readDeps();
    deps = { store, clock, dialer: tcpDialer };
  }
  return deps;
};
