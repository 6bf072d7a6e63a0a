/**
 * The PriceBook adapter: on-demand prices from the table in shared/pricing (overridable by
 * configuration), spot prices from EC2's DescribeSpotPriceHistory (the latest price of the
 * type's Linux/UNIX product, in the zone when one is given). An empty answer is "no price", never
 * an error; a failing call is logged by the sweep and retried at its next run.
 */
import { DescribeSpotPriceHistoryCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { upstreamUnavailable } from '../domain/errors.ts';
import type { PriceBook } from '../domain/ports.ts';
import table from '../pricing/on-demand-us-east-1.json' with { type: 'json' };

/** The bundled table, with `overrides` (USD per hour by instance type) on top. */
export const onDemandPrices = (overrides: Record<string, number> = {}): Record<string, number> => ({
  ...(table.prices as Record<string, number>),
  ...overrides,
});

export class Ec2PriceBook implements PriceBook {
  constructor(
    private readonly ec2: EC2Client,
    private readonly onDemand: Record<string, number>,
    private readonly clock: { now(): Date } = { now: () => new Date() },
  ) {}

  onDemandHourly(instanceType: string): number | undefined {
    return this.onDemand[instanceType];
  }

  async spotHourly(instanceType: string, availabilityZone?: string): Promise<number | undefined> {
    let out;
    try {
      out = await this.ec2.send(
        new DescribeSpotPriceHistoryCommand({
          InstanceTypes: [instanceType as never],
          ProductDescriptions: ['Linux/UNIX'],
          ...(availabilityZone === undefined ? {} : { AvailabilityZone: availabilityZone }),
          // With StartTime = now, EC2 answers the price in effect now (one per zone).
          StartTime: this.clock.now(),
          MaxResults: 20,
        }),
      );
    } catch (e) {
      throw upstreamUnavailable(`EC2 spot price history is unavailable (${(e as Error).name})`, e);
    }
    const prices = (out.SpotPriceHistory ?? [])
      .filter((p) => p.InstanceType === instanceType)
      .map((p) => Number(p.SpotPrice))
      .filter((n) => Number.isFinite(n) && n > 0);
    // Without a zone: the highest current zone price, so the estimate errs high.
    return prices.length === 0 ? undefined : Math.max(...prices);
  }
}
