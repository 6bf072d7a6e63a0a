/** GET /v1/annexes/{name}/condor-config: the HTCondor config fragment its instances get (no secret). */
import { annexCondorConfig } from '../shared/domain/instance-config.ts';
import { identityRules, readDeps } from '../shared/aws/deps.ts';
import { route } from '../shared/http/api.ts';
import { NamePath, OwnerQuery } from '../shared/http/params.ts';

export const handler = route(
  { path: NamePath, query: OwnerQuery },
  identityRules,
  async ({ caller, path, query }) => {
    const { condorConfig } = await annexCondorConfig(readDeps(), caller, { name: path.name, ...query });
    return { status: 200, body: { condorConfig } };
  },
);
