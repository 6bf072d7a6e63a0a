// Pricing on the local stack through the real wiring: the sweep as the dev runner runs it
// (handlers/reaper.ts, with sweepDeps() and its Ec2PriceBook on moto), for a spot annex (an EC2
// Fleet) and an on-demand annex (RunInstances). moto's spot price history answers a fixed fake
// price of 0.00001 USD/h (or nothing, and spot then falls back to the on-demand table), so a
// local spot annex's rate may round to 0: the test asserts the spot rate is the sum of the prices
// the sweep wrote, and a positive rate only where the bundled on-demand table priced.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Enforcer } from '../../scripts/devstack/enforcer.ts';
import type { ApiClient, LocalStack } from '../../scripts/devstack/stack.ts';
import { roundUsd } from '../../shared/domain/cost.ts';
import { integrationStack, stackEnforcer } from '../support/integration-stack.ts';

interface Detail {
  annex: Record<string, unknown> & { id: string };
  instances: { instanceId: string; state: string; hourlyUsd?: number; priceSource?: string }[];
}

let stack: LocalStack;
let enforcer: Enforcer;
let alice: ApiClient;

beforeAll(async () => {
  stack = await integrationStack('pr');
  enforcer = stackEnforcer(stack);
  alice = stack.as('alice');
});

afterAll(async () => {
  await enforcer?.stop();
  await stack?.stop();
});

const create = async (body: Record<string, unknown>) => {
  const res = await alice.request('POST', '/v1/annexes', body, {
    'Idempotency-Key': randomBytes(8).toString('hex'),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
};

const detail = async (name: string): Promise<Detail> => {
  const res = await alice.request<Detail>('GET', `/v1/annexes/${name}`);
  expect(res.status).toBe(200);
  return res.body;
};

const live = (d: Detail) => d.instances.filter((i) => i.state !== 'terminated');

describe('the sweep prices new instances', () => {
  it('prices a spot annex (a fleet) and an on-demand annex at the dev runner sweep', async () => {
    // Prepare: as `annex create spotdemo -n 2 -t m5.large -t c5.large --spot` does, and on-demand.
    await create({
      name: 'spotdemo',
      count: 2,
      market: 'spot',
      instanceTypes: ['m5.large', 'c5.large'],
      durationSeconds: 3600,
    });
    await create({ name: 'ondemand', count: 1, instanceTypes: ['m5.large'], durationSeconds: 3600 });
    const before = [await detail('spotdemo'), await detail('ondemand')];

    // Act: the sweep as the dev runner runs it (its rate(...) functions: the reaper).
    await enforcer.runRateFunctions();
    const [spot, onDemand] = [await detail('spotdemo'), await detail('ondemand')];

    // Assess: before the sweep, no confident $0.00 but the count of unpriced instances.
    expect(before.map((d) => [d.annex.estimatedHourlyUsd, d.annex.unpricedInstances])).toEqual([
      [0, 2],
      [0, 1],
    ]);
    // After it, every instance record carries a price and where it came from.
    expect(live(spot)).toHaveLength(2);
    expect(live(onDemand)).toHaveLength(1);
    for (const i of [...live(spot), ...live(onDemand)]) {
      expect(i.hourlyUsd, i.instanceId).toBeGreaterThan(0);
    }
    for (const i of live(spot)) {
      expect(['spot-price-history', 'on-demand-table (no spot price)']).toContain(i.priceSource);
    }
    expect(live(onDemand)[0]?.priceSource).toBe('on-demand-table');
    // The views: the on-demand annex at the bundled table's m5.large price (0.096 USD/h); the spot
    // annex at the sum of its instances' prices (about 0 with moto's fake spot price).
    expect(onDemand.annex).toMatchObject({ estimatedHourlyUsd: 0.096 });
    expect(spot.annex.estimatedHourlyUsd).toBe(
      roundUsd(live(spot).reduce((sum, i) => sum + (i.hourlyUsd ?? 0), 0)),
    );
    expect([spot.annex.unpricedInstances, onDemand.annex.unpricedInstances]).toEqual([undefined, undefined]);
  });
});
