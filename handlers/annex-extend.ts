/** POST /v1/annexes/{name}/extend: change the lease without adding nodes. */
import { extendAnnex } from '../shared/domain/annex-extend.ts';
import { annexView } from '../shared/domain/views.ts';
import { identityRules } from '../shared/aws/deps.ts';
import { extendDeps } from '../shared/aws/deps-ec2.ts';
import { route } from '../shared/http/api.ts';
import { NamePath, OwnerQuery } from '../shared/http/params.ts';
import { ExtendAnnexBody } from '../shared/http/schemas.ts';

export const handler = route(
  { path: NamePath, query: OwnerQuery, body: ExtendAnnexBody },
  identityRules,
  async ({ caller, path, query, body }) => {
    const annex = await extendAnnex(extendDeps(), caller, { name: path.name, ...query }, body);
    return { status: 200, body: { annex: annexView(annex) } };
  },
);
