// Section 3: API latency against the same AWS SDK traffic made directly. Both paths run in this
// process against the same emulators and share the handlers' SDK clients (the gateway imports the
// same modules): (a) a signed HTTP request through the local gateway (SigV4 signing and
// verification, Lambda event, middy, zod validation, views, JSON); (b) the domain use case called
// with the deps the handler would build. One of each per operation per round, alternating which
// goes first. A third path, for diagnosis only, invokes the same handler in-process with a
// synthetic API Gateway event (middy, zod, views, JSON; no HTTP, no SigV4); it always runs between
// the other two.
import type { APIGatewayProxyEventV2WithIAMAuthorizer, Context } from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Caller } from '../../shared/domain/model.ts';
import { startEmulators, type Emulators } from '../devstack/emulators.ts';
import { startLocalStack, type LocalStack } from '../devstack/stack.ts';
import { redirectStdout } from './local.ts';
import { median, percentile } from './stats.ts';

export const OPERATIONS = ['create', 'get', 'delete'] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface OpStats {
  samples: number[];
  p50: number;
  p95: number;
}

export interface LatencyResult {
  op: Operation;
  label: string;
  http: OpStats;
  direct: OpStats;
  /** Diagnostic: the handler invoked in-process with a synthetic event. */
  handler: OpStats;
  /** p50(http) / p50(direct). */
  ratioP50: number;
  /** p95(http) / p95(direct). */
  ratioP95: number;
  /** Medians of the per-round differences: http − handler (HTTP + SigV4) and handler − direct. */
  httpLayerMs: number;
  handlerLayerMs: number;
}

export interface LatencySection {
  roundsWanted: number;
  rounds: number;
  warmupRounds: number;
  budgetMs: number;
  elapsedMs: number;
  results: LatencyResult[];
  /** POST /v1/annexes with an invalid body: signing, HTTP, verification, middy, zod, no AWS call. */
  edge: OpStats;
  /** Final annex states seen on each path (every create should be RUNNING, delete TERMINATED). */
  states: Record<string, number>;
  handlerLogFile: string;
  handlerLogLines: number;
}

const labels: Record<Operation, string> = {
  create: 'POST /v1/annexes (1 × m5.large)',
  get: 'GET /v1/annexes/{name}',
  delete: 'DELETE /v1/annexes/{name}',
};

const ACCOUNT = '123456789012';

/** An API Gateway HTTP API (payload 2.0) event as the gateway builds it for an aws_iam route. */
function apiEvent(
  principalArn: string,
  accessKeyId: string,
  method: string,
  path: string,
  routePath: string,
  pathParameters?: Record<string, string>,
  body?: unknown,
): APIGatewayProxyEventV2WithIAMAuthorizer {
  const now = new Date();
  const routeKey = `${method} ${routePath}`;
  const userId = `AIDA${accessKeyId.slice(4)}`;
  return {
    version: '2.0',
    routeKey,
    rawPath: path,
    rawQueryString: '',
    headers: {
      host: 'localhost',
      'user-agent': 'annex-bench',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    requestContext: {
      accountId: ACCOUNT,
      apiId: 'bench',
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'annex-bench' },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: now.toISOString(),
      timeEpoch: now.getTime(),
      authorizer: {
        iam: {
          accessKey: accessKeyId,
          accountId: ACCOUNT,
          callerId: userId,
          cognitoIdentity: null,
          principalOrgId: null as unknown as string,
          userArn: principalArn,
          userId,
        },
      },
    },
    ...(pathParameters === undefined ? {} : { pathParameters }),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    isBase64Encoded: false,
  };
}

