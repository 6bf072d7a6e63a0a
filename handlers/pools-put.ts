/** PUT /v1/pools/{pool}: register an HTCondor pool (its credential goes to SSM only). */
import { putPool } from '../shared/domain/pools.ts';
import { poolView } from '../shared/domain/views.ts';
import { identityRules } from '../shared/aws/deps.ts';
import { poolDeps } from '../shared/aws/deps-pools.ts';
import { route } from '../shared/http/api.ts';
import { PoolPath } from '../shared/http/params.ts';
import { PutPoolBody } from '../shared/http/schemas.ts';

export const handler = route(
  { path: PoolPath, body: PutPoolBody },
  identityRules,
  async ({ caller, path, body }) => {
    const pool = await putPool(poolDeps(), caller, path.pool, {
      ...body,
      collectorPort: body.collectorPort ?? 9618,
    });
    return { status: 200, body: { pool: poolView(pool) } };
  },
);
