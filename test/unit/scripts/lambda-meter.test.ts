// The local runners' invocation meter: function and memory from serverless.yml, billed duration
// rounded up to the millisecond, and each invocation's own log bytes even when they overlap.
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayHandler } from '../../../scripts/devstack/gateway.ts';
import { LambdaMeter } from '../../../scripts/devstack/lambda-meter.ts';

const config = {
  provider: { memorySize: 512 },
  functions: {
    reaper: { handler: 'handlers/reaper.handler' },
    expire: { handler: 'handlers/expire.handler', memorySize: 256 },
  },
};

let meter: LambdaMeter | undefined;
afterEach(() => meter?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('LambdaMeter', () => {
  it('records each invocation with its function, memory size and billed duration', async () => {
    meter = new LambdaMeter(config);
    const load = meter.wrap(async () => (async () => ({ ok: true })) as unknown as GatewayHandler);

    const handler = (await load('handlers/expire.handler')) as unknown as () => Promise<unknown>;
    await expect(handler()).resolves.toEqual({ ok: true });

    expect(meter.invocations).toHaveLength(1);
    const [i] = meter.invocations;
    expect(i).toMatchObject({ functionKey: 'expire', memoryMb: 256, ok: true });
    expect(i?.billedMs).toBe(Math.ceil(i?.durationMs ?? Number.NaN));
    expect(meter.functionOf('handlers/reaper.handler')).toEqual({ functionKey: 'reaper', memoryMb: 512 });
  });

  it('attributes log bytes to the invocation that wrote them, and records failures', async () => {
    meter = new LambdaMeter(config);
    meter.countLogs();
    const writes: string[] = [];
    const load = meter.wrap(async (path) => {
      return (async (event: { text: string; fail?: boolean }) => {
        await sleep(5);
        writes.push(event.text);
        process.stdout.write(`${event.text}\n`);
        await sleep(5);
        if (event.fail === true) throw new Error(`failed in ${path}`);
      }) as unknown as GatewayHandler;
    });
    const reaper = (await load('handlers/reaper.handler')) as unknown as (e: unknown) => Promise<void>;
    const expire = (await load('handlers/expire.handler')) as unknown as (e: unknown) => Promise<void>;

    await Promise.allSettled([reaper({ text: 'x'.repeat(99) }), expire({ text: 'yy', fail: true })]);

    const by = Object.fromEntries(meter.invocations.map((i) => [i.functionKey, i]));
    expect(by.reaper).toMatchObject({ logBytes: 100, ok: true });
    expect(by.expire).toMatchObject({ logBytes: 3, ok: false });
    expect(writes).toHaveLength(2);
  });
});
