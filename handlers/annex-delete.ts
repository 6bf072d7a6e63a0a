/** DELETE /v1/annexes/{name}: end the annex now (terminate, delete its credential, free the name). */
import { deleteAnnex } from '../shared/domain/annex-end.ts';
import { annexView } from '../shared/domain/views.ts';
import { identityRules } from '../shared/aws/deps.ts';
import { terminateDeps } from '../shared/aws/deps-ec2.ts';
import { route } from '../shared/http/api.ts';
import { NamePath, OwnerQuery } from '../shared/http/params.ts';

export const handler = route(
  { path: NamePath, query: OwnerQuery },
  identityRules,
  async ({ caller, path, query }) => {
    const annex = await deleteAnnex(terminateDeps(), caller, { name: path.name, ...query });
    return { status: 202, body: { annex: annexView(annex) } };
  },
);
