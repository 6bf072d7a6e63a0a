/**
 * Who is calling an instance route. The caller is identified by API Gateway from its SigV4
 * signature: an instance signs with its instance-profile credentials, so its principal is
 * `assumed-role/<instance role>/<instance id>`. Nothing else is trusted: the instance id names an
 * item of the lease table (written when the instance was launched, or adopted by the sweep only
 * once its provenance was checked: see provenance.ts), which names the annex.
 */
import type { Annex, Caller, InstanceRecord } from './model.ts';
import { forbidden } from './errors.ts';
import type { InstanceSettings, LeaseStore, Logger } from './ports.ts';

export type LocateStore = Pick<LeaseStore, 'findInstanceAnnex' | 'getAnnex' | 'getInstance'>;

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const ASSUMED_ROLE = /^arn:aws[a-z-]*:sts::\d{12}:assumed-role\/([^/]+)\/([^/]+)$/;

/** The same answer for every refusal: a caller learns nothing about which check failed. */
export const refused = () => forbidden('only a live annex instance may call this route, once per boot');

/**
 * The instance id of a caller signing as the instance role (its role-session name, as EC2 sets it
 * for instance-profile credentials), or undefined for anyone else.
 */
export const instanceIdOf = (
  sessionArn: string | undefined,
  instanceRoleName: string,
): string | undefined => {
  if (sessionArn === undefined) return undefined;
  const match = ASSUMED_ROLE.exec(sessionArn);
  if (match === null || match[1] !== instanceRoleName) return undefined;
  const session = match[2] ?? '';
  return INSTANCE_ID.test(session) ? session : undefined;
};

/** An annex whose instances may still join and work: being launched or running, and not expired. */
export const servesInstances = (annex: Annex, now: Date): boolean =>
  (annex.state === 'REQUESTED' || annex.state === 'LAUNCHING' || annex.state === 'RUNNING') &&
  Date.parse(annex.expiresAt) > now.getTime();

export const instanceGone = (i: InstanceRecord): boolean =>
  i.state === 'terminated' || i.state === 'shutting-down';

export interface Located {
  instanceId: string;
  annex?: Annex;
  instance?: InstanceRecord;
}

/** Who is calling, and (when they are an instance of ours) its annex and record. */
export const locate = async (
  deps: { store: LocateStore; instances: InstanceSettings; log: Logger },
  caller: Caller,
  route: string,
): Promise<Located> => {
  const instanceId = instanceIdOf(caller.sessionArn, deps.instances.instanceRoleName);
  if (instanceId === undefined) {
    deps.log.warn('instance route refused: the caller is not an annex instance', {
      route,
      principalArn: caller.principalArn,
      ...(caller.sessionArn === undefined ? {} : { sessionArn: caller.sessionArn }),
    });
    throw refused();
  }
  const annexId = await deps.store.findInstanceAnnex(instanceId);
  if (annexId === undefined) {
    deps.log.warn('instance route refused: no annex recorded this instance', { route, instanceId });
    throw refused();
  }
  const [annex, instance] = await Promise.all([
    deps.store.getAnnex(annexId),
    deps.store.getInstance(annexId, instanceId),
  ]);
  return {
    instanceId,
    ...(annex === undefined ? {} : { annex }),
    ...(instance === undefined ? {} : { instance }),
  };
};
