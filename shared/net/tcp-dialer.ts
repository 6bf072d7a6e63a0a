/** The Dialer port on node:net: one TCP connection, closed as soon as it is established. */
import { connect } from 'node:net';
import type { DialFailure, DialResult, Dialer } from '../domain/pool-check.ts';

const FAILURES: Record<string, DialFailure> = {
  ECONNREFUSED: 'refused',
  ECONNRESET: 'refused',
  ENOTFOUND: 'dns',
  EAI_AGAIN: 'dns',
  EAI_FAIL: 'dns',
  EAI_NONAME: 'dns',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  EHOSTDOWN: 'unreachable',
  ETIMEDOUT: 'timeout',
};

export const failureOf = (error: unknown): DialFailure =>
  FAILURES[String((error as { code?: unknown }).code)] ?? 'other';

export const tcpDialer: Dialer = {
  dial: (host, port, timeoutMs) =>
    new Promise<DialResult>((resolve) => {
      const started = performance.now();
      const elapsed = () => performance.now() - started;
      const socket = connect({ host, port });
      // One timer for the whole attempt, name lookup included (the socket's own timeout is idle time).
      const timer = setTimeout(
        () => finish({ reachable: false, latencyMs: elapsed(), failure: 'timeout' }),
        timeoutMs,
      );
      let done = false;
      function finish(result: DialResult) {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(result);
      }
      socket.once('connect', () => finish({ reachable: true, latencyMs: elapsed() }));
      socket.once('error', (e) => finish({ reachable: false, latencyMs: elapsed(), failure: failureOf(e) }));
    }),
};
