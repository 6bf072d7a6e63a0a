/**
 * The one table of AWS error codes: per service, which codes mean what to an adapter, and the one
 * function that turns an SDK error into a domain error (shared/domain/errors.ts). Errors are
 * matched by code, name and `$metadata`, never by class, so no SDK client package is imported
 * here (every Lambda bundles this module).
 *
 * What each kind becomes when an adapter translates it:
 * - `retryable`: UpstreamUnavailable (503: the caller may retry). Any unclassified answer with a
 *   5xx status or the SDK's `server` fault is retryable too: a 5xx whose body the SDK cannot parse
 *   arrives as `Unknown`, `SyntaxError` or `Error` with only its status to go by.
 * - `limit`: LimitExceeded; `conflict`: Conflict; `{ field }`: ValidationError on that field.
 * - `not-found`, `exists`, `condition-failed`, `capacity`: outcomes the adapter decides on
 *   (NotFound is success when deleting, an existing schedule is the one asked for, …); when it
 *   translates them anyway they are unexpected, like every code not in the table.
 * - unexpected: rethrown untouched (the HTTP layer answers 500), or an Internal error naming the
 *   code when the adapter asks for one. Access denied to the stack's own role and a malformed
 *   request of ours are deployment faults, not the caller's: they stay unexpected on purpose.
 */
import {
  AnnexError,
  conflict,
  limitExceeded,
  upstreamUnavailable,
  validationError,
} from '../domain/errors.ts';

export type AwsErrorKind =
  | 'not-found'
  | 'exists'
  | 'condition-failed'
  | 'conflict'
  | 'retryable'
  | 'limit'
  | 'capacity'
  | { field: string };

/**
 * One service's codes. Each service's table is its own export, so a function bundles only the
 * tables of the services it calls (the tables are plain literals: esbuild drops the unused ones).
 */
export interface ServiceErrors {
  /** How messages name the service. */
  label: string;
  /** First match wins. */
  codes: [RegExp, AwsErrorKind][];
  /** DynamoDB: cancellation reasons of a transaction that only throttling stopped (a retry can succeed). */
  retryableReasons?: readonly string[];
}

export const DYNAMODB_ERRORS: ServiceErrors = {
  label: 'the lease table',
  codes: [
    [/^ConditionalCheckFailedException$/, 'condition-failed'],
    [
      /^(ProvisionedThroughputExceededException|ThrottlingException|RequestLimitExceeded|InternalServerError|ServiceUnavailable)$/,
      'retryable',
    ],
  ],
  retryableReasons: ['ThrottlingError', 'ProvisionedThroughputExceeded'],
};

export const SSM_ERRORS: ServiceErrors = {
  label: 'SSM',
  codes: [
    [/^ParameterNotFound$/, 'not-found'],
    [/^ParameterAlreadyExists$/, 'exists'],
    [/^(ThrottlingException|InternalServerError|TooManyUpdates|ServiceUnavailable)$/, 'retryable'],
  ],
};

export const SCHEDULER_ERRORS: ServiceErrors = {
  label: 'EventBridge Scheduler',
  codes: [
    [/^ResourceNotFoundException$/, 'not-found'],
    // Schedules are named by annex and expiry: the same name is the same schedule.
    [/^ConflictException$/, 'exists'],
    [/^(ThrottlingException|InternalServerException|ServiceQuotaExceededException)$/, 'retryable'],
  ],
};

export const EC2_ERRORS: ServiceErrors = {
  label: 'EC2',
  codes: [
    [
      /^(InsufficientInstanceCapacity|InsufficientCapacity|InsufficientHostCapacity|Unsupported|UnfulfillableCapacity|SpotMaxPriceTooLow)$/,
      'capacity',
    ],
    [
      /^(InstanceLimitExceeded|VcpuLimitExceeded|MaxSpotInstanceCountExceeded|ResourceLimitExceeded)$/,
      'limit',
    ],
    [
      /^(InvalidInstanceID\.(NotFound|Malformed)|InvalidLaunchTemplateName\.NotFoundException|InvalidLaunchTemplateId\.NotFound|InvalidFleetId\..+)$/,
      'not-found',
    ],
    [/^InvalidLaunchTemplateName\.AlreadyExistsException$/, 'exists'],
    [
      /^(RequestLimitExceeded|Throttling|InternalError|InternalFailure|ServiceUnavailable|Unavailable)$/,
      'retryable',
    ],
    [/^IdempotentParameterMismatch$/, 'conflict'],
    [/^InvalidAMIID\./, { field: 'imageId' }],
    [/^(InvalidSubnetID\.|InvalidSubnet)/, { field: 'subnetIds' }],
    [/^(InvalidGroup\.|InvalidGroupId\.|InvalidSecurityGroupID\.)/, { field: 'securityGroupIds' }],
    [/^InvalidKeyPair\./, { field: 'keyName' }],
    [/^InvalidInstanceType$/, { field: 'instanceTypes' }],
    [/^InvalidUserData\./, { field: 'userData' }],
    [/^InvalidParameterValue$/, { field: 'request' }],
    [/^InvalidFleetConfiguration$/, { field: 'request' }],
  ],
};

