/** Wiring for the Slack notifier: the lease table, SSM for the bot token, Slack over HTTPS (no Lambda, no EC2). */
import { slackSettings } from '../config.ts';
import { HttpSlackMessenger } from '../slack/client.ts';
import type { SlackNotifyDeps } from '../slack/notify.ts';
import { readDeps } from './deps.ts';
import { slackSecrets } from './deps-slack-secrets.ts';
import { slackStore } from './deps-slack-users.ts';

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
