import { DescribeSpotPriceHistoryCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { Ec2PriceBook, onDemandPrices } from '../../../shared/aws/prices.ts';
import table from '../../../shared/pricing/on-demand-us-east-1.json' with { type: 'json' };

const ec2Mock = mockClient(EC2Client);
const NOW = new Date('2026-11-25T12:00:00.000Z');
let book: Ec2PriceBook;

beforeEach(() => {
  ec2Mock.reset();
  book = new Ec2PriceBook(new EC2Client({ region: 'us-east-1' }), onDemandPrices({ 'm5.large': 0.1 }), {
    now: () => NOW,
  });
});

describe('Ec2PriceBook', () => {
  it('reads on-demand prices from the bundled table, with configured overrides on top', () => {
    expect(table.source).toMatch(/us-east-1/);
    expect(book.onDemandHourly('c5.large')).toBe(table.prices['c5.large']);
    expect(book.onDemandHourly('m5.large')).toBe(0.1);
    expect(book.onDemandHourly('x9.unknown')).toBeUndefined();
  });

  it('asks EC2 for the current Linux spot price of the type in the zone', async () => {
    // Prepare
    ec2Mock.on(DescribeSpotPriceHistoryCommand).resolves({
      SpotPriceHistory: [{ InstanceType: 'm5.large', AvailabilityZone: 'us-east-1a', SpotPrice: '0.0352' }],
    });

    // Act
    const price = await book.spotHourly('m5.large', 'us-east-1a');

    // Assess
    expect(price).toBe(0.0352);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeSpotPriceHistoryCommand, {
      InstanceTypes: ['m5.large'],
      ProductDescriptions: ['Linux/UNIX'],
      AvailabilityZone: 'us-east-1a',
      StartTime: NOW,
    });
  });

  it('takes the highest zone price without a zone, and no price from an empty answer', async () => {
    // Prepare
    ec2Mock
      .on(DescribeSpotPriceHistoryCommand, { InstanceTypes: ['m5.large'] })
      .resolves({
        SpotPriceHistory: [
          { InstanceType: 'm5.large', AvailabilityZone: 'us-east-1a', SpotPrice: '0.03' },
          { InstanceType: 'm5.large', AvailabilityZone: 'us-east-1b', SpotPrice: '0.04' },
        ],
      })
      .on(DescribeSpotPriceHistoryCommand, { InstanceTypes: ['p2.xlarge'] })
      .resolves({ SpotPriceHistory: [] });

    // Act / Assess
    expect(await book.spotHourly('m5.large')).toBe(0.04);
    expect(await book.spotHourly('p2.xlarge')).toBeUndefined();
  });

  it('reports an EC2 failure as UpstreamUnavailable', async () => {
    ec2Mock
      .on(DescribeSpotPriceHistoryCommand)
      .rejects(Object.assign(new Error('slow down'), { name: 'Throttling' }));
    await expect(book.spotHourly('m5.large')).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
  });
});
