/** POST /v1/slack/commands: `/annex …`, Slack-signed; acknowledged at once, done by the worker. */
import { slackIngressDeps } from '../shared/aws/deps-slack.ts';
import { slackRoute } from '../shared/slack/http.ts';
import { commandRequest } from '../shared/slack/requests.ts';
import { acceptCommand } from '../shared/slack/service.ts';

export const handler = slackRoute(slackIngressDeps, async (verified) => {
  const command = commandRequest(verified);
  return command === undefined ? undefined : acceptCommand(slackIngressDeps(), command.request, command.text);
});
