/**
 * Durations (`90m`, `2h`, `1h30m`, ISO 8601 `PT1H30M`), times (ISO 8601, `18:30`, `+2h`, `in 2h`,
 * `now+1h`) and the way the CLI shows them. Pure functions: `now` is always passed in.
 */
import { usageError } from './errors.ts';

const UNIT_SECONDS: Record<string, number> = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };

const COMPACT = /^(?:\d+(?:\.\d+)?[wdhms])+$/;
const COMPACT_PART = /(\d+(?:\.\d+)?)([wdhms])/g;
const ISO_DURATION =
  /^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i;

/**
 * Seconds in a duration: `90m`, `2h`, `1h30m`, `1.5h`, `2d`, `45s`, or ISO 8601 (`PT1H30M`, `P1D`).
 * A bare number is refused: it is not clear whether it means seconds, minutes or hours.
 * `what` names the option in the error message.
 */
export const parseDuration = (text: string, what = 'duration'): number => {
  const value = text.trim().toLowerCase().replace(/\s+/g, '');
  let seconds: number | undefined;
  if (/^\d+(\.\d+)?$/.test(value)) {
    throw usageError(
      `${what} ${JSON.stringify(text)} has no unit`,
      'write it with a unit, for example 90m, 2h, 1h30m or PT2H',
    );
  }
  if (COMPACT.test(value)) {
    const seen = new Set<string>();
    seconds = 0;
    for (const [, amount, unit] of value.matchAll(COMPACT_PART)) {
      if (unit === undefined || amount === undefined || seen.has(unit)) {
        throw usageError(`${what} ${JSON.stringify(text)} repeats a unit`, 'for example 1h30m');
      }
      seen.add(unit);
      seconds += Number(amount) * (UNIT_SECONDS[unit] ?? 0);
    }
  } else if (value.startsWith('p')) {
    const match = ISO_DURATION.exec(value);
    if (match !== null && !/t$/.test(value) && value !== 'p') {
      const [, w, d, h, m, s] = match.map((part) => Number(part ?? 0));
      seconds = (w ?? 0) * 604800 + (d ?? 0) * 86400 + (h ?? 0) * 3600 + (m ?? 0) * 60 + (s ?? 0);
    } else if (/^p(\d+y|\d+m(?!.*t))/.test(value)) {
      throw usageError(
        `${what} ${JSON.stringify(text)}: years and months are not supported`,
        'use days: P30D',
      );
    }
  }
  if (seconds === undefined || !Number.isFinite(seconds)) {
    throw usageError(
      `${what} ${JSON.stringify(text)} is not a duration`,
      'for example 90m, 2h, 1h30m, 1d or ISO 8601 PT1H30M',
    );
  }
  const rounded = Math.round(seconds);
  if (rounded <= 0) throw usageError(`${what} ${JSON.stringify(text)} must be longer than zero`);
  return rounded;
};

/** condor_annex's `-duration` and `-idle`: decimal hours, as seconds. */
export const parseDecimalHours = (text: string, flag: string): number => {
  const hours = Number(text);
  if (!/^\s*\d*\.?\d+\s*$/.test(text) || !Number.isFinite(hours) || hours <= 0) {
    throw usageError(`${flag} ${JSON.stringify(text)} is not a number of hours`, `for example ${flag} 0.5`);
  }
  return Math.round(hours * 3600);
};

const RELATIVE = /^(?:\+|in\s+|now\s*\+\s*)(.+)$/i;
const CLOCK = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/;
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * A point in time: ISO 8601 (`2025-06-01T18:00:00Z`, `2025-06-01 18:00` in local time), a clock
 * time (`18:30`, the next one to come), or relative to now (`+2h`, `in 90m`, `now+1h30m`, `now`).
 */
export const parseTime = (text: string, now: Date, what = 'time'): Date => {
  const value = text.trim();
  if (value.toLowerCase() === 'now') return new Date(now.getTime());
  const relative = RELATIVE.exec(value);
  if (relative?.[1] !== undefined) return new Date(now.getTime() + parseDuration(relative[1], what) * 1000);
  const clock = CLOCK.exec(value);
  if (clock !== null) {
    const [hours, minutes, seconds] = [clock[1], clock[2], clock[3]].map((v) => Number(v ?? 0));
    if ((hours ?? 24) > 23 || (minutes ?? 60) > 59 || (seconds ?? 60) > 59) {
      throw usageError(`${what} ${JSON.stringify(text)} is not a time of day`);
    }
    const at = new Date(now.getTime());
    at.setHours(hours ?? 0, minutes ?? 0, seconds ?? 0, 0);
    if (at.getTime() <= now.getTime()) at.setDate(at.getDate() + 1);
    return at;
  }
  if (ISO_DATE_TIME.test(value)) {
    // Without a zone, ECMAScript reads a date-time as local time, which is what a user means.
    const normalized = value.replace(' ', 'T').replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
    const at = new Date(normalized);
    if (!Number.isNaN(at.getTime())) return at;
  }
  throw usageError(
    `${what} ${JSON.stringify(text)} is not a time`,
    'for example 2025-06-01T18:00:00Z, "2025-06-01 18:00" (local), 18:00, +2h or "in 90m"',
  );
};

/** `3d 4h`, `2h 05m`, `49m 12s`, `12s`: the two largest units. */
export const formatSpan = (seconds: number): string => {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
};

/** A duration the way a user would write it: `15m`, `1h30m`, `2d`. */
export const formatDuration = (seconds: number): string => {
  const parts: string[] = [];
  let rest = Math.round(seconds);
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.length === 0 ? '0s' : parts.join('');
};

/** condor_annex's way: decimal hours with two places (3000 s → `0.83`). */
export const formatHours = (seconds: number): string => (seconds / 3600).toFixed(2);

/** `in 49m 12s`, `3m 05s ago`. */
export const relativeTo = (at: Date, now: Date): string => {
  const delta = (at.getTime() - now.getTime()) / 1000;
  return delta >= 0 ? `in ${formatSpan(delta)}` : `${formatSpan(-delta)} ago`;
};

const pad = (n: number) => String(n).padStart(2, '0');

/** Local time: `14:03:12` today, `2025-06-01 14:03` on another day. */
export const formatLocal = (at: Date, now: Date): string => {
  const sameDay =
    at.getFullYear() === now.getFullYear() &&
    at.getMonth() === now.getMonth() &&
    at.getDate() === now.getDate();
  const time = `${pad(at.getHours())}:${pad(at.getMinutes())}`;
  return sameDay
    ? `${time}:${pad(at.getSeconds())}`
    : `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${time}`;
};
