// The node:net dialer against real sockets on 127.0.0.1 only.
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { failureOf, tcpDialer } from '../../../shared/net/tcp-dialer.ts';

const servers: Server[] = [];
const listen = async (): Promise<number> => {
  const server = createServer((socket) => socket.end());
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
};
/** A port nothing listens on: bound, read, closed. */
const closedPort = async (): Promise<number> => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
};

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('tcpDialer', () => {
  it('connects to a listening port and reports the time it took', async () => {
    const result = await tcpDialer.dial('127.0.0.1', await listen(), 2000);
    expect(result.reachable).toBe(true);
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
    expect(result.latencyMs).toBeLessThan(2000);
  });

  it('reports a closed port as refused', async () => {
    const result = await tcpDialer.dial('127.0.0.1', await closedPort(), 2000);
    expect(result).toMatchObject({ reachable: false, failure: 'refused' });
  });

  it('maps socket error codes to the closed set of failures', () => {
    expect(failureOf({ code: 'ENOTFOUND' })).toBe('dns');
    expect(failureOf({ code: 'EHOSTUNREACH' })).toBe('unreachable');
    expect(failureOf({ code: 'ETIMEDOUT' })).toBe('timeout');
    expect(failureOf({ code: 'EPROTO' })).toBe('other');
    expect(failureOf(new Error('x'))).toBe('other');
  });
});
