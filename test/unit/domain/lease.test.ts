import { describe, expect, it } from 'vitest';
import {
  annexIdFor,
  canTransition,
  clientToken,
  DEFAULT_DURATION_SECONDS,
  EXPIRY_MAX_WAIT_SECONDS,
  expiryFireMinute,
  isLive,
  leaseExpiry,
  requestHash,
} from '../../../shared/domain/lease.ts';
import { ANNEX_STATES } from '../../../shared/domain/model.ts';

const now = new Date('2026-11-25T12:00:00.000Z');
const WEEK = 7 * 24 * 3600;

describe('leaseExpiry', () => {
  it('defaults to condor_annex’s 3000-second lease', () => {
    const { expiresAt } = leaseExpiry(now, {}, WEEK);
    expect(expiresAt.toISOString()).toBe('2026-11-25T12:50:00.000Z');
    expect(DEFAULT_DURATION_SECONDS).toBe(3000);
  });

  it('accepts exactly the minimum and the maximum', () => {
    expect(leaseExpiry(now, { durationSeconds: 60 }, WEEK).durationSeconds).toBe(60);
    expect(leaseExpiry(now, { durationSeconds: WEEK }, WEEK).durationSeconds).toBe(WEEK);
  });

  it('refuses a lease shorter than 60 s, naming the field', () => {
    expect(() => leaseExpiry(now, { durationSeconds: 59 }, WEEK)).toThrow(/durationSeconds/);
  });

  it('refuses a lease longer than the configured maximum as LimitExceeded, naming the field', () => {
    expect(() => leaseExpiry(now, { durationSeconds: 3601 }, 3600)).toThrow(
      /durationSeconds: .*at most 3600/,
    );
    expect(() => leaseExpiry(now, { durationSeconds: 3601 }, 3600)).toThrow(
      expect.objectContaining({ code: 'LimitExceeded', field: 'durationSeconds' }),
    );
  });

  it('takes an explicit expiresAt and checks it against now', () => {
    expect(leaseExpiry(now, { expiresAt: '2026-11-25T14:00:00Z' }, WEEK).durationSeconds).toBe(7200);
    expect(() => leaseExpiry(now, { expiresAt: '2026-11-25T11:00:00Z' }, WEEK)).toThrow(/expiresAt/);
    expect(() => leaseExpiry(now, { expiresAt: 'tomorrow' }, WEEK)).toThrow(/expiresAt/);
  });
});

describe('state machine', () => {
  it('never leaves an ended state', () => {
    for (const to of ANNEX_STATES) {
      expect(canTransition('TERMINATED', to)).toBe(false);
      expect(canTransition('FAILED', to)).toBe(false);
    }
  });

  it('lets every live state be ended', () => {
    for (const from of ['REQUESTED', 'LAUNCHING', 'RUNNING'] as const) {
      expect(canTransition(from, 'TERMINATING')).toBe(true);
    }
    expect(canTransition('TERMINATING', 'TERMINATED')).toBe(true);
  });

  it('treats everything but TERMINATED and FAILED as live', () => {
    expect(ANNEX_STATES.filter(isLive)).toEqual(['REQUESTED', 'LAUNCHING', 'RUNNING', 'TERMINATING']);
  });
});

describe('identifiers', () => {
  it('derives the same annex id from the same owner and idempotency key', () => {
    expect(annexIdFor('dev', 'arn:a', 'k1')).toBe(annexIdFor('dev', 'arn:a', 'k1'));
    expect(annexIdFor('dev', 'arn:a', 'k1')).not.toBe(annexIdFor('dev', 'arn:b', 'k1'));
    expect(annexIdFor('dev', 'arn:a')).not.toBe(annexIdFor('dev', 'arn:a'));
  });

  it('gives the same key in two stages two annexes, so their client tokens differ too', () => {
    expect(annexIdFor('dev', 'arn:a', 'k1')).not.toBe(annexIdFor('prod', 'arn:a', 'k1'));
    expect(clientToken(annexIdFor('dev', 'arn:a', 'k1'), 1, 0)).not.toBe(
      clientToken(annexIdFor('prod', 'arn:a', 'k1'), 1, 0),
    );
  });

  it('keeps client tokens within EC2’s 64 ASCII characters', () => {
    const token = clientToken(annexIdFor('a-stage-name-of-thirty-one-char', 'arn:a', 'k'), 9999, 99);
    expect(token.length).toBeLessThanOrEqual(64);
    expect(token).toMatch(/^[\x21-\x7e]+$/);
  });

  it('hashes requests independently of key order and undefined fields', () => {
    expect(requestHash({ a: 1, b: [1, 2], c: undefined })).toBe(requestHash({ b: [1, 2], a: 1 }));
    expect(requestHash({ a: 1 })).not.toBe(requestHash({ a: 2 }));
  });
});

describe('expiryFireMinute', () => {
  const minute = (iso: string) => Date.parse(iso);
  const at = (ms: number) => new Date(ms).toISOString();

  it('names the latest minute whose whole firing window ends by the expiry', () => {
    expect(at(expiryFireMinute('2026-11-25T13:05:10.400Z', now))).toBe('2026-11-25T13:04:00.000Z');
    expect(at(expiryFireMinute('2026-11-25T13:05:00.000Z', now))).toBe('2026-11-25T13:04:00.000Z');
    expect(at(expiryFireMinute('2026-11-25T13:05:59.999Z', now))).toBe('2026-11-25T13:04:00.000Z');
  });

  it('for every lease of two minutes and more, fires in a window before the expiry and at most the longest wait early', () => {
    for (let ms = 120_000; ms <= 300_000; ms += 1009) {
      for (const offset of [0, 1, 4_999, 5_000, 30_500, 59_999]) {
        const at0 = new Date(now.getTime() + offset);
        const expiresAt = at0.getTime() + ms;
        const fire = expiryFireMinute(new Date(expiresAt).toISOString(), at0);
        expect(fire % 60_000).toBe(0);
        expect(fire).toBeGreaterThanOrEqual(at0.getTime() + 5_000);
        if (fire + 60_000 <= expiresAt)
          expect(expiresAt - fire).toBeLessThanOrEqual(EXPIRY_MAX_WAIT_SECONDS * 1000);
        // A minute that starts less than 5 s after the write can only be the next one: late by < 5 s.
        else expect(fire + 60_000 - expiresAt).toBeLessThan(5_000);
      }
    }
  });

  it('for a lease shorter than two minutes, names the earliest minute still 5 s ahead', () => {
    const written = new Date('2026-11-25T12:00:20.000Z');
    expect(expiryFireMinute('2026-11-25T12:01:20.000Z', written)).toBe(minute('2026-11-25T12:01:00.000Z'));
    const late = new Date('2026-11-25T12:00:56.000Z');
    expect(expiryFireMinute('2026-11-25T12:02:00.000Z', late)).toBe(minute('2026-11-25T12:02:00.000Z'));
  });
});
