/**
 * Adds an `initialize`-step middleware to any AWS SDK v3 client: the one way the benchmark's
 * counters and the tests' fault injectors (lost answers, crashes, short fleets) wrap real clients.
 */
import type {
  HandlerExecutionContext,
  InitializeHandler,
  InitializeHandlerArguments,
  InitializeHandlerOutput,
  MiddlewareStack,
} from '@smithy/types';

export type InitializeMiddleware = (
  next: InitializeHandler<object, object>,
  context: HandlerExecutionContext,
) => (args: InitializeHandlerArguments<object>) => Promise<InitializeHandlerOutput<object>>;

export const addInitializeMiddleware = (
  client: { middlewareStack: object },
  name: string,
  middleware: InitializeMiddleware,
  options: { priority?: 'high' | 'low'; override?: boolean } = {},
): void =>
  (client.middlewareStack as MiddlewareStack<object, object>).add(middleware, {
    step: 'initialize',
    name,
    ...options,
  });
