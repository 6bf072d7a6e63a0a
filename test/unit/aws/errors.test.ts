import { Readable } from 'node:stream';
import { EC2Client } from '@aws-sdk/client-ec2';
import { HttpResponse } from '@smithy/protocol-http';
import { describe, expect, it } from 'vitest';
import { Ec2Compute } from '../../../shared/aws/ec2.ts';
import {
  awsErrorKind,
  cancelledAt,
  DYNAMODB_ERRORS,
  EC2_ERRORS,
  errorCode,
  LAMBDA_ERRORS,
  SCHEDULER_ERRORS,
  SSM_ERRORS,
  translateAwsError,
} from '../../../shared/aws/errors.ts';
import { AnnexError } from '../../../shared/domain/errors.ts';
import { MOCKED_CLIENT_CONFIG } from '../../support/aws-mocks.ts';

/** An EC2 client whose every call gets this HTTP answer on the wire (one attempt, no retries). */
const ec2Answering = (statusCode: number, body: string): EC2Client =>
  new EC2Client({
    ...MOCKED_CLIENT_CONFIG,
    maxAttempts: 1,
    requestHandler: {
      handle: () =>
        Promise.resolve({
          response: new HttpResponse({ statusCode, headers: {}, body: Readable.from([Buffer.from(body)]) }),
        }),
    },
  });

const sdkError = (name: string, extra: Record<string, unknown> = {}): Error =>
  Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: 400 }, ...extra });

const thrownBy = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
};

describe('an EC2 answer the SDK cannot parse', () => {
  it.each([
    [503, '<html><body>Service Unavailable</body></html>'],
    [502, ''],
    [500, 'not xml at all <'],
  ])('reports UpstreamUnavailable for a %i whose body is %j', async (status, body) => {
    // Prepare
    const compute = new Ec2Compute(ec2Answering(status, body), 'test');

    // Act
    const failure = compute.listStageInstances();

    // Assess
    await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
  });

  it('still reports a parsed 400 it does not know as the SDK error itself', async () => {
    // Prepare
    const body =
      '<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>no</Message></Error></Errors></Response>';
    const compute = new Ec2Compute(ec2Answering(400, body), 'test');

    // Act
    const failure = compute.listStageInstances();

    // Assess
    await expect(failure).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
    await expect(failure).rejects.not.toBeInstanceOf(AnnexError);
  });
});

/** Each service's table, by the name the cases below give it. */
const TABLES = {
  dynamodb: DYNAMODB_ERRORS,
  ssm: SSM_ERRORS,
  scheduler: SCHEDULER_ERRORS,
  lambda: LAMBDA_ERRORS,
  ec2: EC2_ERRORS,
};

