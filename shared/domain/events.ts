/** The one builder of an annex's audit events: every use case, the sweep and the EC2 paths use it. */
import { toIso } from './lease.ts';
import type { Annex, AnnexEvent } from './model.ts';

/** `at` is a Date, or an ISO time the caller already holds (an EC2 event's, a write's). */
export const annexEvent = (
  annex: Pick<Annex, 'id'>,
  at: Date | string,
  type: string,
  message: string,
  extra: Pick<AnnexEvent, 'reason' | 'detail'> = {},
): AnnexEvent => ({
  annexId: annex.id,
  at: typeof at === 'string' ? at : toIso(at),
  type,
  message,
  ...extra,
});
