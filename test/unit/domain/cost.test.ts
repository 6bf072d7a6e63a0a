import { beforeEach, describe, expect, it } from 'vitest';
import { createAnnex, type CreateAnnexInput } from '../../../shared/domain/annex-create.ts';
import { deleteAnnex } from '../../../shared/domain/annex-end.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import { annexCost } from '../../../shared/domain/cost.ts';
import type { Caller, InstanceRecord } from '../../../shared/domain/model.ts';
import type { PriceBook } from '../../../shared/domain/ports.ts';
import { sweep, type SweepDeps } from '../../../shared/domain/sweep.ts';
import { annexView } from '../../../shared/domain/views.ts';
import { FakeCompute, StampingLeaseStore, type FakeClock } from '../../support/fakes.ts';
import { domainDeps, putDefaultPool, TEST_SWEEP } from '../../support/domain-deps.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };

/** A price book with fixed answers that counts the spot price questions it was asked. */
class FixedPrices implements PriceBook {
  spotAsked = 0;
  constructor(
    private readonly onDemand: Record<string, number>,
    private readonly spot: Record<string, number | undefined>,
  ) {}
  onDemandHourly(type: string) {
    return this.onDemand[type];
  }
  async spotHourly(type: string) {
    this.spotAsked++;
    return this.spot[type];
  }
}

const record = (over: Partial<InstanceRecord>): InstanceRecord => ({
  instanceId: 'i-00000000000000001',
  annexId: 'ax-1',
  batch: 1,
  instanceType: 'm5.large',
  market: 'on-demand',
  state: 'running',
  launchedAt: '2026-11-25T12:00:00.000Z',
  updatedAt: '2026-11-25T12:00:00.000Z',
  ...over,
});

describe('annexCost', () => {
  it('sums running rates, and spend from launch to termination (one-minute minimum)', () => {
    // Prepare
    const now = new Date('2026-11-25T14:00:00.000Z');
    const instances = [
      record({ hourlyUsd: 0.096 }),
      record({
        instanceId: 'i-2',
        hourlyUsd: 0.5,
        state: 'terminated',
        terminatedAt: '2026-11-25T12:30:00.000Z',
      }),
      record({ instanceId: 'i-3', hourlyUsd: 1.2, launchedAt: '2026-11-25T13:59:50.000Z' }),
      record({ instanceId: 'i-4' }),
    ];

    // Act
    const cost = annexCost(instances, now);

    // Assess: 2 h × 0.096 + 0.5 h × 0.5 + 60 s (minimum) × 1.2/h; the unpriced one counts nothing,
    // and is counted as unpriced.
    expect(cost).toEqual({
      estimatedHourlyUsd: 1.296,
      spendSoFarUsd: 0.192 + 0.25 + 0.02,
      unpricedInstances: 1,
    });
  });
});

describe('pricing and budgets in the sweep', () => {
  let clock: FakeClock;
  let store: StampingLeaseStore;
  let prices: FixedPrices;
  let deps: LaunchDeps & SweepDeps;

  beforeEach(async () => {
    prices = new FixedPrices({ 'm5.large': 0.096, 'c5.large': 0.085 }, { 'm5.large': 0.035 });
    ({ clock, store, deps } = domainDeps({
      store: (c) => new StampingLeaseStore(c),
      with: { sweep: TEST_SWEEP, prices },
    }));
    await putDefaultPool(deps);
  });

  const create = (over: Partial<CreateAnnexInput>) =>
    createAnnex(deps, alice, {
      name: 'costly',
      pool: 'default',
      count: 2,
      instanceTypes: ['m5.large'],
      market: 'on-demand',
      durationSeconds: 6 * 3600,
      ...over,
    });

  /** Heartbeats so the sweep's boot-timeout check leaves the instances alone. */
  const heartbeatAll = async (annexId: string) => {
    for (const r of await store.listInstances(annexId)) {
      await store.recordHeartbeat(annexId, r.instanceId, {
        at: clock.now().toISOString(),
        claimedSlots: 1,
        totalSlots: 1,
        agentState: 'joined',
      });
    }
  };

  it('prices on-demand instances from the table and spot ones from the price history, asking once per type', async () => {
    // Prepare
    const { annex: od } = await create({});
    const { annex: spot } = await create({ name: 'cheap', market: 'spot', count: 3 });

    // Act
    await sweep(deps);

    // Assess
    expect((await store.listInstances(od.id)).map((i) => [i.hourlyUsd, i.priceSource])).toEqual([
      [0.096, 'on-demand-table'],
      [0.096, 'on-demand-table'],
    ]);
    expect(
      new Set((await store.listInstances(spot.id)).map((i) => `${i.hourlyUsd} ${i.priceSource}`)),
    ).toEqual(new Set(['0.035 spot-price-history']));
    expect(prices.spotAsked).toBe(1);
  });

  it('prices a spot instance at the on-demand price when EC2 has no spot price (an empty answer)', async () => {
    // Prepare
    const { annex } = await create({ market: 'spot', instanceTypes: ['c5.large'] });

    // Act
    await sweep(deps);

    // Assess
    expect((await store.listInstances(annex.id))[0]).toMatchObject({
      hourlyUsd: 0.085,
      priceSource: 'on-demand-table (no spot price)',
    });
  });

  it('shows the rate and the spend so far in the annex view, and keeps the final spend when it ends', async () => {
    // Prepare
    const { annex } = await create({});
    await sweep(deps);
    clock.advance(1800);

    // Act
    const live = annexView(annex, await store.listInstances(annex.id), clock.now());
    const ended = await deleteAnnex(deps, alice, { name: 'costly' });

    // Assess
    expect(live).toMatchObject({ estimatedHourlyUsd: 0.192, spendSoFarUsd: 0.096 });
    expect(annexView(ended)).toMatchObject({ estimatedHourlyUsd: 0, spendSoFarUsd: 0.096 });
  });

  it('ends an annex whose spend reaches maxSpend, like an expiry, with the reason budget', async () => {
    // Prepare: 2 × 0.096 USD/h, at most 0.30 USD: reached after ~94 minutes.
    const { annex } = await create({ maxSpend: 0.3 });
    await sweep(deps);
    clock.advance(90 * 60);
    await heartbeatAll(annex.id);

    // Act
    const before = await sweep(deps);
    clock.advance(5 * 60);
    await heartbeatAll(annex.id);
    const after = await sweep(deps);

    // Assess
    expect(before.actions.filter((a) => a.reason === 'budget')).toEqual([]);
    expect(after.actions).toContainEqual(expect.objectContaining({ action: 'end-annex', reason: 'budget' }));
    const ended = await store.getAnnex(annex.id);
    expect(ended).toMatchObject({ state: 'TERMINATED', endReason: 'budget' });
    expect(ended?.spentUsd).toBeGreaterThanOrEqual(0.3);
    expect(deps.compute instanceof FakeCompute && deps.compute.running()).toEqual([]);
    expect(store.events.find((e) => e.type === 'budget-reached')).toMatchObject({ reason: 'budget' });
  });
});
