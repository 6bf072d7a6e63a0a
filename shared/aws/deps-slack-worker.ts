/** Wiring for the Slack worker: everything create, extend and terminate need, and Slack over HTTPS. */
import { identityRules, slackSettings } from '../config.ts';
import { HttpSlackMessenger } from '../slack/client.ts';
import type { SlackWorkerDeps } from '../slack/service.ts';
import { launchDeps } from './deps-ec2.ts';
import { slackStore } from './deps-slack-users.ts';

let worker: SlackWorkerDeps | undefined;

export const slackWorkerDeps = (): SlackWorkerDeps => {
  if (worker === undefined) {
    const slack = slackSettings();
    worker = {
      ...launchDeps(),
      slackStore: slackStore(),
      messenger: new HttpSlackMessenger(slack),
      slack,
      identity: identityRules(),
    };
  }
  return worker;
};
