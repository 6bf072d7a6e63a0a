/**
 * The control plane's on-demand price table (shared/pricing), bundled so `annex create` can say
 * what a request costs at most before anything launches. An estimate at list prices in the
 * table's region and date, said so next to the number; the annex's own estimate (status) comes
 * from the control plane, which may be configured with other prices.
 */
import table from '../../shared/pricing/on-demand-us-east-1.json' with { type: 'json' };

export interface PriceTable {
  region: string;
  transcribed: string;
  prices: Record<string, number>;
}

export const onDemandPrices: PriceTable = table;

/** The highest hourly on-demand price among the types, or undefined when one is not in the table. */
export const highestHourly = (
  types: readonly string[],
  prices: PriceTable = onDemandPrices,
): number | undefined => {
  if (types.length === 0) return undefined;
  let highest = 0;
  for (const t of types) {
    const price = prices.prices[t];
    if (price === undefined) return undefined;
    highest = Math.max(highest, price);
  }
  return highest;
};
