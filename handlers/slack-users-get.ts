/** GET /v1/slack/users/{teamId}/{userId}: a Slack user's mapping (admins only). */
import { identityRules } from '../shared/aws/deps.ts';
import { slackUsersDeps } from '../shared/aws/deps-slack-users.ts';
import { route } from '../shared/http/api.ts';
import { SlackUserPath } from '../shared/slack/schemas.ts';
import { getSlackIdentity } from '../shared/slack/identities.ts';

export const handler = route({ path: SlackUserPath }, identityRules, async ({ caller, path }) => ({
  status: 200,
  body: { slackUser: await getSlackIdentity(slackUsersDeps(), caller, path.teamId, path.userId) },
}));
