// A counting proxy in front of an emulator on 127.0.0.1, for the cost section: every request the
// handlers send passes through it unchanged, except that DynamoDB requests ask for
// `ReturnConsumedCapacity: TOTAL` (which the adapters never send), so DynamoDB Local reports the
// read and write request units each call consumes, as an on-demand table would bill them. The
// answer is passed back as it came (the extra ConsumedCapacity field is ignored by the SDK).
// Every read counts at least half a request unit, AWS's minimum. For moto it counts operations (X-Amz-Target, the query protocol's Action, or the REST path) and
// the requests SSM makes to KMS for a SecureString (one Encrypt per put, one Decrypt per read with
// decryption).
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { readAll } from '../devstack/lambda-local.ts';
import type { AddressInfo } from 'node:net';

export interface WireCounts {
  requests: number;
  /** Operation → calls (DynamoDB, SSM, KMS by target; EC2 by Action; Scheduler by REST verb). */
  operations: Record<string, number>;
  readUnits: number;
  writeUnits: number;
  /** KMS requests SSM makes on the caller's behalf for SecureString parameters. */
  kmsRequests: number;
}

export interface WireMeter {
  url: string;
  counts: WireCounts;
  /** A copy of the counts now, to subtract later (`diff`). */
  snapshot(): WireCounts;
  stop(): Promise<void>;
}

const DYNAMO_READS = new Set(['GetItem', 'Query', 'Scan', 'BatchGetItem', 'TransactGetItems']);
const DYNAMO_WRITES = new Set([
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchWriteItem',
  'TransactWriteItems',
]);

const emptyCounts = (): WireCounts => ({
  requests: 0,
  operations: {},
  readUnits: 0,
  writeUnits: 0,
  kmsRequests: 0,
});

export const diff = (after: WireCounts, before: WireCounts): WireCounts => ({
  requests: after.requests - before.requests,
  operations: Object.fromEntries(
    Object.entries(after.operations)
      .map(([k, n]) => [k, n - (before.operations[k] ?? 0)] as const)
      .filter(([, n]) => n > 0),
  ),
  readUnits: after.readUnits - before.readUnits,
  writeUnits: after.writeUnits - before.writeUnits,
  kmsRequests: after.kmsRequests - before.kmsRequests,
});

const capacityOf = (body: unknown): number => {
  const consumed = (body as { ConsumedCapacity?: unknown }).ConsumedCapacity;
  const list = Array.isArray(consumed) ? consumed : consumed === undefined ? [] : [consumed];
  return list.reduce(
    (sum: number, c) => sum + Number((c as { CapacityUnits?: number }).CapacityUnits ?? 0),
    0,
  );
};

const operationOf = (request: IncomingMessage, body: Buffer): string => {
  const target = request.headers['x-amz-target'];
  if (typeof target === 'string') return target;
  const action = /(?:^|&)Action=([^&]+)/.exec(body.toString('utf8'))?.[1];
  if (action !== undefined) return `ec2.${action}`;
  const path = (request.url ?? '').split('?')[0] ?? '';
  return `${request.method ?? 'GET'} /${path.split('/')[1] ?? ''}`;
};

export async function startWireMeter(target: string, kind: 'dynamodb' | 'moto'): Promise<WireMeter> {
  const upstream = new URL(target);
  const counts = emptyCounts();
  const server = createServer((request, response) => {
    void (async () => {
      let body = await readAll(request);
      const operation = operationOf(request, body);
      counts.requests++;
      counts.operations[operation] = (counts.operations[operation] ?? 0) + 1;
      const op = operation.replace(/^DynamoDB_\d+\./, '');
      const dynamoMetered = kind === 'dynamodb' && (DYNAMO_READS.has(op) || DYNAMO_WRITES.has(op));
      if (dynamoMetered) {
        body = Buffer.from(
          JSON.stringify({
            ...(JSON.parse(body.toString('utf8')) as object),
            ReturnConsumedCapacity: 'TOTAL',
          }),
        );
      }
      if (kind === 'moto' && operation.startsWith('AmazonSSM.')) {
        const input = JSON.parse(body.toString('utf8') || '{}') as {
          Type?: string;
          WithDecryption?: boolean;
        };
        if (operation === 'AmazonSSM.PutParameter' && input.Type === 'SecureString') counts.kmsRequests++;
        if (/GetParameters?$/.test(operation) && input.WithDecryption === true) counts.kmsRequests++;
      }
      const headers = { ...request.headers, host: upstream.host, 'content-length': String(body.length) };
      const forwarded = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: request.method,
          path: request.url,
          headers,
        },
        (answer) => {
          void readAll(answer).then((out) => {
            if (dynamoMetered && (answer.statusCode ?? 500) < 300) {
              const units = capacityOf(JSON.parse(out.toString('utf8')));
              // DynamoDB Local reports 0 for a read that finds nothing; AWS bills every read at
              // least half a read request unit (one eventually consistent 4 KB read).
              if (DYNAMO_READS.has(op)) counts.readUnits += Math.max(units, 0.5);
              else counts.writeUnits += units;
            }
            response.writeHead(answer.statusCode ?? 502, answer.headers);
            response.end(out);
          });
        },
      );
      forwarded.once('error', (e) => {
        response.writeHead(502).end(String(e));
      });
      forwarded.end(body);
    })().catch((e: unknown) => {
      if (!response.headersSent) response.writeHead(500).end(String(e));
    });
  });
  // Longer than any pause between a client's requests: the SDK reuses its connections, and a socket
  // the proxy closed as idle just as the client sent on it would fail that call (ECONNRESET).
  server.keepAliveTimeout = 10 * 60_000;
  server.headersTimeout = server.keepAliveTimeout + 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    snapshot: () => structuredClone(counts),
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
