/**
 * Pricing of instance records: on-demand from the configured table, spot from EC2's spot price
 * history (the PriceBook port). The sweep prices each instance once, after its launch, and
 * writes the price on the record, so cost views and the budget read the lease table alone.
 *
 * A spot instance for which EC2 gives no price (an empty history answer) is priced at the
 * on-demand price of its type, the most a spot instance can cost without a max price, and says so
 * in its `priceSource`. An instance type missing from the table stays unpriced (and is logged).
 */
import { mapLimit } from './concurrency.ts';
import type { InstanceRecord, PriceSource } from './model.ts';
import type { LeaseStore, Logger, PriceBook } from './ports.ts';

/** Answers of one sweep, asked once per (type, zone): spot prices move slowly. */
export const cachedPriceBook = (book: PriceBook): PriceBook => {
  const spot = new Map<string, Promise<number | undefined>>();
  return {
    onDemandHourly: (type) => book.onDemandHourly(type),
    spotHourly: (type, zone) => {
      const key = `${type}|${zone ?? ''}`;
      let price = spot.get(key);
      if (price === undefined) {
        price = book.spotHourly(type, zone);
        spot.set(key, price);
      }
      return price;
    },
  };
};

export const priceOf = async (
  book: PriceBook,
  i: Pick<InstanceRecord, 'instanceType' | 'market' | 'availabilityZone'>,
): Promise<{ hourlyUsd: number; source: PriceSource } | undefined> => {
  const onDemand = book.onDemandHourly(i.instanceType);
  if (i.market === 'spot') {
    const spot = await book.spotHourly(i.instanceType, i.availabilityZone);
    if (spot !== undefined) return { hourlyUsd: spot, source: 'spot-price-history' };
    return onDemand === undefined
      ? undefined
      : { hourlyUsd: onDemand, source: 'on-demand-table (no spot price)' };
  }
  return onDemand === undefined ? undefined : { hourlyUsd: onDemand, source: 'on-demand-table' };
};

/**
 * Prices every record that has no price yet, `concurrency` writes at a time (a burst of launches
 * must not make one sweep run long); returns the records as priced (for this sweep's use).
 */
export const priceInstances = async (
  deps: { store: Pick<LeaseStore, 'setInstancePrice'>; log: Logger },
  book: PriceBook,
  records: InstanceRecord[],
  concurrency = 16,
): Promise<InstanceRecord[]> =>
  mapLimit(records, concurrency, async (r): Promise<InstanceRecord> => {
    if (r.hourlyUsd !== undefined || r.state === 'terminated') return r;
    const price = await priceOf(book, r);
    if (price === undefined) {
      deps.log.warn('no price for this instance type; its cost is not estimated', {
        annexId: r.annexId,
        instanceId: r.instanceId,
        instanceType: r.instanceType,
        market: r.market,
      });
      return r;
    }
    await deps.store.setInstancePrice(r.annexId, r.instanceId, price.hourlyUsd, price.source);
    return { ...r, hourlyUsd: price.hourlyUsd, priceSource: price.source };
  });
