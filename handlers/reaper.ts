/** The sweep, every minute (EventBridge `rate(1 minute)`): converge EC2, SSM, Scheduler and the table. */
import { sweep } from '../shared/domain/sweep.ts';
import { sweepDeps } from '../shared/aws/deps-ec2.ts';
import { logger } from '../shared/log.ts';

export const handler = async () => {
  const report = await sweep(sweepDeps());
  const { actions, ...summary } = report;
  logger.info('sweep finished', { ...summary, actionCount: actions.length });
  return report;
};
