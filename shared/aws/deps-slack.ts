/**
 * Wiring for the acknowledging Slack routes: the lease table, SSM for the signing secret, and
 * Lambda to hand work to the worker. No EC2 client: they never launch or end anything.
 */
import { LambdaClient } from '@aws-sdk/client-lambda';
import { ConfigError, slackSettings } from '../config.ts';
import type { SlackEdgeDeps } from '../slack/http.ts';
import type { SlackIngressDeps } from '../slack/service.ts';
import { readDeps } from './deps.ts';
import { slackStore } from './deps-slack-users.ts';
import { LambdaSlackJobs } from './slack-jobs.ts';
import { slackSecrets } from './deps-slack-secrets.ts';

let ingress: (SlackIngressDeps & SlackEdgeDeps) | undefined;
export const slackIngressDeps = (): SlackIngressDeps & SlackEdgeDeps => {
  if (ingress === undefined) {
    const { clock, log } = readDeps();
    const slack = slackSettings();
    if (slack.workerFunction === undefined) {
      throw new ConfigError('invalid configuration: ANNEX_SLACK_WORKER_FUNCTION');
    }
    ingress = {
      slackStore: slackStore(),
      jobs: new LambdaSlackJobs(new LambdaClient({}), slack.workerFunction),
      secrets: slackSecrets(),
      clock,
      log,
      slack,
    };
  }
  return ingress;
};
