/**
 * The API contract: every HTTP route with its parameters, request body, answer and error answers,
 * all given by the zod schemas the handlers validate with (schemas.ts, instance-schemas.ts,
 * params.ts, shared/slack/schemas.ts) and by the response schemas (responses.ts).
 * docs/openapi.yaml is generated from this table (scripts/openapi.ts); tests keep the table equal to
 * serverless.yml's routes and check the real handlers' answers against it. No handler imports it.
 */
import * as z from 'zod/mini';
import { HeartbeatBody, InterruptionBody } from './instance-schemas.ts';
import { IDEMPOTENCY_KEY, NamePath, OwnerQuery, PoolPath } from './params.ts';
import {
  Annex,
  AnnexDetail,
  AnnexEnvelope,
  AnnexEvent,
  AnnexList,
  BootstrapResponse,
  CondorConfigResponse,
  EmptyResponse,
  EndReason,
  HeartbeatResponse,
  Instance,
  Interruption,
  Pool,
  PoolCheck,
  PoolCheckResponse,
  PoolEnvelope,
  PoolList,
  apiError,
  gatewayMessage,
} from './responses.ts';
import {
  AddNodesBody,
  CreateAnnexBody,
  ExtendAnnexBody,
  PutPoolBody,
  instanceRequirements,
} from './schemas.ts';
import {
  InteractionForm,
  PutSlackUserBody,
  SlackMessageBody,
  SlackUser,
  SlackUserEnvelope,
  SlackUserPath,
  SlashCommandForm,
} from '../slack/schemas.ts';

export type Method = 'get' | 'put' | 'post' | 'delete';

/** The error answers a route may give, each with one body schema (see `ERRORS`). */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 422 | 503;

export interface Header {
  name: string;
  required: boolean;
  description?: string;
  schema: z.ZodMiniType;
}

export interface Operation {
  method: Method;
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  /** sigv4: API Gateway's AWS_IAM authorizer; slack: no authorizer, Slack's request signature instead. */
  auth: 'sigv4' | 'slack';
  pathParameters?: z.ZodMiniObject;
  query?: z.ZodMiniObject;
  headers?: Header[];
  body?: { schema: z.ZodMiniType; contentType: 'application/json' | 'application/x-www-form-urlencoded' };
  ok: { status: 200 | 201 | 202 | 204; description: string; schema?: z.ZodMiniType };
  errors: ErrorStatus[];
}

/** The body of each error answer: the API's own, or API Gateway's where it answers first. */
export const ERRORS: Record<ErrorStatus, { description: string; schema: z.ZodMiniType }> = {
  400: {
    description: 'refused: the field is named; nothing was written',
    schema: apiError('ValidationError'),
  },
  401: { description: "Slack's signature is missing, stale or wrong", schema: apiError('Unauthorized') },
  403: {
    description:
      "not allowed (e.g. by the pool's launch policy: the field and the rule are named; nothing was " +
      'written or launched); API Gateway answers `{"message":"Forbidden"}` itself when the SigV4 signature is ' +
      'missing or wrong',
    schema: z.union([apiError('Forbidden'), gatewayMessage('Forbidden')]),
  },
  404: {
    description:
      "not found (another user's annex is reported as missing); API Gateway answers " +
      '`{"message":"Not Found"}` itself when no route matches, e.g. for an empty path parameter',
    schema: z.union([apiError('NotFound'), gatewayMessage('Not Found')]),
  },
  409: {
    description: 'conflict: name taken, a concurrent change, a reused Idempotency-Key, or the wrong state',
    schema: apiError('Conflict'),
  },
  422: {
    description:
      "a limit or quota refuses it (the stack's, or the pool's launch policy and per-user quota: the " +
      'field and the rule are named; nothing was written or launched)',
    schema: apiError('LimitExceeded'),
  },
  503: {
    description: 'a dependency is unavailable; retry (with the same Idempotency-Key) after Retry-After',
    schema: apiError('UpstreamUnavailable'),
  },
};

const idempotencyKey: Header = {
  name: 'Idempotency-Key',
  required: false,
  description: 'the same key (from the same caller) returns the same result and never launches twice',
  schema: z.string().check(z.regex(IDEMPOTENCY_KEY)),
};

