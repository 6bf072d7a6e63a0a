/** POST /v1/annexes: create an annex (idempotent by Idempotency-Key). */
import { createAnnex } from '../shared/domain/annex-create.ts';
import { annexView } from '../shared/domain/views.ts';
import { identityRules } from '../shared/aws/deps.ts';
import { launchDeps } from '../shared/aws/deps-ec2.ts';
import { route } from '../shared/http/api.ts';
import { CreateAnnexBody } from '../shared/http/schemas.ts';

export const handler = route(
  { body: CreateAnnexBody },
  identityRules,
  async ({ caller, body, idempotencyKey }) => {
    const { annex } = await createAnnex(launchDeps(), caller, body, idempotencyKey);
    return { status: 201, body: { annex: annexView(annex) } };
  },
);
