/**
 * bench/common/stats.ts: the statistics the tables show over a scenario's
 * runs (median, min-max) and plain sums; non-finite values (a figure a run
 * could not take) are left out.
 */

export function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function minMax(values: number[]): [number, number] {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return [NaN, NaN];
  return [Math.min(...finite), Math.max(...finite)];
}

export function sum(values: number[]): number {
  return values.reduce((total, v) => total + v, 0);
}
