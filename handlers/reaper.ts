/** The sweep, every minute (EventBridge `rate(1 minute)`): converge EC2, SSM, Scheduler and the table. */
import { sweep } from '../shared/domain/sweep.ts';
import { sweepDeps } from '../shared/aws/deps-ec2.ts';
import { logger } from '../shared/log.ts';

/** What the sweep reads of the Lambda context: its remaining time (absent when run by hand). */
interface InvocationContext {
  getRemainingTimeInMillis?: () => number;
}

export const handler = async (_event?: unknown, context?: InvocationContext) => {
  const remaining = context?.getRemainingTimeInMillis;
  const report = await sweep({
    ...sweepDeps(),
    ...(typeof remaining === 'function' ? { remainingMs: () => remaining.call(context) } : {}),
  });
  const { actions, ...summary } = report;
  logger.info('sweep finished', { ...summary, actionCount: actions.length });
  return report;
};
