/** POST /v1/instances/self/heartbeat: the agent reports its slots; the answer carries the lease (and a renewed IDTOKEN). */
import { recordHeartbeat } from '../shared/domain/instances.ts';
import { identityRules } from '../shared/aws/deps.ts';
import { heartbeatDeps } from '../shared/aws/deps-instances.ts';
import { route } from '../shared/http/api.ts';
import { HeartbeatBody } from '../shared/http/instance-schemas.ts';

export const handler = route({ body: HeartbeatBody }, identityRules, async ({ caller, body }) => ({
  status: 200,
  body: await recordHeartbeat(heartbeatDeps(), caller, body),
}));
