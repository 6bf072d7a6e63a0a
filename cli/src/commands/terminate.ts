/** annex terminate NAME [--yes]: end the annex now. */
import type { Context } from '../context.ts';
import { withHint } from '../context.ts';
import { CliError, usageError } from '../errors.ts';
import type { Annex } from '../types.ts';
import { annexHint, annexPath, confirm, getDetail, interactive } from './common.ts';

export const run = async (ctx: Context): Promise<number> => {
  const name = ctx.name;
  if (!ctx.flag('yes')) {
    if (!interactive(ctx))
      throw usageError('annex terminate needs --yes when it cannot ask', `annex terminate ${name} --yes`);
    const { annex, instances } = await getDetail(ctx, name);
    const live = instances.filter((i) => i.state === 'pending' || i.state === 'running').length;
    if (!(await confirm(ctx, `Terminate ${annex.name} (${annex.state}) and its ${live} instance(s) now?`))) {
      throw new CliError(`not terminating ${name}`, { code: 'Cancelled', hint: 'nothing was changed' });
    }
  }
  const api = await ctx.api();
  const { annex } = await api
    .request<{ annex: Annex }>('DELETE', annexPath(name), { query: ctx.ownerQuery })
    .catch((e: unknown) => withHint(e, annexHint(name)));
  const detail = await getDetail(ctx, name);
  ctx.out.data(detail);
  ctx.out.print(
    `${annex.name}: ${annex.state}${annex.endReason === undefined ? '' : ` (${annex.endReason})`}; its instances are terminating and it costs nothing more.`,
  );
  return 0;
};