/** What shared/slack/signature.ts checks before anything reads the body (else 401). */
const slackHeaders: Header[] = [
  { name: 'X-Slack-Signature', required: true, schema: z.string().check(z.regex(/^v0=[0-9a-f]{64}$/)) },
  { name: 'X-Slack-Request-Timestamp', required: true, schema: z.string().check(z.regex(/^\d{1,12}$/)) },
];

const json = (schema: z.ZodMiniType) => ({ schema, contentType: 'application/json' as const });
const form = (schema: z.ZodMiniType) => ({
  schema,
  contentType: 'application/x-www-form-urlencoded' as const,
});
const annex = { pathParameters: NamePath, query: OwnerQuery };

export const OPERATIONS: readonly Operation[] = [
  {
    method: 'get',
    path: '/v1/pools',
    operationId: 'listPools',
    summary: 'The pools the caller may burst into (shared ones and their own private ones)',
    auth: 'sigv4',
    ok: { status: 200, description: 'pools, never with a credential', schema: PoolList },
    errors: [403, 503],
  },
  {
    method: 'put',
    path: '/v1/pools/{pool}',
    operationId: 'putPool',
    summary: 'Register (or re-register) an HTCondor pool; its credential is stored as an SSM SecureString',
    auth: 'sigv4',
    pathParameters: PoolPath,
    body: json(PutPoolBody),
    ok: { status: 200, description: 'the pool as registered, with its launch policy', schema: PoolEnvelope },
    errors: [400, 403, 404, 409, 422, 503],
  },
  {
    method: 'post',
    path: '/v1/pools/{pool}/check',
    operationId: 'checkPool',
    summary:
      "Test from the cloud whether the pool's collector is reachable (a TCP connection with a timeout)",
    description:
      "The control plane opens a TCP connection to the collector's host and port, as an annex instance " +
      'would, and closes it at once; nothing is sent. The answer is 200 whether or not the collector is ' +
      'reachable. Any pool the caller may burst into can be checked. No request body.',
    auth: 'sigv4',
    pathParameters: PoolPath,
    ok: { status: 200, description: 'the outcome of the connection attempt', schema: PoolCheckResponse },
    errors: [400, 403, 404, 503],
  },
  {
    method: 'get',
    path: '/v1/annexes',
    operationId: 'listAnnexes',
    summary: "The caller's annexes; an admin sees every live annex, or one owner's with ?owner=",
    auth: 'sigv4',
    query: OwnerQuery,
    ok: { status: 200, description: 'annexes', schema: AnnexList },
    errors: [400, 403, 503],
  },
  {
    method: 'post',
    path: '/v1/annexes',
    operationId: 'createAnnex',
    summary: 'Create an annex and launch its instances',
    auth: 'sigv4',
    headers: [idempotencyKey],
    body: json(CreateAnnexBody),
    ok: {
      status: 201,
      description: 'the annex (also for an idempotent retry with the same Idempotency-Key)',
      schema: AnnexEnvelope,
    },
    errors: [400, 403, 404, 409, 422, 503],
  },
  {
    method: 'get',
    path: '/v1/annexes/{name}',
    operationId: 'getAnnex',
    summary: 'One annex with its instances and recent events (a live one, else the latest ended one)',
    auth: 'sigv4',
    ...annex,
    ok: { status: 200, description: 'the annex', schema: AnnexDetail },
    errors: [400, 403, 404, 503],
  },
  {
    method: 'delete',
    path: '/v1/annexes/{name}',
    operationId: 'deleteAnnex',
    summary: 'End the annex now (terminate its instances, delete its credential, free its name)',
    auth: 'sigv4',
    ...annex,
    ok: {
      status: 202,
      description: 'the annex, ended (repeating the call is harmless)',
      schema: AnnexEnvelope,
    },
    errors: [400, 403, 404, 409, 503],
  },
  {
    method: 'post',
    path: '/v1/annexes/{name}/extend',
    operationId: 'extendAnnex',
    summary: 'Change the lease (and optionally the idle time) without adding nodes',
    auth: 'sigv4',
    ...annex,
    body: json(ExtendAnnexBody),
    ok: { status: 200, description: 'the annex with its new expiry', schema: AnnexEnvelope },
    errors: [400, 403, 404, 409, 422, 503],
  },
  {
    method: 'post',
    path: '/v1/annexes/{name}/instances',
    operationId: 'addNodes',
    summary: 'Add nodes under the same lease',
    auth: 'sigv4',
    ...annex,
    headers: [idempotencyKey],
    body: json(AddNodesBody),
    ok: { status: 200, description: 'the annex', schema: AnnexEnvelope },
    errors: [400, 403, 404, 409, 422, 503],
  },
  {
    method: 'get',
    path: '/v1/annexes/{name}/condor-config',
    operationId: 'getAnnexCondorConfig',
    summary: "The HTCondor configuration fragment the annex's instances get, for building custom images",
    description:
      'Exactly what bootstrap renders for an instance of this annex, with the placeholder instance id ' +
      '`i-00000000000000000` and without TCP_FORWARDING_HOST. It carries no secret: the pool credential ' +
      'is only ever given to an instance, by bootstrap.',
    auth: 'sigv4',
    ...annex,
    ok: { status: 200, description: 'the fragment', schema: CondorConfigResponse },
    errors: [400, 403, 404, 409, 503],
  },
  {
    method: 'post',
    path: '/v1/instances/self/bootstrap',
    operationId: 'bootstrapInstance',
    summary: "An annex instance's pool credential and HTCondor configuration (instance role only, once)",
    description:
      "Callable only with the instance role's instance-profile credentials: the caller must be " +
      '`arn:aws:sts::<account>:assumed-role/annex-<stage>-instance/<instance id>`. Served only for an ' +
      'instance recorded on a live annex (REQUESTED, LAUNCHING or RUNNING, not expired) and not ' +
      'terminated, and only once per instance: the instance record is marked before the secret is read, ' +
      'and a second call is refused (403) and recorded as a `bootstrap-refused` event. No request body.',
    auth: 'sigv4',
    ok: { status: 200, description: 'what the instance needs to join the pool', schema: BootstrapResponse },
    errors: [403, 409, 503],
  },
  {
    method: 'post',
    path: '/v1/instances/self/heartbeat',
    operationId: 'instanceHeartbeat',
    summary: "The instance agent's report (every heartbeatIntervalSeconds); the answer carries the lease",
    description:
      'Records `lastHeartbeatAt`, `claimedSlots`, `totalSlots` and `idleSince` (now − idleSeconds when no ' +
      'slot is claimed and it is not already set; removed while a slot is claimed) on the instance, which ' +
      "the sweep's idle check reads. Nothing is written for an annex that has ended; the answer is then " +
      '`shutdown`.',
    auth: 'sigv4',
    body: json(HeartbeatBody),
    ok: {
      status: 200,
      description: 'the lease as it is now, and what the instance should do',
      schema: HeartbeatResponse,
    },
    errors: [400, 403, 503],
  },
  {
    method: 'post',
    path: '/v1/instances/self/interruption',
    operationId: 'instanceInterruption',
    summary: 'EC2 announced it will take the instance back (spot interruption notice)',
    auth: 'sigv4',
    body: json(InterruptionBody),
    ok: {
      status: 202,
      description:
        'recorded on the instance and as a `spot-interruption` event, once: a repeat, or EC2’s own ' +
        'EventBridge warning for the same instance, records nothing more',
      schema: EmptyResponse,
    },
    errors: [400, 403, 503],
  },
  {
    method: 'post',
    path: '/v1/slack/commands',
    operationId: 'slackCommand',
    summary: "Slack's `/annex` slash command (Slack-signed; no IAM authorization)",
    description:
      'Called by Slack, not SigV4-signed: the route has no authorizer. The function checks ' +
      '`X-Slack-Signature` (v0, HMAC-SHA256 of `v0:<timestamp>:<raw body>` with the app’s signing secret ' +
      'from SSM) with a timing-safe compare before it reads the body, refuses a timestamp more than 5 ' +
      'minutes off and a replayed signature, then answers within 3 s with an ephemeral "Working on it…" ' +
      'and posts the result to `response_url` (see docs/slack.md). Slack sends more fields than these, ' +
      'which are ignored.',
    auth: 'slack',
    headers: slackHeaders,
    body: form(SlashCommandForm),
    ok: {
      status: 200,
      description:
        'the acknowledgement, or why nothing was done (another workspace, an unmapped user, a mistyped command)',
      schema: SlackMessageBody,
    },
    errors: [400, 401],
  },
  {
    method: 'post',
    path: '/v1/slack/interactions',
    operationId: 'slackInteraction',
    summary:
      "Slack's button clicks on a status card (Extend 1h, Terminate); Slack-signed, no IAM authorization",
    auth: 'slack',
    headers: slackHeaders,
    body: form(InteractionForm),
    ok: {
      status: 200,
      description: 'empty (the worker replaces the card through `response_url`), or why nothing was done',
      schema: SlackMessageBody,
    },
    errors: [400, 401],
  },
  {
    method: 'put',
    path: '/v1/slack/users/{teamId}/{userId}',
    operationId: 'putSlackUser',
    summary:
      'Map a Slack user to the owner identity it acts as (a role session maps to its role) and the pools it may use (administrators only)',
    auth: 'sigv4',
    pathParameters: SlackUserPath,
    body: json(PutSlackUserBody),
    ok: { status: 200, description: 'the mapping', schema: SlackUserEnvelope },
    errors: [400, 403, 503],
  },
  {
    method: 'get',
    path: '/v1/slack/users/{teamId}/{userId}',
    operationId: 'getSlackUser',
    summary: "A Slack user's mapping (administrators only)",
    auth: 'sigv4',
    pathParameters: SlackUserPath,
    ok: { status: 200, description: 'the mapping', schema: SlackUserEnvelope },
    errors: [400, 403, 404, 503],
  },
  {
    method: 'delete',
    path: '/v1/slack/users/{teamId}/{userId}',
    operationId: 'deleteSlackUser',
    summary: "Remove a Slack user's mapping (administrators only); the user's next command is refused",
    auth: 'sigv4',
    pathParameters: SlackUserPath,
    ok: { status: 204, description: 'removed' },
    errors: [400, 403, 404, 503],
  },
];

