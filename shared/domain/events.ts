/** The one builder of an annex's audit events: every use case, the sweep and the EC2 paths use it. */
import { toIso } from './lease.ts';
import type { Annex, AnnexEvent } from './model.ts';

export const annexEvent = (
  annex: Pick<Annex, 'id'>,
  at: Date,
  type: string,
  message: string,
  extra: Pick<AnnexEvent, 'reason' | 'detail'> = {},
): AnnexEvent => ({ annexId: annex.id, at: toIso(at), type, message, ...extra });
