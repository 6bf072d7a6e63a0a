/** annex add NAME --count N [--type T…]: more instances under the same lease; waits for them. */
import type { Context } from '../context.ts';
import { withHint } from '../context.ts';
import { renderStatus } from '../render.ts';
import { marketOption } from './create.ts';
import type { AnnexDetail } from '../types.ts';
import {
  annexHint,
  annexPath,
  countOption,
  getDetail,
  idempotencyKey,
  typesOption,
  waitSummary,
  waitWithProgress,
} from './common.ts';

export const run = async (ctx: Context): Promise<number> => {
  const name = ctx.name;
  const count = countOption(ctx);
  const instanceTypes = typesOption(ctx);
  const market = marketOption(ctx);
  const key = idempotencyKey(ctx);
  const before = new Set((await getDetail(ctx, name)).instances.map((i) => i.instanceId));
  const api = await ctx.api();
  await api
    .request('POST', annexPath(name, '/instances'), {
      body: { count, ...(instanceTypes.length === 0 ? {} : { instanceTypes }), ...market },
      idempotencyKey: key,
      query: ctx.ownerQuery,
    })
    .catch((e: unknown) => withHint(e, annexHint(name)));
  let detail: AnnexDetail;
  let summary: string;
  if (ctx.flag('no-wait')) {
    detail = await getDetail(ctx, name);
    summary = `${name}: requested ${count} more instance(s); follow it with annex status ${name} --watch.`;
  } else {
    const result = await waitWithProgress(ctx, name, count, before);
    detail = result.detail;
    summary = waitSummary(result, count, 'added');
  }
  ctx.out.data(detail);
  ctx.out.print(renderStatus(detail, ctx.now(), ctx.out.paint, ctx.out.columns));
  ctx.out.print();
  ctx.out.print(summary);
  return 0;
};
