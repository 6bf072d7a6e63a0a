/** Target of the per-annex EventBridge Scheduler `at(expiresAt)` schedule: end that annex. */
import { expireAnnex } from '../shared/domain/annexes.ts';
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
  const annex = await expireAnnex(terminateDeps(), event.annexId);
  logger.info('expiry handled', { annexId: event.annexId, firedFor: event.expiresAt, state: annex?.state });
  return { annexId: event.annexId, ...(annex === undefined ? {} : { state: annex.state }) };
};
