/** POST /v1/annexes/{name}/instances: add nodes under the same lease. */
import { addNodes } from '../shared/domain/annex-nodes.ts';
import { annexView } from '../shared/domain/views.ts';
import { identityRules } from '../shared/aws/deps.ts';
import { launchDeps } from '../shared/aws/deps-ec2.ts';
import { route } from '../shared/http/api.ts';
import { NamePath, OwnerQuery } from '../shared/http/params.ts';
import { AddNodesBody } from '../shared/http/schemas.ts';

export const handler = route(
  { path: NamePath, query: OwnerQuery, body: AddNodesBody },
  identityRules,
  async ({ caller, path, query, body, idempotencyKey }) => {
    const annex = await addNodes(launchDeps(), caller, { name: path.name, ...query }, body, idempotencyKey);
    return { status: 200, body: { annex: annexView(annex) } };
  },
);
