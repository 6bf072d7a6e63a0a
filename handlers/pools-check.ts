/** POST /v1/pools/{pool}/check: can the cloud reach the pool's collector (TCP, with a timeout)? */
import { checkPool } from '../shared/domain/pool-check.ts';
import { identityRules } from '../shared/aws/deps.ts';
import { poolCheckDeps } from '../shared/aws/deps-pool-check.ts';
import { route } from '../shared/http/api.ts';
import { PoolPath } from '../shared/http/params.ts';

export const handler = route({ path: PoolPath }, identityRules, async ({ caller, path }) => {
  const check = await checkPool(poolCheckDeps(), caller, path.pool);
  return { status: 200, body: { check } };
});
