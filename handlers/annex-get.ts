/** GET /v1/annexes/{name}: one annex with its instances and recent events. */
import { getAnnexDetail } from '../shared/domain/annex-read.ts';
import { annexView, eventView, instanceView } from '../shared/domain/views.ts';
import { identityRules, readDeps } from '../shared/aws/deps.ts';
import { route } from '../shared/http/api.ts';
import { NamePath, OwnerQuery } from '../shared/http/params.ts';

export const handler = route(
  { path: NamePath, query: OwnerQuery },
  identityRules,
  async ({ caller, path, query }) => {
    const deps = readDeps();
    const { annex, instances, events } = await getAnnexDetail(deps, caller, { name: path.name, ...query });
    return {
      status: 200,
      body: {
        annex: annexView(annex, instances, deps.clock.now()),
        instances: instances.map(instanceView),
        events: events.map(eventView),
      },
    };
  },
);
