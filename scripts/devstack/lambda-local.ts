// A local stand-in for the one Lambda API call the control plane makes itself: Invoke
// (`POST /2015-03-31/functions/{name}/invocations`). moto's Lambda needs Docker to run code, so
// the dev stack answers Invoke here and runs the named function's real handler in this process,
// found from serverless.yml as the gateway finds its routes. `InvocationType: Event` is answered
// 202 at once and the handler runs afterwards, as Lambda queues an asynchronous invoke; its
// failures are logged (Lambda would retry per the function's maximumRetryAttempts; here, none).
// Point the SDK at it with AWS_ENDPOINT_URL_LAMBDA. Only 127.0.0.1; SigV4 is not checked here.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { moduleHandlerLoader, type HandlerLoader } from './gateway.ts';
import { readServerlessYml } from './serverless-config.ts';

export interface LocalLambdaOptions {
  stage: string;
  service?: string;
  port?: number;
  loadHandler?: HandlerLoader;
  /** Waits this long before running an asynchronous invoke (tests: a slow worker). */
  asyncDelayMs?: number;
  log?: (line: string) => void;
}

export interface LocalLambda {
  url: string;
  /** Resolves when every asynchronous invoke started so far has finished. */
  idle(): Promise<void>;
  /** Asynchronous invokes finished so far, and how each ended. */
  completed: { functionName: string; ok: boolean; error?: string }[];
  /** Changes the delay before asynchronous invokes run (tests: a slow worker). */
  setAsyncDelay(ms: number): void;
  stop(): Promise<void>;
}

/** The whole body of a request or answer. */
export const readAll = (request: IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.once('end', () => resolve(Buffer.concat(chunks)));
    request.once('error', reject);
  });

export async function startLocalLambda(options: LocalLambdaOptions): Promise<LocalLambda> {
  const log = options.log ?? (() => {});
  const load = options.loadHandler ?? moduleHandlerLoader();
  const config = readServerlessYml() as { service: string; functions: Record<string, { handler: string }> };
  const prefix = `${options.service ?? config.service}-${options.stage}-`;
  const running = new Set<Promise<void>>();
  const completed: LocalLambda['completed'] = [];
  let asyncDelayMs = options.asyncDelayMs ?? 0;

  const run = async (functionKey: string, payload: unknown): Promise<unknown> => {
    const def = config.functions[functionKey];
    if (def === undefined) throw new Error(`no function ${functionKey} in serverless.yml`);
    const handler = (await load(def.handler)) as unknown as (e: unknown, c: unknown) => Promise<unknown>;
    return handler(payload, { awsRequestId: randomUUID(), functionName: `${prefix}${functionKey}` });
  };

  const server = createServer((request, response) => {
    void (async () => {
      const m = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(request.url?.split('?')[0] ?? '');
      const body = await readAll(request);
      const name = decodeURIComponent(m?.[1] ?? '');
      const bare = name.includes(':function:')
        ? (name.slice(name.indexOf(':function:') + 10).split(':')[0] ?? '')
        : name;
      if (request.method !== 'POST' || m === null || !bare.startsWith(prefix)) {
        response.writeHead(404, {
          'content-type': 'application/json',
          'x-amzn-errortype': 'ResourceNotFoundException',
        });
        response.end(JSON.stringify({ Type: 'User', message: `Function not found: ${name}` }));
        return;
      }
      const functionKey = bare.slice(prefix.length);
      const payload: unknown = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
      const requestId = randomUUID();
      if (request.headers['x-amz-invocation-type'] === 'Event') {
        response.writeHead(202, { 'x-amzn-requestid': requestId });
        response.end();
        const job = (async () => {
          if (asyncDelayMs > 0) await new Promise((r) => setTimeout(r, asyncDelayMs));
          try {
            await run(functionKey, payload);
            completed.push({ functionName: bare, ok: true });
          } catch (e) {
            completed.push({ functionName: bare, ok: false, error: (e as Error).message });
            log(`${bare} (async) failed: ${(e as Error).message}`);
          }
        })();
        running.add(job);
        void job.finally(() => running.delete(job));
        return;
      }
      try {
        const result = await run(functionKey, payload);
        response.writeHead(200, { 'content-type': 'application/json', 'x-amzn-requestid': requestId });
        response.end(JSON.stringify(result ?? null));
      } catch (e) {
        response.writeHead(200, { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' });
        response.end(JSON.stringify({ errorType: (e as Error).name, errorMessage: (e as Error).message }));
      }
    })().catch((e: unknown) => {
      log(`local lambda error: ${(e as Error).message}`);
      if (!response.headersSent) response.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    completed,
    setAsyncDelay: (ms) => {
      asyncDelayMs = ms;
    },
    idle: async () => {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
    stop: async () => {
      await Promise.allSettled([...running]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
