/** POST /v1/instances/self/heartbeat: the agent reports its slots; the answer carries the lease. */
import { recordHeartbeat } from '../shared/domain/instances.ts';
import { adminArns } from '../shared/aws/deps.ts';
import { instanceReportDeps } from '../shared/aws/deps-instances.ts';
import { route } from '../shared/http/api.ts';
import { HeartbeatBody } from '../shared/http/instance-schemas.ts';

export const handler = route({ body: HeartbeatBody }, adminArns, async ({ caller, body }) => ({
  status: 200,
  body: await recordHeartbeat(instanceReportDeps(), caller, body),
}));
