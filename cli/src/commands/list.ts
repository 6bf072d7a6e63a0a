/** annex list: your annexes (administrators: every live annex, or one owner's with --owner-arn). */
import type { Context } from '../context.ts';
import { renderAnnexList } from '../render.ts';
import type { Annex } from '../types.ts';

export const run = async (ctx: Context): Promise<number> => {
  const api = await ctx.api();
  const { annexes } = await api.request<{ annexes: Annex[] }>('GET', '/v1/annexes', {
    query: ctx.ownerQuery,
  });
  ctx.out.data({ annexes });
  ctx.out.print(renderAnnexList(annexes, ctx.now(), ctx.out.paint, ctx.out.columns));
  return 0;
};
