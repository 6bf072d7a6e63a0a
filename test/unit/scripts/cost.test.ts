// The cost section's arithmetic: list prices applied to a measured phase, and the stack's keys.
import { describe, expect, it } from 'vitest';
import {
  accessLogBytes,
  customerKeys,
  phaseCost,
  readPriceBook,
  runtimeLogBytes,
} from '../../../scripts/bench/cost.ts';
import type { Phase } from '../../../scripts/bench/cost-run.ts';

const counts = (readUnits: number, writeUnits: number, kmsRequests = 0) => ({
  requests: 0,
  operations: {},
  readUnits,
  writeUnits,
  kmsRequests,
});

describe('phaseCost', () => {
  it('prices Lambda GB-s and requests, API requests, request units, KMS, Scheduler and logs', () => {
    const prices = readPriceBook();
    const phase: Phase = {
      name: 'expire',
      functions: { expire: { invocations: 2, memoryMb: 512, billedMs: 120_000, logBytes: 400, failed: 0 } },
      dynamo: counts(10, 20),
      moto: counts(0, 0, 3),
      apiRequests: 5,
      wallMs: 0,
    };
    const i = prices.items;

    const cost = phaseCost(phase, prices);

    expect(cost.lambda).toBeCloseTo(120 * 0.5 * i.lambdaArmGbSecond.usd + 2 * i.lambdaRequest.usd, 12);
    expect(cost.api).toBeCloseTo(5 * i.httpApiRequest.usd, 12);
    expect(cost.dynamo).toBeCloseTo(10 * i.dynamoReadRequestUnit.usd + 20 * i.dynamoWriteRequestUnit.usd, 12);
    expect(cost.scheduler).toBeCloseTo(2 * i.schedulerInvocation.usd, 12);
    expect(cost.kms).toBeCloseTo(3 * i.kmsRequest.usd, 12);
    const logBytes = 400 + 2 * runtimeLogBytes(60_000, 512) + 5 * accessLogBytes();
    expect(cost.logs).toBeCloseTo(
      (logBytes / 1024 ** 3) * (i.logsIngestionGb.usd + i.logsStorageGbMonth.usd),
      12,
    );
    expect(cost.total).toBeCloseTo(
      cost.lambda + cost.api + cost.dynamo + cost.scheduler + cost.kms + cost.logs,
      12,
    );
  });

  it('reads a price book that names its region, date and a source for every price', () => {
    const prices = readPriceBook();
    expect(prices.region).toBe('us-east-1');
    expect(prices.asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    for (const item of Object.values(prices.items))
      expect(item.source).toMatch(/^https:\/\/aws\.amazon\.com\//);
  });

  it('counts the customer managed KMS keys serverless.yml defines (none: AWS managed keys only)', () => {
    expect(customerKeys()).toBe(0);
  });
});
