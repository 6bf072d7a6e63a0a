/**
 * Target of the per-annex EventBridge Scheduler schedule, which fires up to two minutes before the
 * expiry (the Scheduler's precision is a minute): wait for the exact second, then end that annex.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expireAnnex } from '../shared/domain/annex-end.ts';
import { EXPIRY_MAX_WAIT_SECONDS } from '../shared/domain/lease.ts';
import { terminateDeps } from '../shared/aws/deps-ec2.ts';
import { logger } from '../shared/log.ts';

interface ExpiryEvent {
  annexId?: unknown;
  expiresAt?: unknown;
}

export const handler = async (event: ExpiryEvent): Promise<{ annexId: string; state?: string }> => {
  if (typeof event.annexId !== 'string' || !/^ax-[0-9a-f]{1,40}$/.test(event.annexId)) {
    logger.error('expiry event without a valid annex id', { annexId: String(event.annexId) });
    return { annexId: String(event.annexId) };
  }
  const annex = await expireAnnex(terminateDeps(), event.annexId, {
    sleep: (ms) => sleep(ms),
    maxWaitMs: EXPIRY_MAX_WAIT_SECONDS * 1000,
  });
  logger.info('expiry handled', { annexId: event.annexId, firedFor: event.expiresAt, state: annex?.state });
  return { annexId: event.annexId, ...(annex === undefined ? {} : { state: annex.state }) };
};
