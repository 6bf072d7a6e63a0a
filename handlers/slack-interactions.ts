/** POST /v1/slack/interactions: the Extend 1h and Terminate buttons, Slack-signed; done by the worker. */
import { slackIngressDeps } from '../shared/aws/deps-slack.ts';
import { slackRoute } from '../shared/slack/http.ts';
import { actionRequest } from '../shared/slack/requests.ts';
import { acceptAction } from '../shared/slack/service.ts';

export const handler = slackRoute(slackIngressDeps, async (verified) => {
  const click = actionRequest(verified);
  return click === undefined ? undefined : acceptAction(slackIngressDeps(), click.request, click.action);
});