describe('awsErrorKind', () => {
  it.each([
    ['dynamodb', 'ConditionalCheckFailedException', 'condition-failed'],
    ['dynamodb', 'ProvisionedThroughputExceededException', 'retryable'],
    ['dynamodb', 'RequestLimitExceeded', 'retryable'],
    ['dynamodb', 'ValidationException', undefined],
    ['ssm', 'ParameterNotFound', 'not-found'],
    ['ssm', 'ParameterAlreadyExists', 'exists'],
    ['ssm', 'TooManyUpdates', 'retryable'],
    ['ssm', 'AccessDeniedException', undefined],
    ['scheduler', 'ConflictException', 'exists'],
    ['scheduler', 'ResourceNotFoundException', 'not-found'],
    ['scheduler', 'ServiceQuotaExceededException', 'retryable'],
    ['lambda', 'TooManyRequestsException', 'retryable'],
    ['lambda', 'ResourceNotFoundException', 'not-found'],
    ['ec2', 'InvalidLaunchTemplateName.NotFoundException', 'not-found'],
    ['ec2', 'InvalidLaunchTemplateName.AlreadyExistsException', 'exists'],
    ['ec2', 'InvalidFleetId.NotFound', 'not-found'],
    ['ec2', 'InvalidFleetConfiguration', { field: 'request' }],
  ] as const)('classifies %s %s as %o', (service, name, kind) => {
    // Act
    const classified = awsErrorKind(TABLES[service], sdkError(name));

    // Assess
    expect(classified).toEqual(kind);
  });

  it('reads a code a service does not share with another by that service only', () => {
    // Assess
    expect(awsErrorKind(SCHEDULER_ERRORS, sdkError('TooManyRequestsException'))).toBeUndefined();
    expect(awsErrorKind(LAMBDA_ERRORS, sdkError('ConflictException'))).toBeUndefined();
  });

  it('classifies a code in the table before the status, so a 500 capacity refusal stays capacity', () => {
    // Prepare
    const error = sdkError('InsufficientInstanceCapacity', {
      $fault: 'server',
      $metadata: { httpStatusCode: 500 },
    });

    // Assess
    expect(awsErrorKind(EC2_ERRORS, error)).toBe('capacity');
  });

  it('classifies an unknown code with a 5xx status or a server fault as retryable, and a 4xx as nothing', () => {
    // Assess
    expect(awsErrorKind(SSM_ERRORS, sdkError('SyntaxError', { $metadata: { httpStatusCode: 503 } }))).toBe(
      'retryable',
    );
    expect(awsErrorKind(LAMBDA_ERRORS, sdkError('Unknown', { $fault: 'server', $metadata: {} }))).toBe(
      'retryable',
    );
    expect(awsErrorKind(DYNAMODB_ERRORS, sdkError('Unknown'))).toBeUndefined();
  });

  it('classifies a transaction that only throttling cancelled as retryable', () => {
    // Prepare
    const cancelled = (...codes: string[]) =>
      sdkError('TransactionCanceledException', { CancellationReasons: codes.map((Code) => ({ Code })) });

    // Assess
    expect(awsErrorKind(DYNAMODB_ERRORS, cancelled('None', 'ThrottlingError'))).toBe('retryable');
    expect(awsErrorKind(DYNAMODB_ERRORS, cancelled('ConditionalCheckFailed', 'None'))).toBeUndefined();
    expect(cancelledAt(cancelled('ConditionalCheckFailed', 'None'))).toEqual([
      'ConditionalCheckFailed',
      'None',
    ]);
    expect(cancelledAt(sdkError('ThrottlingException'))).toEqual([]);
  });

  it('reads EC2 query errors by their Code and others by their name', () => {
    // Assess
    expect(errorCode({ name: 'EC2ServiceException', Code: 'Unavailable' })).toBe('Unavailable');
    expect(errorCode(sdkError('ParameterNotFound'))).toBe('ParameterNotFound');
    expect(errorCode(undefined)).toBe('');
    expect(errorCode('ParameterNotFound')).toBe('');
  });
});

describe('translateAwsError', () => {
  it('turns each kind into its domain error, naming the service and the operation', () => {
    // Assess
    expect(
      thrownBy(() => translateAwsError(SSM_ERRORS, sdkError('ThrottlingException'), 'reading x')),
    ).toMatchObject({
      code: 'UpstreamUnavailable',
      message: 'SSM is unavailable (reading x)',
    });
    expect(
      thrownBy(() => translateAwsError(EC2_ERRORS, sdkError('VcpuLimitExceeded'), 'the launch')),
    ).toMatchObject({
      code: 'LimitExceeded',
      message: 'EC2 refused the launch: VcpuLimitExceeded',
    });
    expect(
      thrownBy(() => translateAwsError(EC2_ERRORS, sdkError('IdempotentParameterMismatch'), 'the launch')),
    ).toMatchObject({ code: 'Conflict' });
    expect(
      thrownBy(() => translateAwsError(EC2_ERRORS, sdkError('InvalidKeyPair.NotFound'), 'the launch')),
    ).toMatchObject({
      code: 'ValidationError',
      field: 'keyName',
      message: 'keyName: EC2 refused it (InvalidKeyPair.NotFound): InvalidKeyPair.NotFound happened',
    });
  });

  it('rethrows an unexpected error untouched, or as Internal naming its code when asked', () => {
    // Prepare
    const denied = sdkError('AccessDeniedException');

    // Act
    const rethrown = thrownBy(() => translateAwsError(LAMBDA_ERRORS, denied, 'x'));
    const wrapped = thrownBy(() =>
      translateAwsError(LAMBDA_ERRORS, denied, 'x', { unexpected: 'could not y' }),
    );

    // Assess
    expect(rethrown).toBe(denied);
    expect(wrapped).toMatchObject({
      code: 'Internal',
      message: 'could not y (AccessDeniedException)',
      cause: denied,
    });
  });

  it('rethrows a domain error as it is', () => {
    // Prepare
    const domain = new AnnexError('Conflict', 'already decided');

    // Assess
    expect(thrownBy(() => translateAwsError(DYNAMODB_ERRORS, domain, 'x'))).toBe(domain);
  });
});
