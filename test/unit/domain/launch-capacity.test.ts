import { describe, expect, it } from 'vitest';
import { keepsBatch } from '../../../shared/domain/launch-capacity.ts';
import type { CapacityPolicy } from '../../../shared/domain/model.ts';

const annexWith = (capacityPolicy?: CapacityPolicy) => ({
  spec: {
    market: 'on-demand' as const,
    instanceTypes: ['m5.large'],
    imageId: 'ami-1',
    subnetIds: [],
    securityGroupIds: [],
    tags: {},
    ...(capacityPolicy === undefined ? {} : { capacityPolicy }),
  },
});

describe('keepsBatch', () => {
  it('keeps a short batch under keep, and when no capacity policy was given', () => {
    // Prepare
    const pending = { count: 4 };

    // Act
    const kept = [keepsBatch(annexWith('keep'), pending, 1), keepsBatch(annexWith(), pending, 0)];

    // Assess
    expect(kept).toEqual([true, true]);
  });

  it('keeps an all-or-nothing batch only when EC2 gave every instance asked for', () => {
    // Prepare
    const annex = annexWith('all-or-nothing');
    const pending = { count: 4 };

    // Act
    const kept = [0, 3, 4].map((got) => keepsBatch(annex, pending, got));

    // Assess
    expect(kept).toEqual([false, false, true]);
  });
});
