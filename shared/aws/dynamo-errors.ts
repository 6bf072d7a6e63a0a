/**
 * What every DynamoDB adapter (the lease store, the Slack store) does with the table's answers:
 * throttling and service errors become the domain's UpstreamUnavailable (the caller may retry);
 * items lose the table's own attributes (keys, index keys, ttl) before the domain sees them.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { isAnnexError, upstreamUnavailable } from '../domain/errors.ts';
import { KEY_ATTRIBUTES } from './keys.ts';

const RETRYABLE = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'InternalServerError',
  'ServiceUnavailable',
]);

/** Cancellation reasons of a transaction that only throttling stopped: a retry can succeed. */
const RETRYABLE_REASONS = new Set(['ThrottlingError', 'ProvisionedThroughputExceeded']);

export const errorName = (e: unknown): string => (e as { name?: string } | undefined)?.name ?? '';

/** The reason code of each item of a cancelled transaction (empty for any other error). */
export const cancelledAt = (e: unknown): string[] =>
  e instanceof TransactionCanceledException ? (e.CancellationReasons ?? []).map((r) => r.Code ?? 'None') : [];

/** Translates DynamoDB failures into domain errors; anything unknown is rethrown as is. */
export const translateDynamoError = (e: unknown, what: string): never => {
  if (isAnnexError(e)) throw e;
  if (RETRYABLE.has(errorName(e)) || cancelledAt(e).some((r) => RETRYABLE_REASONS.has(r))) {
    throw upstreamUnavailable(`the lease table is unavailable (${what})`, e);
  }
  throw e;
};

/** An item without the table's own attributes. */
export const stripTableAttributes = <T>(item: Record<string, unknown>): T => {
  const copy = { ...item };
  for (const k of KEY_ATTRIBUTES) delete copy[k];
  return copy as T;
};
