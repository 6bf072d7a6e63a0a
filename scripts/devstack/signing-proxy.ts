// A SigV4-signing reverse proxy on 127.0.0.1, for clients that cannot sign (an HTTP fuzzer): each
// request that carries an Authorization header (any value) is signed with a dev caller's keys, as an
// SDK would sign it, and forwarded to the local gateway; one without is forwarded unsigned. The
// answer is passed back unchanged.
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DevUser } from './dev-users.ts';
import { signRequest } from './gateway.ts';

export interface SigningProxy {
  url: string;
  stop(): Promise<void>;
}

export interface SigningProxyOptions {
  /** The gateway to forward to, e.g. `http://127.0.0.1:8787`. */
  target: string;
  region: string;
  /** Whose keys sign a request, by its path (say, the instance routes with an instance's credentials). */
  signerFor: (path: string) => DevUser;
  port?: number;
}

// Hop-by-hop and framing headers are the proxy's own; the signature and its inputs are replaced.
const NOT_FORWARDED = new Set([
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'authorization',
  'x-amz-date',
  'x-amz-security-token',
  'x-amz-content-sha256',
]);

const readBody = (request: IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.once('end', () => resolve(Buffer.concat(chunks)));
    request.once('error', reject);
  });

/** Sends one request as given (any method, unlike fetch) and passes the answer back. */
const send = (
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: Buffer,
  response: ServerResponse,
): Promise<void> =>
  new Promise((resolve, reject) => {
    const outgoing = request(url, { method, headers }, (answer) => {
      const answerHeaders = Object.fromEntries(
        Object.entries(answer.headers).filter(([name]) => !NOT_FORWARDED.has(name)),
      );
      response.writeHead(answer.statusCode ?? 502, answerHeaders);
      answer.pipe(response);
      answer.once('end', resolve);
      answer.once('error', reject);
    });
    outgoing.once('error', reject);
    outgoing.end(body);
  });

export async function startSigningProxy(options: SigningProxyOptions): Promise<SigningProxy> {
  const server = createServer((incoming, response) => {
    const forward = async () => {
      const body = await readBody(incoming);
      const headers: Record<string, string> = {};
      for (const [name, values] of Object.entries(incoming.headersDistinct)) {
        if (values !== undefined && !NOT_FORWARDED.has(name)) headers[name] = values.join(',');
      }
      const method = incoming.method ?? 'GET';
      const url = new URL(`${options.target}${incoming.url ?? '/'}`);
      // A request sent without credentials goes on unsigned, so it is refused as API Gateway would.
      if (incoming.headers.authorization === undefined) {
        return send(url, method, { ...headers, 'content-length': String(body.length) }, body, response);
      }
      const signer = options.signerFor(url.pathname);
      const signed = await signRequest(url, {
        method,
        ...(body.length === 0 ? {} : { body }),
        headers,
        accessKeyId: signer.accessKeyId,
        secretAccessKey: signer.secretAccessKey,
        ...(signer.sessionToken === undefined ? {} : { sessionToken: signer.sessionToken }),
        region: options.region,
      });
      return send(
        signed.url,
        signed.method,
        { ...signed.headers, 'content-length': String(body.length) },
        body,
        response,
      );
    };
    forward().catch((error: unknown) => {
      // A request the proxy cannot sign or send is the proxy's failure, never the API's answer.
      if (!response.headersSent) response.writeHead(502, { 'content-type': 'text/plain' });
      response.end(`signing proxy: ${error instanceof Error ? error.message : String(error)}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
