/**
 * The HTTP edge, as middy middleware: request logging, the caller's IAM identity, JSON body,
 * path, query and Idempotency-Key validation, and the one error → status mapping. A handler built
 * with `route()` only sees validated input and returns `{ status, body }`.
 */
import middy, { type MiddlewareObj } from '@middy/core';
import type {
  APIGatewayProxyEventV2WithIAMAuthorizer,
  APIGatewayProxyStructuredResultV2,
  Context,
} from 'aws-lambda';
import type { z } from 'zod/mini';
import { forbidden, validationError } from '../domain/errors.ts';
import { callerOf, type IdentityRules } from '../domain/identity.ts';
import type { Caller } from '../domain/model.ts';
import { logger as rootLogger, type StructuredLogger } from '../log.ts';
import { errorResponse, json } from './errors.ts';
import { IDEMPOTENCY_KEY } from './params.ts';

export type Event = APIGatewayProxyEventV2WithIAMAuthorizer;
export type Result = APIGatewayProxyStructuredResultV2;

export interface ApiRequest<B, P, Q> {
  caller: Caller;
  body: B;
  path: P;
  query: Q;
  idempotencyKey?: string;
  requestId: string;
  log: StructuredLogger;
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

interface Schemas<B, P, Q> {
  body?: z.ZodMiniType<B>;
  path?: z.ZodMiniType<P>;
  query?: z.ZodMiniType<Q>;
}

/** Lambda's context; `api` is set by the validation middleware before the handler runs. */
interface ApiContext extends Context {
  api?: ApiRequest<unknown, unknown, unknown>;
}

const fieldOf = (issue: z.core.$ZodIssue): string => {
  if (issue.code === 'unrecognized_keys') return [...issue.path, issue.keys[0]].join('.');
  return issue.path.length > 0 ? issue.path.join('.') : 'body';
};

const check = <T>(schema: z.ZodMiniType<T> | undefined, value: unknown, prefix?: string): T => {
  if (schema === undefined) return undefined as T;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (issue === undefined) throw validationError(prefix ?? 'body', 'invalid');
  const field = fieldOf(issue);
  const message = issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message;
  throw validationError(prefix !== undefined && field === 'body' ? prefix : field, message);
};

const parseJson = (event: Event): unknown => {
  if (event.body === undefined || event.body === '') return {};
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  try {
    return JSON.parse(text);
  } catch {
    throw validationError('body', 'must be a JSON object');
  }
};

/**
 * Establishes who is calling from the API Gateway IAM authorizer context: the owner identity the
 * signer cannot choose (shared/domain/identity.ts) and the signed ARN. No identity, or a signer
 * the owner rule refuses (a federated user, say) → 403.
 */
export const callerFrom = (event: Event, rules: IdentityRules): Caller => {
  const arn = event.requestContext.authorizer?.iam?.userArn;
  if (typeof arn !== 'string' || arn === '') throw forbidden('the request carries no IAM identity');
  return callerOf(arn, rules);
};

const headerOf = (event: Event, name: string): string | undefined => {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === wanted) return v;
  return undefined;
};

const validation = <B, P, Q>(
  schemas: Schemas<B, P, Q>,
  identity: () => IdentityRules,
): MiddlewareObj<Event, Result, Error, ApiContext> => ({
  before: (request) => {
    const { event, context } = request;
    const log = rootLogger.child({ requestId: context.awsRequestId, route: event.routeKey });
    const caller = callerFrom(event, identity());
    const key = headerOf(event, 'idempotency-key');
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
      throw validationError('Idempotency-Key', 'must be 1-128 characters of A-Z a-z 0-9 _ . : -');
    }
    context.api = {
      caller,
      path: check(schemas.path, event.pathParameters ?? {}),
      query: check(schemas.query, event.queryStringParameters ?? {}),
      body: schemas.body === undefined ? undefined : check(schemas.body, parseJson(event)),
      ...(key === undefined ? {} : { idempotencyKey: key }),
      requestId: context.awsRequestId,
      log,
    };
  },
});

const errors = (): MiddlewareObj<Event, Result, Error, ApiContext> => ({
  onError: (request) => {
    const { error, context, event } = request;
    const response = errorResponse(error, context.awsRequestId);
    const fields = { requestId: context.awsRequestId, route: event.routeKey, status: response.statusCode };
    if (response.statusCode >= 500) {
      rootLogger.error('request failed', { ...fields, error: error?.name, detail: error?.message });
    } else {
      rootLogger.info('request refused', { ...fields, error: error?.message });
    }
    request.response = response;
  },
});

/**
 * Builds a Lambda handler for one route. `identity` (admins, roles owned per session) is read
 * lazily so configuration is validated at the first request of a cold start, with its error
 * mapped like any other.
 */
export const route = <B = undefined, P = undefined, Q = undefined>(
  schemas: Schemas<B, P, Q>,
  identity: () => IdentityRules,
  fn: (req: ApiRequest<B, P, Q>) => Promise<ApiResponse>,
) =>
  middy<Event, Result, Error, ApiContext>()
    .use(errors())
    .use(validation(schemas, identity))
    .handler(async (_event, context) => {
      const { status, body } = await fn(context.api as ApiRequest<B, P, Q>);
      return json(status, body);
    });
