/** GET /v1/annexes: the caller's annexes (admins: every live annex, or ?owner=), with counts and cost. */
import { listAnnexes } from '../shared/domain/annex-read.ts';
import { withInstances } from '../shared/domain/cost.ts';
import { annexView } from '../shared/domain/views.ts';
import { identityRules, readDeps } from '../shared/aws/deps.ts';
import { route } from '../shared/http/api.ts';
import { OwnerQuery } from '../shared/http/params.ts';

export const handler = route({ query: OwnerQuery }, identityRules, async ({ caller, query }) => {
  const deps = readDeps();
  const annexes = await withInstances(deps, await listAnnexes(deps, caller, query.owner));
  const now = deps.clock.now();
  return { status: 200, body: { annexes: annexes.map((a) => annexView(a.annex, a.instances, now)) } };
});
