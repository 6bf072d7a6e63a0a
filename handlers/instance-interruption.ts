/** POST /v1/instances/self/interruption: EC2 announced it will take the instance back. */
import { recordInterruption } from '../shared/domain/instances.ts';
import { identityRules } from '../shared/aws/deps.ts';
import { instanceReportDeps } from '../shared/aws/deps-instances.ts';
import { route } from '../shared/http/api.ts';
import { InterruptionBody } from '../shared/http/instance-schemas.ts';

export const handler = route({ body: InterruptionBody }, identityRules, async ({ caller, body }) => {
  await recordInterruption(instanceReportDeps(), caller, body);
  return { status: 202, body: {} };
});
