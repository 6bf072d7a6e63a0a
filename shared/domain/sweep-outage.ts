/**
 * The table-outage fallback: the table cannot say what a lease is, but every instance carries its
 * expiry. Those past it by more than the grace (lease-planner.ts's planOutage) are terminated from
 * the EC2 listing alone (no event: the table is down).
 */
import { mapLimit } from './concurrency.ts';
import { planOutage } from './lease-planner.ts';
import type { TaggedInstance } from './ports.ts';
import { groupBy, type Act, type Guard, type SweepDeps } from './sweep-model.ts';

export const enforceExpiryTags = async (
  deps: SweepDeps,
  tagged: TaggedInstance[],
  now: Date,
  guarded: Guard,
  act: Act,
): Promise<void> => {
  const due = groupBy(planOutage(tagged, now, deps.sweep), (i) => i.annexId);
  await mapLimit([...due], deps.sweep.concurrency, ([annexId, instances]) =>
    guarded('expiry-tags', annexId, async () => {
      const ids = instances.map((i) => i.instanceId);
      await deps.compute.terminate(ids);
      act({ action: 'terminate-past-expiry', reason: 'expired', annexId, instanceIds: ids });
    }),
  );
};
