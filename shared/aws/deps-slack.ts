/**
 * Wiring for the Slack functions that never launch or end anything: the acknowledging routes
 * (lease table, SSM for the signing secret, Lambda to hand work to the worker), the mapping
 * routes (lease table) and the notifier (lease table, SSM for the bot token, Slack over HTTPS).
 */
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SSMClient } from '@aws-sdk/client-ssm';
import { ConfigError, slackSettings } from '../config.ts';
import { HttpSlackMessenger } from '../slack/client.ts';
import type { SlackEdgeDeps } from '../slack/http.ts';
import type { SlackIngressDeps, SlackNotifyDeps } from '../slack/service.ts';
import { readDeps } from './deps.ts';
import { slackStore } from './deps-slack-users.ts';
import { LambdaSlackJobs } from './slack-jobs.ts';
import { SsmSlackSecrets } from './slack-secrets.ts';

let secrets: SsmSlackSecrets | undefined;
const slackSecrets = (): SsmSlackSecrets => {
  if (secrets === undefined) {
    const s = slackSettings();
    secrets = new SsmSlackSecrets(
      new SSMClient({}),
      { signingSecret: s.signingSecretParameter, botToken: s.botTokenParameter },
      readDeps().clock,
    );
  }
  return secrets;
};

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

let notify: SlackNotifyDeps | undefined;
export const slackNotifyDeps = (): SlackNotifyDeps => {
  if (notify === undefined) {
    const { store: leases, clock, log } = readDeps();
    const slack = slackSettings();
    notify = {
      store: leases,
      slackStore: slackStore(),
      secrets: slackSecrets(),
      messenger: new HttpSlackMessenger(slack),
      clock,
      log,
      slack,
    };
  }
  return notify;
};
