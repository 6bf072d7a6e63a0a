// A local stand-in for Slack's side of the conversation: it receives what Annex posts to a
// response_url (`POST /response/<anything>`) and to chat.postMessage (`POST /api/chat.postMessage`,
// bot token checked), and shows everything it received (`GET /received`). 127.0.0.1 only.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackDelivery {
  /** `response` (a response_url) or `chat.postMessage`. */
  kind: 'response' | 'chat.postMessage';
  path: string;
  at: string;
  body: Record<string, unknown>;
}

export interface SlackStandIn {
  url: string;
  /** A fresh response_url under this stand-in. */
  responseUrl(id?: string): string;
  received: SlackDelivery[];
  /** Resolves with the first delivery that matches, or rejects after `timeoutMs`. */
  waitFor(match: (d: SlackDelivery) => boolean, timeoutMs?: number): Promise<SlackDelivery>;
  stop(): Promise<void>;
}

export async function startSlackStandIn(options: { botToken: string; port?: number }): Promise<SlackStandIn> {
  const received: SlackDelivery[] = [];
  const waiters = new Set<() => boolean>();
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const path = request.url ?? '/';
      const send = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      if (request.method === 'GET' && path.startsWith('/received')) return send(200, { received });
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        return send(400, { ok: false, error: 'invalid_json' });
      }
      if (request.method === 'POST' && path.startsWith('/response/')) {
        received.push({ kind: 'response', path, at: new Date().toISOString(), body });
        send(200, { ok: true });
      } else if (request.method === 'POST' && path === '/api/chat.postMessage') {
        if (request.headers.authorization !== `Bearer ${options.botToken}`)
          return send(200, { ok: false, error: 'invalid_auth' });
        received.push({ kind: 'chat.postMessage', path, at: new Date().toISOString(), body });
        send(200, { ok: true, channel: body.channel, ts: `${Date.now() / 1000}` });
      } else {
        return send(404, { ok: false, error: 'unknown_method' });
      }
      for (const wake of waiters) wake();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let n = 0;
  return {
    url,
    received,
    responseUrl: (id) => `${url}/response/${id ?? `r${++n}-${Date.now()}`}`,
    waitFor: (match, timeoutMs = 15_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = received.find(match);
          if (found === undefined) return false;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the Slack stand-in received nothing matching within ${timeoutMs} ms`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