function lambdaContext(functionName: string): Context {
  const deadline = Date.now() + 28_000;
  const unsupported = (): never => {
    throw new Error('not supported');
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'bench',
    getRemainingTimeInMillis: () => deadline - Date.now(),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}

/** The median of per-round differences a[i] − b[i] (the two lists are paired by round). */
const pairedMedian = (a: readonly number[], b: readonly number[]): number =>
  median(a.map((value, i) => value - (b[i] ?? Number.NaN)));

const stats = (samples: number[]): OpStats => ({
  samples,
  p50: median(samples),
  p95: percentile(samples, 95),
});

const expectStatus = (what: string, status: number, wanted: number, body: unknown): void => {
  if (status !== wanted)
    throw new Error(`${what}: HTTP ${status}, expected ${wanted}: ${JSON.stringify(body)}`);
};

export async function runLatencySection(
  log: (line: string) => void,
  handlerLogFile: string,
  { rounds = 40, warmupRounds = 2, budgetMs = 120_000 } = {},
): Promise<LatencySection> {
  let emulators: Emulators | undefined;
  let stack: LocalStack | undefined;
  let section: LatencySection | undefined;
  const redirect = redirectStdout(handlerLogFile);
  const gatewayLog = (line: string): void => {
    process.stdout.write(`[gateway] ${line}\n`);
  };
  try {
    log('latency: starting emulators (DynamoDB Local, moto)');
    emulators = await startEmulators({ log: (line) => log(`emulators: ${line}`) });
    log('latency: starting the local stack');
    stack = await startLocalStack({
      dynamoEndpoint: emulators.dynamoEndpoint,
      motoEndpoint: emulators.motoEndpoint,
      stage: 'bench',
      maxAttempts: 1,
      log: gatewayLog,
    });
    // Imported here, not at the top, so a source file broken mid-edit fails this section only. The
    // gateway imports the same module URLs, so both paths share one module instance (and clients).
    const [
      { handler: createHandler },
      { handler: getHandler },
      { handler: deleteHandler },
      { launchDeps, terminateDeps },
      { readDeps },
      { createAnnex },
      { deleteAnnex },
      { getAnnexDetail },
    ] = await Promise.all([
      import('../../handlers/annex-create.ts'),
      import('../../handlers/annex-get.ts'),
      import('../../handlers/annex-delete.ts'),
      import('../../shared/aws/deps-ec2.ts'),
      import('../../shared/aws/deps.ts'),
      import('../../shared/domain/annex-create.ts'),
      import('../../shared/domain/annex-end.ts'),
      import('../../shared/domain/annex-read.ts'),
    ]);
    const alice = stack.users.find((u) => u.name === 'alice');
    if (alice === undefined) throw new Error('the local stack has no user alice');
    const api = stack.as('alice');
    const caller: Caller = { principalArn: alice.principalArn, admin: false };

    const http: Record<Operation, (name: string) => Promise<string>> = {
      create: async (name) => {
        const res = await api.request<{ annex?: { state?: string } }>('POST', '/v1/annexes', {
          name,
          count: 1,
          instanceTypes: ['m5.large'],
        });
        expectStatus(`POST /v1/annexes ${name}`, res.status, 201, res.body);
        return res.body.annex?.state ?? 'unknown';
      },
      get: async (name) => {
        const res = await api.request<{ annex?: { state?: string } }>('GET', `/v1/annexes/${name}`);
        expectStatus(`GET /v1/annexes/${name}`, res.status, 200, res.body);
        return res.body.annex?.state ?? 'unknown';
      },
      delete: async (name) => {
        const res = await api.request<{ annex?: { state?: string } }>('DELETE', `/v1/annexes/${name}`);
        expectStatus(`DELETE /v1/annexes/${name}`, res.status, 202, res.body);
        return res.body.annex?.state ?? 'unknown';
      },
    };
    const direct: Record<Operation, (name: string) => Promise<string>> = {
      create: async (name) => {
        const { annex } = await createAnnex(launchDeps(), caller, {
          name,
          pool: 'default',
          count: 1,
          instanceTypes: ['m5.large'],
          market: 'on-demand',
        });
        return annex.state;
      },
      get: async (name) => (await getAnnexDetail(readDeps(), caller, { name })).annex.state,
      delete: async (name) => (await deleteAnnex(terminateDeps(), caller, { name })).state,
    };
    const invoked = async (
      what: string,
      wanted: number,
      run: (event: APIGatewayProxyEventV2WithIAMAuthorizer, context: Context) => Promise<unknown>,
      event: APIGatewayProxyEventV2WithIAMAuthorizer,
      functionName: string,
    ): Promise<string> => {
      const result = (await run(event, lambdaContext(functionName))) as {
        statusCode?: number;
        body?: string;
      };
      const body = JSON.parse(result.body ?? '{}') as { annex?: { state?: string } };
      expectStatus(`${what} (in-process handler)`, result.statusCode ?? 0, wanted, body);
      return body.annex?.state ?? 'unknown';
    };
    const event = (method: string, path: string, routePath: string, name?: string, body?: unknown) =>
      apiEvent(
        alice.principalArn,
        alice.accessKeyId,
        method,
        path,
        routePath,
        name === undefined ? undefined : { name },
        body,
      );
    const viaHandler: Record<Operation, (name: string) => Promise<string>> = {
      create: (name) =>
        invoked(
          `POST /v1/annexes ${name}`,
          201,
          (e, c) => createHandler(e, c),
          event('POST', '/v1/annexes', '/v1/annexes', undefined, {
            name,
            count: 1,
            instanceTypes: ['m5.large'],
          }),
          'annex-bench-annexCreate',
        ),
      get: (name) =>
        invoked(
          `GET /v1/annexes/${name}`,
          200,
          (e, c) => getHandler(e, c),
          event('GET', `/v1/annexes/${name}`, '/v1/annexes/{name}', name),
          'annex-bench-annexGet',
        ),
      delete: (name) =>
        invoked(
          `DELETE /v1/annexes/${name}`,
          202,
          (e, c) => deleteHandler(e, c),
          event('DELETE', `/v1/annexes/${name}`, '/v1/annexes/{name}', name),
          'annex-bench-annexDelete',
        ),
    };
    const edge = async (): Promise<void> => {
      const res = await api.request('POST', '/v1/annexes', {});
      expectStatus('POST /v1/annexes {}', res.status, 400, res.body);
    };

    const samples = {
      http: { create: [] as number[], get: [] as number[], delete: [] as number[] },
      handler: { create: [] as number[], get: [] as number[], delete: [] as number[] },
      direct: { create: [] as number[], get: [] as number[], delete: [] as number[] },
    };
    const paths = { http, handler: viaHandler, direct };
    const edgeSamples: number[] = [];
    const states: Record<string, number> = {};
    const time = async (fn: () => Promise<string | void>): Promise<{ ms: number; state: string | void }> => {
      const started = performance.now();
      const state = await fn();
      return { ms: performance.now() - started, state };
    };

    const round = async (index: number, record: boolean): Promise<void> => {
      const names = { http: `bench-h-${index}`, handler: `bench-i-${index}`, direct: `bench-d-${index}` };
      const order =
        index % 2 === 0 ? (['http', 'handler', 'direct'] as const) : (['direct', 'handler', 'http'] as const);
      for (const op of OPERATIONS) {
        for (const path of order) {
          const fn = paths[path][op];
          const { ms, state } = await time(() => fn(names[path]));
          if (record) {
            samples[path][op].push(ms);
            const key = `${path} ${op} → ${String(state)}`;
            states[key] = (states[key] ?? 0) + 1;
          }
        }
      }
      const probe = await time(edge);
      if (record) edgeSamples.push(probe.ms);
    };

    log(`latency: ${warmupRounds} warm-up round(s) (loads the handler modules)`);
    for (let w = 0; w < warmupRounds; w++) await round(-1 - w, false);
    const started = Date.now();
    let done = 0;
    while (done < rounds && Date.now() - started < budgetMs) {
      await round(done, true);
      done++;
      if (done % 10 === 0)
        log(`latency: ${done}/${rounds} rounds, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
    const elapsedMs = Date.now() - started;
    if (done < rounds) log(`latency: time budget reached after ${done} rounds`);

    const results = OPERATIONS.map((op): LatencyResult => {
      const h = stats(samples.http[op]);
      const d = stats(samples.direct[op]);
      return {
        op,
        label: labels[op],
        http: h,
        direct: d,
        handler: stats(samples.handler[op]),
        ratioP50: h.p50 / d.p50,
        ratioP95: h.p95 / d.p95,
        httpLayerMs: pairedMedian(samples.http[op], samples.handler[op]),
        handlerLayerMs: pairedMedian(samples.handler[op], samples.direct[op]),
      };
    });
    for (const r of results) {
      log(
        `latency ${r.op}: http p50 ${r.http.p50.toFixed(1)} ms, direct p50 ${r.direct.p50.toFixed(1)} ms, ` +
          `ratio ${r.ratioP50.toFixed(2)}×`,
      );
    }
    section = {
      roundsWanted: rounds,
      rounds: done,
      warmupRounds,
      budgetMs,
      elapsedMs,
      results,
      edge: stats(edgeSamples),
      states,
      handlerLogFile,
      handlerLogLines: 0,
    };
    return section;
  } finally {
    try {
      if (stack !== undefined) await stack.stop();
    } finally {
      if (emulators !== undefined) {
        log('latency: stopping emulators');
        await emulators.stop();
      }
      const lines = redirect.restore();
      if (section !== undefined) section.handlerLogLines = lines;
    }
  }
}
