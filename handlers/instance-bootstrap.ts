/** POST /v1/instances/self/bootstrap: an annex instance's pool credential and HTCondor config, once. */
import { bootstrapInstance } from '../shared/domain/instances.ts';
import { identityRules } from '../shared/aws/deps.ts';
import { bootstrapDeps } from '../shared/aws/deps-instances.ts';
import { route } from '../shared/http/api.ts';

export const handler = route({}, identityRules, async ({ caller }) => ({
  status: 200,
  body: await bootstrapInstance(bootstrapDeps(), caller),
}));