/** Named schemas: the document's `components.schemas`, referenced wherever they are used. */
export const REQUEST_COMPONENTS: Record<string, z.ZodMiniType> = {
  CreateAnnexRequest: CreateAnnexBody,
  ExtendAnnexRequest: ExtendAnnexBody,
  AddNodesRequest: AddNodesBody,
  PutPoolRequest: PutPoolBody,
  HeartbeatRequest: HeartbeatBody,
  InterruptionRequest: InterruptionBody,
  PutSlackUserRequest: PutSlackUserBody,
  SlackSlashCommand: SlashCommandForm,
  SlackInteraction: InteractionForm,
};

/** The operation for a method and a route path template, e.g. `('get', '/v1/annexes/{name}')`. */
export const operationFor = (method: string, path: string): Operation | undefined =>
  OPERATIONS.find((o) => o.method === method.toLowerCase() && o.path === path);

/** Named answers: `components.schemas` of the document, referenced wherever they are used. */
export const RESPONSE_COMPONENTS: Record<string, z.ZodMiniType> = {
  Annex,
  Instance,
  Event: AnnexEvent,
  EndReason,
  Interruption,
  Pool,
  PoolCheck,
  AnnexEnvelope,
  AnnexList,
  AnnexDetail,
  CondorConfigResponse,
  PoolEnvelope,
  PoolList,
  PoolCheckResponse,
  BootstrapResponse,
  HeartbeatResponse,
  Empty: EmptyResponse,
  SlackUser,
  SlackUserEnvelope,
  SlackMessage: SlackMessageBody,
};

/** Schemas named in both directions (the same JSON Schema either way). */
export const SHARED_COMPONENTS: Record<string, z.ZodMiniType> = {
  InstanceRequirements: instanceRequirements,
};

/** The component name of each error answer's body. */
export const ERROR_NAMES: Record<ErrorStatus, string> = {
  400: 'ValidationError',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  422: 'LimitExceeded',
  503: 'UpstreamUnavailable',
};
