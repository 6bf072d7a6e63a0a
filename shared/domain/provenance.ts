/**
 * Instance provenance: which instances Annex launched. Tags are not proof (anyone who may call
 * RunInstances in the account can set them); what is:
 *
 * - RunInstances: the instance's ClientToken is one of the batch's tokens, an HMAC under the
 *   annex's launch secret (lease.ts clientToken), which never leaves the lease table;
 * - CreateFleet: the instance's `aws:ec2:fleet-id` tag (EC2 sets it; an `aws:` tag cannot be set
 *   by a caller) names the fleet Annex recorded for the batch, or, after a launch whose answer was
 *   lost, a fleet whose own ClientToken is the batch's token;
 * - in both cases the instance runs with the stack's instance profile.
 *
 * The sweep adopts only instances that pass, and records only those; bootstrap serves only
 * recorded instances whose recorded launch token is the batch's. Anything else carrying an
 * annex's tags is forged: terminated and recorded as a `forged-instance` event on that annex.
 */
import { annexEvent } from './events.ts';
import { clientToken, isBatchClientToken } from './lease.ts';
import type { Annex, InstanceRecord } from './model.ts';
import type { Compute, LaunchedInstance, LaunchSettings, LeaseStore, Logger } from './ports.ts';

/** The token of a batch's one CreateFleet (attempt 0). */
export const fleetToken = (annex: Pick<Annex, 'id' | 'launchSecret'>, batch: number): string =>
  clientToken(annex.id, batch, 0, annex.launchSecret);

export type Provenance = { genuine: true; launchToken: string } | { genuine: false; why: string };

/**
 * The rule, on what EC2 reports of one instance: genuine when it runs with the stack's instance
 * profile and was launched by the batch's RunInstances or by the fleet recorded for its batch.
 */
export const provenanceOf = (
  annex: Pick<Annex, 'id' | 'launchSecret' | 'fleetIds'>,
  instance: Pick<LaunchedInstance, 'batch' | 'clientToken' | 'instanceProfileArn' | 'fleetId'>,
  instanceProfileArn: string | undefined,
): Provenance => {
  if (instance.instanceProfileArn !== instanceProfileArn) {
    return {
      genuine: false,
      why: `its instance profile (${instance.instanceProfileArn ?? 'none'}) is not the stack's`,
    };
  }
  const batch = instance.batch;
  if (instance.fleetId !== undefined) {
    const recorded = annex.fleetIds?.[String(batch)];
    return recorded === instance.fleetId
      ? { genuine: true, launchToken: fleetToken(annex, batch) }
      : {
          genuine: false,
          why: `fleet ${instance.fleetId} is not the fleet Annex launched batch ${batch} with`,
        };
  }
  return isBatchClientToken(annex, batch, instance.clientToken) && instance.clientToken !== undefined
    ? { genuine: true, launchToken: instance.clientToken }
    : { genuine: false, why: `it was not launched with a client token Annex issued for batch ${batch}` };
};

/** Whether a recorded instance was recorded from a launch Annex made (bootstrap's check). */
export const recordIsGenuine = (
  annex: Pick<Annex, 'id' | 'launchSecret'>,
  record: Pick<InstanceRecord, 'batch' | 'launchToken'>,
): boolean =>
  // Annexes from before launch secrets: their records carry no token; they keep the old rule.
  annex.launchSecret === undefined || isBatchClientToken(annex, record.batch, record.launchToken);

export interface ProvenanceDeps {
  compute: Pick<Compute, 'fleetClientToken'>;
  launch: Pick<LaunchSettings, 'instanceProfileArn'>;
}

export interface Sorted<T extends LaunchedInstance> {
  /** Genuine instances, each with the launch token to record. */
  genuine: (T & { launchToken: string })[];
  forged: { instance: T; why: string }[];
  /** Fleets found to be the annex's (their ClientToken is the batch's), by batch: to record. */
  fleetIds: Record<string, string>;
}

/**
 * Sorts what EC2 reports into genuine and forged. A fleet the annex has not recorded (its
 * CreateFleet answer was lost) is asked for its client token once (DescribeFleets).
 */
export const sortByProvenance = async <T extends LaunchedInstance>(
  deps: ProvenanceDeps,
  annex: Annex,
  instances: readonly T[],
): Promise<Sorted<T>> => {
  const fleetIds: Record<string, string> = { ...annex.fleetIds };
  const unknown = new Map<string, number>();
  for (const i of instances) {
    if (i.fleetId !== undefined && fleetIds[String(i.batch)] === undefined) unknown.set(i.fleetId, i.batch);
  }
  const found: Record<string, string> = {};
  for (const [fleetId, batch] of unknown) {
    if (found[String(batch)] !== undefined) continue;
    if ((await deps.compute.fleetClientToken(fleetId)) === fleetToken(annex, batch)) {
      found[String(batch)] = fleetId;
    }
  }
  const known = { ...annex, fleetIds: { ...fleetIds, ...found } };
  const sorted: Sorted<T> = { genuine: [], forged: [], fleetIds: found };
  for (const i of instances) {
    const p = provenanceOf(known, i, deps.launch.instanceProfileArn);
    if (p.genuine) sorted.genuine.push({ ...i, launchToken: p.launchToken });
    else sorted.forged.push({ instance: i, why: p.why });
  }
  return sorted;
};

/**
 * Terminates forged instances and records each as a `forged-instance` event on the annex it
 * claims (its id and why; nothing it could use). Never recorded as an instance of the annex.
 */
export const terminateForged = async (
  deps: { compute: Pick<Compute, 'terminate'>; store: Pick<LeaseStore, 'appendEvent'>; log: Logger },
  annex: Pick<Annex, 'id'>,
  forged: readonly { instance: LaunchedInstance; why: string }[],
  now: Date,
): Promise<void> => {
  if (forged.length === 0) return;
  await deps.compute.terminate(forged.map((f) => f.instance.instanceId));
  for (const { instance, why } of forged) {
    deps.log.warn('forged instance terminated', { annexId: annex.id, instanceId: instance.instanceId, why });
    await deps.store.appendEvent(
      annexEvent(
        annex,
        now,
        'forged-instance',
        `instance ${instance.instanceId} carries this annex's tags but Annex did not launch it (${why}); terminated, never served`,
        { detail: { instanceId: instance.instanceId, batch: instance.batch, why } },
      ),
    );
  }
};
