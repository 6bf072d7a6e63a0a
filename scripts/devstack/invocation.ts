/**
 * Which Lambda function the code running now is an invocation of. The local stack's handler
 * loader runs every invocation inside it (the gateway's routes, the dev runner's schedules, sweeps
 * and events, the local Lambda's invokes), so a recording hook can tell whose role AWS would check
 * each SDK call against (test/support/iam/recorder.ts). Costs one AsyncLocalStorage frame per call.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const current = new AsyncLocalStorage<string>();

/** The function name (`<service>-<stage>-<key>`) of the invocation running now, if any. */
export const invokedFunction = (): string | undefined => current.getStore();

/** Runs `body` as an invocation of the named function (no name: as the caller runs). */
export const asInvocationOf = <T>(functionName: string | undefined, body: () => T): T =>
  functionName === undefined ? body() : current.run(functionName, body);
