/** Invoked asynchronously by the Slack routes: does the work as the mapped principal, answers on response_url. */
import { slackWorkerDeps } from '../shared/aws/deps-slack-worker.ts';
import type { SlackJob } from '../shared/slack/model.ts';
import { runSlackJob } from '../shared/slack/service.ts';

export const handler = async (job: SlackJob): Promise<void> => {
  await runSlackJob(slackWorkerDeps(), job);
};
