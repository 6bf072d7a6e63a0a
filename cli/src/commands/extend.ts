/**
 * annex extend NAME --by D | --until T | --duration D [--idle D]: change the lease, never the
 * instance count. --by is added to the current expiry (read first); --until and --by are sent as an
 * absolute expiresAt, so a retried request cannot extend twice.
 */
import type { Context } from '../context.ts';
import { withHint } from '../context.ts';
import { usageError } from '../errors.ts';
import { expiryText } from '../render.ts';
import { parseTime } from '../time.ts';
import type { Annex } from '../types.ts';
import { annexHint, annexPath, durationOption, getDetail } from './common.ts';

export const run = async (ctx: Context): Promise<number> => {
  const name = ctx.name;
  const given = ['by', 'until', 'duration'].filter((o) => ctx.string(o) !== undefined);
  if (given.length !== 1) {
    throw usageError(
      given.length === 0
        ? 'annex extend needs --by, --until or --duration'
        : `give only one of ${given.map((o) => `--${o}`).join(', ')}`,
      'for example annex extend NAME --by 1h',
    );
  }
  const idleSeconds = durationOption(ctx, 'idle');
  const by = durationOption(ctx, 'by');
  const until = ctx.string('until');
  const duration = durationOption(ctx, 'duration');
  const untilAt = until === undefined ? undefined : parseTime(until, ctx.now(), '--until');

  let body: { expiresAt?: string; durationSeconds?: number; idleSeconds?: number };
  if (by !== undefined) {
    const { annex } = await getDetail(ctx, name);
    body = { expiresAt: new Date(new Date(annex.expiresAt).getTime() + by * 1000).toISOString() };
  } else if (untilAt !== undefined) {
    body = { expiresAt: untilAt.toISOString() };
  } else {
    body = { durationSeconds: duration ?? 0 };
  }
  if (idleSeconds !== undefined) body.idleSeconds = idleSeconds;

  const api = await ctx.api();
  const { annex } = await api
    .request<{ annex: Annex }>('POST', annexPath(name, '/extend'), { body, query: ctx.ownerQuery })
    .catch((e: unknown) => withHint(e, annexHint(name)));
  const detail = await getDetail(ctx, name);
  ctx.out.data(detail);
  ctx.out.print(`${annex.name}: the lease now ends ${expiryText(annex, ctx.now())}.`);
  return 0;
};
