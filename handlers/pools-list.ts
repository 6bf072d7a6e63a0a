/** GET /v1/pools: the pools the caller may burst into (never a credential). */
import { listPools } from '../shared/domain/pools.ts';
import { poolView } from '../shared/domain/views.ts';
import { identityRules, readDeps } from '../shared/aws/deps.ts';
import { launchSettings } from '../shared/config.ts';
import { route } from '../shared/http/api.ts';

export const handler = route({}, identityRules, async ({ caller }) => {
  const pools = await listPools({ ...readDeps(), launch: launchSettings() }, caller);
  return { status: 200, body: { pools: pools.map(poolView) } };
});
