/**
 * bench/common/histogram.ts: a mergeable latency histogram over integer
 * microseconds. Each load worker keeps one and the coordinator sums them, so
 * memory stays bounded whatever the number of samples.
 */

// Log-linear buckets: exact below 128 us, then 64 sub-buckets per power of two
// (at most 1.6% wide), up to 2^31 us (35 min). Merging is adding counts.
const LINEAR = 128;
const SUB = 64;
const HISTOGRAM_BUCKETS = LINEAR + (31 - 7) * SUB;

function bucketOf(micros: number): number {
  if (micros < LINEAR) return micros < 0 ? 0 : Math.floor(micros);
  const v = micros >= 2 ** 31 ? 2 ** 31 - 1 : Math.floor(micros);
  const e = 31 - Math.clz32(v); // floor(log2 v), >= 7
  const shift = e - 6;
  return LINEAR + (e - 7) * SUB + ((v >>> shift) - SUB);
}

/** The middle of a bucket, in microseconds. */
function bucketValue(index: number): number {
  if (index < LINEAR) return index;
  const e = Math.floor((index - LINEAR) / SUB) + 7;
  const m = ((index - LINEAR) % SUB) + SUB;
  const shift = e - 6;
  return m * 2 ** shift + 2 ** shift / 2;
}

/** A histogram as it travels between processes and into the --json output. */
export interface HistogramData {
  /** [bucket index, count] for every non-empty bucket. */
  buckets: [number, number][];
  total: number;
  max: number;
  min: number;
  sum: number;
}

export class Histogram {
  counts = new Float64Array(HISTOGRAM_BUCKETS);
  total = 0;
  max = 0;
  min = Infinity;
  sum = 0;

  record(micros: number): void {
    this.counts[bucketOf(micros)]++;
    this.total++;
    this.sum += micros;
    if (micros > this.max) this.max = micros;
    if (micros < this.min) this.min = micros;
  }

  /** p in [0, 100]; microseconds (bucket middle; exact below 128 us). */
  percentile(p: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(bucketValue(i), this.max);
    }
    return this.max;
  }

  toJSON(): HistogramData {
    const buckets: [number, number][] = [];
    this.counts.forEach((count, i) => {
      if (count) buckets.push([i, count]);
    });
    return {
      buckets,
      total: this.total,
      max: this.max,
      min: this.total ? this.min : 0,
      sum: this.sum,
    };
  }

  merge(data: HistogramData): void {
    for (const [i, count] of data.buckets) this.counts[i] += count;
    this.total += data.total;
    this.sum += data.sum;
    if (data.total) {
      this.max = Math.max(this.max, data.max);
      this.min = Math.min(this.min, data.min);
    }
  }
}
