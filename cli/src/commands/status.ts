/** annex status [NAME] [--watch]: one annex in full (without NAME: the list). */
import type { Context } from '../context.ts';
import { renderStatus } from '../render.ts';
import { isEnded } from '../types.ts';
import { durationOption, getDetail } from './common.ts';

export const run = async (ctx: Context): Promise<number> => {
  if (ctx.positionals[0] === undefined) {
    const list = await import('./list.ts');
    return list.run(ctx);
  }
  const name = ctx.name;
  if (!ctx.flag('watch')) {
    const detail = await getDetail(ctx, name);
    ctx.out.data(detail);
    ctx.out.print(renderStatus(detail, ctx.now(), ctx.out.paint, ctx.out.columns));
    return 0;
  }
  const intervalMs = (durationOption(ctx, 'interval', 5) ?? 5) * 1000;
  // Ctrl-C is the normal way to stop watching.
  const onInterrupt = () => process.exit(0);
  process.once('SIGINT', onInterrupt);
  try {
    for (;;) {
      const detail = await getDetail(ctx, name);
      if (ctx.out.json) ctx.out.dataLine(detail);
      else {
        if (ctx.out.stdoutIsTty) ctx.io.stdout.write('\x1b[H\x1b[2J');
        ctx.out.print(renderStatus(detail, ctx.now(), ctx.out.paint, ctx.out.columns));
        ctx.out.print(ctx.out.paint.dim(`\nrefreshing every ${intervalMs / 1000}s; Ctrl-C stops`));
      }
      if (isEnded(detail.annex.state)) return 0;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  } finally {
    process.removeListener('SIGINT', onInterrupt);
  }
};
