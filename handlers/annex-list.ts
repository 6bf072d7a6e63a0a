/** GET /v1/annexes: the caller's annexes (admins: every live annex, or ?owner=). */
import { listAnnexes } from '../shared/domain/annexes.ts';
import { annexView } from '../shared/domain/views.ts';
import { adminArns, readDeps } from '../shared/aws/deps.ts';
import { route } from '../shared/http/api.ts';
import { OwnerQuery } from '../shared/http/params.ts';

export const handler = route({ query: OwnerQuery }, adminArns, async ({ caller, query }) => {
  const annexes = await listAnnexes(readDeps(), caller, query.owner);
  return { status: 200, body: { annexes: annexes.map((a) => annexView(a)) } };
});
