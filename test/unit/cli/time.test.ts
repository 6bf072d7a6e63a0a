import { describe, expect, it } from 'vitest';
import {
  formatDuration,
  formatHours,
  formatSpan,
  parseDecimalHours,
  parseDuration,
  parseTime,
} from '../../../cli/src/time.ts';
import { CliError } from '../../../cli/src/errors.ts';

const usage = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    expect((e as CliError).exitCode).toBe(2);
    return (e as CliError).message;
  }
  throw new Error('expected a usage error');
};

describe('parseDuration', () => {
  it.each([
    ['90m', 5400],
    ['2h', 7200],
    ['1h30m', 5400],
    ['1h 30m', 5400],
    ['1.5h', 5400],
    ['45s', 45],
    ['2d', 172800],
    ['1w', 604800],
    ['1d2h3m4s', 93784],
    ['PT1H30M', 5400],
    ['pt90m', 5400],
    ['P1D', 86400],
    ['P1DT2H', 93600],
    ['PT0.5H', 1800],
    ['P2W', 1209600],
  ])('reads %s as %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it('refuses a bare number, naming the option and asking for a unit', () => {
    const message = usage(() => parseDuration('90', '--duration'));
    expect(message).toContain('--duration "90" has no unit');
  });

  it.each(['', 'abc', '1x', 'P', 'PT', 'P1DT', '1h1h', '-5m', '0m'])('refuses %j', (text) => {
    usage(() => parseDuration(text));
  });

  it('refuses ISO 8601 years and months, which have no fixed length', () => {
    expect(usage(() => parseDuration('P1M'))).toContain('years and months');
    expect(usage(() => parseDuration('P1Y'))).toContain('years and months');
  });
});

describe('parseDecimalHours (condor_annex -duration / -idle)', () => {
  it('turns decimal hours into whole seconds', () => {
    expect(parseDecimalHours('0.83', '-duration')).toBe(2988);
    expect(parseDecimalHours('2', '-duration')).toBe(7200);
    expect(parseDecimalHours('.25', '-idle')).toBe(900);
  });

  it.each(['0', '-1', 'two', '1h', ''])('refuses %j naming the flag', (text) => {
    expect(usage(() => parseDecimalHours(text, '-idle'))).toContain('-idle');
  });
});

describe('parseTime', () => {
  const now = new Date('2025-06-01T12:00:00.000Z');

  it('reads ISO 8601 instants with a zone', () => {
    expect(parseTime('2025-06-01T18:00:00Z', now).toISOString()).toBe('2025-06-01T18:00:00.000Z');
    expect(parseTime('2025-06-01T18:00+02:00', now).toISOString()).toBe('2025-06-01T16:00:00.000Z');
    expect(parseTime('2025-06-01T18:00:00.5+0200', now).toISOString()).toBe('2025-06-01T16:00:00.500Z');
  });

  it('reads a date and time without a zone as local time', () => {
    const at = parseTime('2025-06-01 18:30', now);
    expect([at.getFullYear(), at.getMonth(), at.getDate(), at.getHours(), at.getMinutes()]).toEqual([
      2025, 5, 1, 18, 30,
    ]);
  });

  it('reads relative times', () => {
    expect(parseTime('+2h', now).toISOString()).toBe('2025-06-01T14:00:00.000Z');
    expect(parseTime('in 90m', now).toISOString()).toBe('2025-06-01T13:30:00.000Z');
    expect(parseTime('now+1h30m', now).toISOString()).toBe('2025-06-01T13:30:00.000Z');
    expect(parseTime('now', now).toISOString()).toBe(now.toISOString());
  });

  it('reads a clock time as the next time the clock shows it', () => {
    const later = new Date(now.getTime());
    later.setHours(now.getHours() + 1, 0, 0, 0);
    const hh = String(later.getHours()).padStart(2, '0');
    const next = parseTime(`${hh}:00`, now);
    expect(next.getTime()).toBeGreaterThan(now.getTime());
    expect(next.getTime() - now.getTime()).toBeLessThanOrEqual(24 * 3600 * 1000);
    const earlier = new Date(now.getTime() - 3600 * 1000);
    const past = parseTime(
      `${String(earlier.getHours()).padStart(2, '0')}:${String(earlier.getMinutes()).padStart(2, '0')}`,
      now,
    );
    expect(past.getTime()).toBeGreaterThan(now.getTime());
  });

  it.each(['tomorrow', '25:00', '2025-06-01', '12/06/2025 10:00', 'in', '+2'])('refuses %j', (text) => {
    usage(() => parseTime(text, now, '--until'));
  });
});

describe('formatting', () => {
  it('shows hours the way condor_annex did', () => {
    expect(formatHours(3000)).toBe('0.83');
    expect(formatHours(900)).toBe('0.25');
  });

  it('shows spans with their two largest units', () => {
    expect(formatSpan(12)).toBe('12s');
    expect(formatSpan(2952)).toBe('49m 12s');
    expect(formatSpan(7500)).toBe('2h 05m');
    expect(formatSpan(3 * 86400 + 4 * 3600 + 5)).toBe('3d 4h');
  });

  it('writes durations back in the form it reads', () => {
    expect(formatDuration(900)).toBe('15m');
    expect(formatDuration(5400)).toBe('1h30m');
    expect(parseDuration(formatDuration(93784))).toBe(93784);
  });
});
