// Meters the local stack's function invocations as Lambda bills them: wrap the HandlerLoader the
// local runners use (the gateway's routes, the dev runner's schedules, rate rules and events, and
// the local Invoke API all take one), and every invocation is recorded with its function (from
// serverless.yml's `handler`), its duration and billed duration (rounded up to the millisecond, as
// Lambda bills), the function's memory size (its own `memorySize` or the provider's), and the
// bytes of log lines it wrote to stdout (attributed through AsyncLocalStorage, so concurrent
// invocations are told apart). Measurements only: prices are applied elsewhere.
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import type { HandlerLoader } from './gateway.ts';
import { readServerlessYml } from './serverless-config.ts';

export interface MeteredInvocation {
  functionKey: string;
  memoryMb: number;
  durationMs: number;
  /** Duration rounded up to the next whole millisecond. */
  billedMs: number;
  ok: boolean;
  /** Bytes of stdout (the function's log lines) written during the invocation. */
  logBytes: number;
}

interface ServerlessFunctions {
  provider: { memorySize?: number };
  functions: Record<string, { handler: string; memorySize?: number }>;
}

/** Lambda's default memory size when neither the function nor the provider sets one. */
const LAMBDA_DEFAULT_MEMORY_MB = 128;

export class LambdaMeter {
  readonly invocations: MeteredInvocation[] = [];
  private readonly byHandler = new Map<string, { functionKey: string; memoryMb: number }>();
  private readonly current = new AsyncLocalStorage<{ logBytes: number }>();
  private restoreStdout: (() => void) | undefined;

  constructor(config = readServerlessYml() as ServerlessFunctions) {
    for (const [functionKey, def] of Object.entries(config.functions)) {
      if (this.byHandler.has(def.handler)) throw new Error(`two functions share the handler ${def.handler}`);
      const memoryMb = def.memorySize ?? config.provider.memorySize ?? LAMBDA_DEFAULT_MEMORY_MB;
      this.byHandler.set(def.handler, { functionKey, memoryMb });
    }
  }

  /** The function key and memory size serverless.yml gives a handler. */
  functionOf(handlerPath: string): { functionKey: string; memoryMb: number } {
    const fn = this.byHandler.get(handlerPath);
    if (fn === undefined) throw new Error(`no function in serverless.yml has the handler ${handlerPath}`);
    return fn;
  }

  /** Counts what is written to stdout during each invocation; `stop()` puts stdout back. */
  countLogs(): void {
    if (this.restoreStdout !== undefined) return;
    const original = process.stdout.write;
    const current = this.current;
    process.stdout.write = function (this: unknown, chunk: string | Uint8Array, ...rest: unknown[]) {
      const record = current.getStore();
      if (record !== undefined) record.logBytes += Buffer.byteLength(chunk);
      return (original as (...a: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
    } as typeof process.stdout.write;
    this.restoreStdout = () => {
      process.stdout.write = original;
    };
  }

  stop(): void {
    this.restoreStdout?.();
    this.restoreStdout = undefined;
  }

  wrap(loader: HandlerLoader): HandlerLoader {
    return async (handlerPath) => {
      const { functionKey, memoryMb } = this.functionOf(handlerPath);
      const handler = await loader(handlerPath);
      const metered = async (event: unknown, context: unknown): Promise<unknown> => {
        const record = { logBytes: 0 };
        const started = performance.now();
        let ok = false;
        try {
          const result = await this.current.run(record, () =>
            (handler as unknown as (e: unknown, c: unknown) => Promise<unknown>)(event, context),
          );
          ok = true;
          return result;
        } finally {
          const durationMs = performance.now() - started;
          this.invocations.push({
            functionKey,
            memoryMb,
            durationMs,
            billedMs: Math.ceil(durationMs),
            ok,
            logBytes: record.logBytes,
          });
        }
      };
      return metered as unknown as Awaited<ReturnType<HandlerLoader>>;
    };
  }

  /** Invocations recorded from `from` on (an index into `invocations`), for one function or all. */
  since(from: number, functionKey?: string): MeteredInvocation[] {
    return this.invocations
      .slice(from)
      .filter((i) => functionKey === undefined || i.functionKey === functionKey);
  }
}
