// The dev runner's model of EventBridge Scheduler's precision: each schedule fires at a point of
// its minute that is uniformly distributed, fixed by the seed and the schedule's name.
import { describe, expect, it } from 'vitest';
import { atTime, fireOffsetMs } from '../../../scripts/devstack/enforcer.ts';

const names = Array.from({ length: 2000 }, (_, i) => `ax-${i.toString(16).padStart(20, '0')}-1795600000`);

describe('fireOffsetMs', () => {
  it('lies in [0, precision) and is the same for the same seed and name', () => {
    for (const name of names.slice(0, 50)) {
      const offset = fireOffsetMs(7, name, 60_000);
      expect(offset).toBeGreaterThanOrEqual(0);
      expect(offset).toBeLessThan(60_000);
      expect(fireOffsetMs(7, name, 60_000)).toBe(offset);
    }
  });

  it('is spread uniformly over the minute (each 6-s tenth holds about a tenth)', () => {
    const tenths = new Array<number>(10).fill(0);
    for (const name of names) tenths[Math.floor(fireOffsetMs(42, name, 60_000) / 6_000)]! += 1;
    for (const n of tenths) expect(Math.abs(n - 200)).toBeLessThan(60);
  });

  it('differs between seeds, and is 0 with the model off', () => {
    const a = names.map((n) => fireOffsetMs(1, n, 60_000));
    const b = names.map((n) => fireOffsetMs(2, n, 60_000));
    expect(a.filter((x, i) => x === b[i]).length).toBeLessThan(10);
    expect(names.every((n) => fireOffsetMs(1, n, 0) === 0)).toBe(true);
  });
});

describe('atTime', () => {
  it('reads the UTC time an at() expression names', () => {
    expect(atTime('at(2026-11-25T12:00:00)')).toBe(Date.parse('2026-11-25T12:00:00Z'));
    expect(atTime('rate(1 minute)')).toBeUndefined();
  });
});
