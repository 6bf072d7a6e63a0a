import { describe, expect, it } from 'vitest';
import type { AnnexError } from '../../../shared/domain/errors.ts';
import { instanceSize } from '../../../shared/domain/instance-sizes.ts';
import { defaultPolicy } from '../../../shared/domain/launch-policy.ts';
import type { LaunchPolicy } from '../../../shared/domain/model.ts';
import {
  admit,
  emptyUsage,
  instanceDemand,
  liveUsage,
  spendFor,
  type Admission,
} from '../../../shared/domain/quota.ts';

const now = new Date('2026-12-03T12:00:00.000Z');
const pool = { name: 'gpu' };
const policy: LaunchPolicy = {
  ...defaultPolicy(
    'shared',
    { defaultSubnetIds: [], defaultSecurityGroupIds: [] },
    { stage: 't', maxDurationSeconds: 86400, maxInstancesPerAnnex: 10 },
  ),
  quota: { maxInstances: 4, maxVCpus: 8, maxMonthlySpendUsd: 1 },
};
const request = (over: Partial<Admission> = {}): Admission => ({
  annexId: 'a1',
  instances: 1,
  vCpus: 2,
  expiresAt: '2026-12-03T13:00:00.000Z',
  spendUsd: 0.1,
  fields: { count: 'count', spend: 'durationSeconds' },
  ...over,
});
const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return {
      code: (e as AnnexError).code,
      field: (e as AnnexError).field,
      message: (e as AnnexError).message,
    };
  }
  throw new Error('expected a refusal');
};

describe('instanceSize', () => {
  it('reads vCPUs from the size and GPUs from the accelerated table', () => {
    expect(instanceSize('m5.large')).toEqual({ vCpus: 2, gpus: 0 });
    expect(instanceSize('c5.4xlarge')).toEqual({ vCpus: 16, gpus: 0 });
    expect(instanceSize('g5.12xlarge')).toEqual({ vCpus: 48, gpus: 4 });
  });

  it('knows nothing of a size it cannot read or an accelerated type missing from its table', () => {
    expect(instanceSize('m5.metal')).toBeUndefined();
    expect(instanceSize('p9.xlarge')).toBeUndefined();
  });
});

describe('instanceDemand', () => {
  it('counts the largest of several types, at its on-demand price', () => {
    const prices = { onDemandHourly: (t: string) => ({ 'm5.large': 0.096, 'm5.xlarge': 0.192 })[t] };
    expect(instanceDemand(pool, policy, ['m5.large', 'm5.xlarge'], undefined, prices)).toEqual({
      vCpus: 4,
      hourlyUsd: 0.192,
    });
  });

  it('refuses hardware needs without a vCPU maximum under a vCPU quota', () => {
    expect(
      refusal(() =>
        instanceDemand(pool, policy, [], { vCpus: { min: 2 }, memoryMiB: { min: 1 } }, undefined),
      ),
    ).toMatchObject({ code: 'LimitExceeded', field: 'instanceRequirements.vCpus.max' });
  });
});

describe('admit', () => {
  it('adds the annex to the record and its spend to the month', () => {
    const next = admit(pool, policy, emptyUsage('alice', 'gpu'), request(), now);
    expect(next.annexes.a1).toEqual({
      instances: 1,
      vCpus: 2,
      expiresAt: '2026-12-03T13:00:00.000Z',
      committedUsd: 0.1,
    });
    expect(next.spendByMonth).toEqual({ '2026-12': 0.1 });
    expect(next.version).toBe(0);
  });

  it('refuses with 422 what would exceed live instances, vCPUs or the month', () => {
    const held = admit(pool, policy, emptyUsage('alice', 'gpu'), request({ instances: 3, vCpus: 6 }), now);
    expect(
      refusal(() => admit(pool, policy, held, request({ annexId: 'a2', instances: 2, vCpus: 0 }), now)),
    ).toMatchObject({
      code: 'LimitExceeded',
      field: 'count',
    });
    expect(refusal(() => admit(pool, policy, held, request({ annexId: 'a2', vCpus: 4 }), now))).toMatchObject(
      {
        code: 'LimitExceeded',
        field: 'count',
      },
    );
    expect(
      refusal(() => admit(pool, policy, held, request({ annexId: 'a2', spendUsd: 0.95 }), now)),
    ).toMatchObject({
      code: 'LimitExceeded',
      field: 'durationSeconds',
    });
  });

  it('never commits more for an annex than its maxSpend', () => {
    const first = admit(
      pool,
      policy,
      emptyUsage('alice', 'gpu'),
      request({ spendUsd: 5, maxSpend: 0.5 }),
      now,
    );
    expect(first.spendByMonth['2026-12']).toBe(0.5);
    const again = admit(
      pool,
      policy,
      first,
      request({ instances: 0, vCpus: 0, spendUsd: 5, maxSpend: 0.5 }),
      now,
    );
    expect(again.spendByMonth['2026-12']).toBe(0.5);
  });

  it('lets an entry lapse at its expiry, so a crash that missed the release leaks nothing beyond the lease', () => {
    const held = admit(pool, policy, emptyUsage('alice', 'gpu'), request({ instances: 4, vCpus: 8 }), now);
    const later = new Date('2026-12-03T13:00:01.000Z');
    expect(liveUsage(held, later)).toEqual({ instances: 0, vCpus: 0 });
    const next = admit(
      pool,
      policy,
      held,
      request({ annexId: 'a2', expiresAt: '2026-12-03T14:00:00.000Z' }),
      later,
    );
    expect(Object.keys(next.annexes)).toEqual(['a2']);
  });

  it('counts spend per calendar month and forgets months before the last', () => {
    const usage = { ...emptyUsage('alice', 'gpu'), spendByMonth: { '2026-10': 0.9, '2026-11': 0.9 } };
    const next = admit(pool, policy, usage, request({ spendUsd: 0.9 }), now);
    expect(next.spendByMonth).toEqual({ '2026-11': 0.9, '2026-12': 0.9 });
  });

  it('prices spend per instance-hour', () => {
    expect(spendFor(3, 0.096, 7200)).toBe(0.576);
  });
});
