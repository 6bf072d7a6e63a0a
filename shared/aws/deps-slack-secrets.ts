/** The Slack signing secret and bot token (SSM), shared by the Slack routes and the notifier. */
import { SSMClient } from '@aws-sdk/client-ssm';
import { slackSettings } from '../config.ts';
import { readDeps } from './deps.ts';
import { SsmSlackSecrets } from './slack-secrets.ts';

let secrets: SsmSlackSecrets | undefined;
/** The Slack secrets in SSM (cached in the Lambda; see SsmSlackSecrets). */
export const slackSecrets = (): SsmSlackSecrets => {
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
