/**
 * What EC2 says about one annex instance, from either of its two messengers: the EventBridge
 * events EC2 sends (handlers/ec2-events.ts) and the instance's own report of a spot interruption
 * notice (POST /v1/instances/self/interruption). Both write through `applyNotice`, so a notice is
 * recorded once, whichever arrives first and however often it is replayed, and a late state
 * change never moves an instance back (the store compares event times; see LeaseStore).
 */
import { annexEvent } from './events.ts';
import { toIso } from './lease.ts';
import type { AnnexEvent, EndReason, InstanceNotice, InstanceRecord, InstanceState } from './model.ts';
import type { LeaseStore } from './ports.ts';

/** Who told us: EC2 through EventBridge, or the instance itself. */
export type NoticeVia = 'ec2-event' | 'instance';

/** EC2 states in the order an instance goes through them (`terminated` is final). */
const STATE_RANK: Record<InstanceState, number> = {
  pending: 0,
  running: 1,
  stopping: 2,
  stopped: 3,
  'shutting-down': 4,
  terminated: 5,
};

/**
 * Sortable position of a state-change event: its time, then the state's rank (EventBridge times
 * have second precision, so `pending` and `running` may share one).
 */
export const stateEventKey = (at: string, state: InstanceState): string =>
  `${toIso(new Date(at))}#${STATE_RANK[state]}`;

/** States in which the instance has left (or is leaving) the pool: they are recorded as annex events. */
export const LEAVING: ReadonlySet<InstanceState> = new Set([
  'stopping',
  'stopped',
  'shutting-down',
  'terminated',
]);

const describe = (
  instance: InstanceRecord,
  notice: InstanceNotice,
  via: NoticeVia,
): { type: string; message: string; reason?: EndReason; detail: Record<string, unknown> } | undefined => {
  const id = instance.instanceId;
  switch (notice.kind) {
    case 'interruption':
      return {
        type: 'spot-interruption',
        message: `instance ${id}: EC2 will ${notice.interruption.action} it at ${notice.interruption.time}`,
        reason: 'interrupted',
        detail: { instanceId: id, ...notice.interruption, via },
      };
    case 'rebalance':
      return {
        type: 'rebalance-recommended',
        message: `instance ${id}: EC2 recommends rebalancing (elevated risk of interruption)`,
        detail: { instanceId: id, at: notice.at, via },
      };
    case 'state':
      if (!LEAVING.has(notice.state)) return undefined;
      return {
        type: 'instance-state',
        message: `instance ${id} is ${notice.state} (EC2, ${notice.at})`,
        ...(instance.interruption === undefined ? {} : { reason: 'interrupted' as const }),
        detail: { instanceId: id, state: notice.state, at: notice.at, via },
      };
  }
};

/**
 * Records `notice` on the instance record and, when it matters to the annex's audit trail, as an
 * annex event in the same write. 'stale' means nothing was written: a replay, or older news.
 */
export const applyNotice = async (
  deps: { store: Pick<LeaseStore, 'applyInstanceNotice'> },
  instance: InstanceRecord,
  notice: InstanceNotice,
  via: NoticeVia,
  eventAt: string,
): Promise<'applied' | 'stale' | 'missing'> => {
  const described = describe(instance, notice, via);
  const event: AnnexEvent | undefined =
    described === undefined
      ? undefined
      : annexEvent({ id: instance.annexId }, eventAt, described.type, described.message, {
          ...(described.reason === undefined ? {} : { reason: described.reason }),
          detail: described.detail,
        });
  return deps.store.applyInstanceNotice(instance.annexId, instance.instanceId, notice, event);
};
