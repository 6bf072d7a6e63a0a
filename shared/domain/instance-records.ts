/** What the table records of an annex's instances, whichever use case launched or found them. */
import { launchesThroughFleet } from './lease.ts';
import type { Annex, InstanceRecord } from './model.ts';
import type { LaunchedInstance } from './ports.ts';

export const instanceRecord = (
  annex: Annex,
  i: LaunchedInstance & { launchToken?: string },
  at: string,
): InstanceRecord => ({
  instanceId: i.instanceId,
  annexId: annex.id,
  batch: i.batch,
  instanceType: i.instanceType,
  market: i.market ?? (annex.spec.market === 'spot' ? 'spot' : 'on-demand'),
  state: i.state,
  launchedAt: i.launchedAt,
  updatedAt: at,
  ...(i.subnetId === undefined ? {} : { subnetId: i.subnetId }),
  ...(i.availabilityZone === undefined ? {} : { availabilityZone: i.availabilityZone }),
  ...(i.privateIpAddress === undefined ? {} : { privateIpAddress: i.privateIpAddress }),
  ...(i.publicIpAddress === undefined ? {} : { publicIpAddress: i.publicIpAddress }),
  ...(i.launchToken === undefined ? {} : { launchToken: i.launchToken }),
  ...(i.fleetId === undefined ? {} : { fleetId: i.fleetId }),
});

/** Whether an annex may have launched through EC2 Fleet (and so made its launch template). */
export const mayHaveLaunchTemplate = (annex: Annex, instances: readonly InstanceRecord[]): boolean =>
  // A spot batch added to an on-demand annex launched through a fleet too.
  launchesThroughFleet(annex.spec) || instances.some((i) => i.market !== 'on-demand');
