/** PUT /v1/slack/users/{teamId}/{userId}: map a Slack user to a principal and its pools (admins only). */
import { identityRules } from '../shared/aws/deps.ts';
import { slackUsersDeps } from '../shared/aws/deps-slack-users.ts';
import { route } from '../shared/http/api.ts';
import { PutSlackUserBody, SlackUserPath } from '../shared/slack/schemas.ts';
import { putSlackIdentity } from '../shared/slack/identities.ts';

export const handler = route(
  { path: SlackUserPath, body: PutSlackUserBody },
  identityRules,
  async ({ caller, path, body }) => ({
    status: 200,
    body: { slackUser: await putSlackIdentity(slackUsersDeps(), caller, path.teamId, path.userId, body) },
  }),
);
