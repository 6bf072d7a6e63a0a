/**
 * Slack's request signature (v0): HMAC-SHA256 over `v0:<timestamp>:<raw body>` with the app's
 * signing secret, sent as `X-Slack-Signature: v0=<hex>` with `X-Slack-Request-Timestamp`.
 * Verified over the raw bytes, before anything parses the body, with a timing-safe compare.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Slack's own advice: refuse requests whose timestamp is more than five minutes off. */
export const MAX_SKEW_SECONDS = 300;

export type SignatureVerdict =
  | { ok: true; timestamp: number }
  | { ok: false; reason: 'missing headers' | 'stale timestamp' | 'signature mismatch' };

export const slackSignature = (secret: string, timestamp: string | number, rawBody: Uint8Array): string =>
  `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:`).update(rawBody).digest('hex')}`;

export const verifySlackSignature = (input: {
  secret: string;
  timestamp: string | undefined;
  signature: string | undefined;
  rawBody: Uint8Array;
  nowSeconds: number;
}): SignatureVerdict => {
  const { timestamp, signature } = input;
  if (timestamp === undefined || signature === undefined || !/^\d{1,12}$/.test(timestamp)) {
    return { ok: false, reason: 'missing headers' };
  }
  const at = Number(timestamp);
  if (Math.abs(input.nowSeconds - at) > MAX_SKEW_SECONDS) return { ok: false, reason: 'stale timestamp' };
  const expected = Buffer.from(slackSignature(input.secret, timestamp, input.rawBody), 'utf8');
  const given = Buffer.from(signature, 'utf8');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    return { ok: false, reason: 'signature mismatch' };
  }
  return { ok: true, timestamp: at };
};
