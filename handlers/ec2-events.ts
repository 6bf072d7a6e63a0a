/** EventBridge rules for EC2's spot interruption, rebalance and state-change events about instances. */
import { handleEc2Event, parseEc2Event, type Ec2EventOutcome } from '../shared/domain/ec2-events.ts';
import { launchDeps } from '../shared/aws/deps-ec2.ts';
import { logger } from '../shared/log.ts';

export const handler = async (raw: unknown): Promise<Ec2EventOutcome | { outcome: 'ignored' }> => {
  const event = parseEc2Event(raw);
  if (event === undefined) {
    const { id, source } = (raw ?? {}) as { id?: unknown; source?: unknown };
    logger.warn('not an EC2 event this function handles; ignored', {
      eventId: String(id),
      source: String(source),
    });
    return { outcome: 'ignored' };
  }
  return handleEc2Event(launchDeps(), event);
};
