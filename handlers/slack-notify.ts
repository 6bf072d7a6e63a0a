/** Every minute: expiry warnings and end notices for annexes created from Slack (chat.postMessage). */
import { slackNotifyDeps } from '../shared/aws/deps-slack-notify.ts';
import { logger } from '../shared/log.ts';
import { notifySlack } from '../shared/slack/notify.ts';

export const handler = async () => {
  const report = await notifySlack(slackNotifyDeps());
  if (report.warned + report.ended + report.failed > 0) logger.info('slack notices sent', { ...report });
  return report;
};
