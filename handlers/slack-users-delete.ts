/** DELETE /v1/slack/users/{teamId}/{userId}: unmap a Slack user (admins only). */
import { identityRules } from '../shared/aws/deps.ts';
import { slackUsersDeps } from '../shared/aws/deps-slack-users.ts';
import { route } from '../shared/http/api.ts';
import { SlackUserPath } from '../shared/slack/schemas.ts';
import { deleteSlackIdentity } from '../shared/slack/identities.ts';

export const handler = route({ path: SlackUserPath }, identityRules, async ({ caller, path }) => {
  await deleteSlackIdentity(slackUsersDeps(), caller, path.teamId, path.userId);
  return { status: 204, body: undefined };
});
