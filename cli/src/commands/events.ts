/** annex events NAME: what happened to an annex, oldest first. */
import type { Context } from '../context.ts';
import { latestEvents, renderEvents } from '../render.ts';
import { getDetail } from './common.ts';

export const run = async (ctx: Context): Promise<number> => {
  const { annex, events } = await getDetail(ctx, ctx.name);
  const ordered = latestEvents(events, events.length);
  ctx.out.data({ name: annex.name, id: annex.id, events: ordered });
  ctx.out.print(renderEvents(ordered, ctx.now(), ctx.out.paint, ctx.out.columns));
  return 0;
};
