// Small statistics and formatting helpers for the benchmarks. Percentiles use the nearest-rank
// method (every reported value was actually observed); the median of an even count is the mean of
// the two middle values.

export const sorted = (values: readonly number[]): number[] => [...values].sort((a, b) => a - b);

export function median(values: readonly number[]): number {
  const s = sorted(values);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Nearest-rank percentile, p in (0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  const s = sorted(values);
  if (s.length === 0) return Number.NaN;
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1] as number;
}

export const ms = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(1)} ms` : 'n/a');

export function bytes(value: number): string {
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KB`;
  return `${(value / (1024 * 1024)).toFixed(2)} MB`;
}

/**
 * A ratio with two decimals, or three when two would print the target itself or hide which side
 * of it the value is on (1.153 is printed as 1.153×, not 1.15×).
 */
export function ratio(value: number, target?: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const two = value.toFixed(2);
  if (target !== undefined && Math.abs(value - target) < 0.01 && value !== target) {
    return `${value.toFixed(3)}×`;
  }
  return `${two}×`;
}

export const verdict = (met: boolean): string => (met ? 'met' : '**missed**');