export const LAMBDA_ERRORS: ServiceErrors = {
  label: 'Lambda',
  codes: [
    [/^ResourceNotFoundException$/, 'not-found'],
    [
      /^(TooManyRequestsException|ServiceException|EC2ThrottledException|ResourceNotReadyException)$/,
      'retryable',
    ],
  ],
};

type SdkErrorShape =
  | {
      name?: unknown;
      Code?: unknown;
      code?: unknown;
      message?: unknown;
      $fault?: unknown;
      $metadata?: { httpStatusCode?: unknown };
      CancellationReasons?: { Code?: string }[];
    }
  | undefined;

const shape = (e: unknown): SdkErrorShape => (typeof e === 'object' && e !== null ? e : undefined);

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The error's AWS code: EC2's `Code`, else the SDK's `name` (empty when there is none). */
export const errorCode = (e: unknown): string => {
  const err = shape(e);
  return text(err?.Code) ?? text(err?.name) ?? text(err?.code) ?? '';
};

/** The reason code of each item of a cancelled DynamoDB transaction (empty for any other error). */
export const cancelledAt = (e: unknown): string[] =>
  errorCode(e) === 'TransactionCanceledException'
    ? (shape(e)?.CancellationReasons ?? []).map((r) => r.Code ?? 'None')
    : [];

/** An answer the service failed to give (5xx, or the SDK's server fault): worth a retry. */
const serverFault = (e: unknown): boolean => {
  const err = shape(e);
  const status = err?.$metadata?.httpStatusCode;
  return err?.$fault === 'server' || (typeof status === 'number' && status >= 500);
};

/** What an error from `service` means, or undefined when the table does not know it. */
export const awsErrorKind = (service: ServiceErrors, e: unknown): AwsErrorKind | undefined => {
  const code = errorCode(e);
  const known = service.codes.find(([pattern]) => pattern.test(code))?.[1];
  if (known !== undefined) return known;
  const reasons = service.retryableReasons;
  if (reasons !== undefined && cancelledAt(e).some((r) => reasons.includes(r))) return 'retryable';
  return serverFault(e) ? 'retryable' : undefined;
};

export interface TranslateOptions {
  /**
   * Turns an unexpected error into an Internal one whose message starts with this (and names the
   * code) instead of rethrowing it untouched.
   */
  unexpected?: string;
}

/** Throws the domain error an AWS error from `service` means while doing `what`. */
export const translateAwsError = (
  service: ServiceErrors,
  e: unknown,
  what: string,
  options: TranslateOptions = {},
): never => {
  if (e instanceof AnnexError) throw e;
  const { label } = service;
  const kind = awsErrorKind(service, e);
  const code = errorCode(e);
  if (kind === 'retryable') throw upstreamUnavailable(`${label} is unavailable (${what})`, e);
  if (kind === 'limit') throw limitExceeded(`${label} refused ${what}: ${code}`);
  if (kind === 'conflict') throw conflict(`${label} refused ${what}: ${code}`);
  if (typeof kind === 'object') {
    const message = text(shape(e)?.message) ?? code;
    throw validationError(kind.field, `${label} refused it (${code}): ${message}`);
  }
  if (options.unexpected !== undefined) {
    throw new AnnexError('Internal', `${options.unexpected} (${code || 'error'})`, { cause: e });
  }
  throw e;
};

/** The lease table's translation (the lease store and the Slack store share the table). */
export const translateDynamoError = (e: unknown, what: string): never =>
  translateAwsError(DYNAMODB_ERRORS, e, what);
