/**
 * bench/common/time.ts: clocks every bench process reads the same way
 * (`performance.timeOrigin + performance.now()`, so a send time stamped in one
 * process can be subtracted from a receive time taken in another), and bounded
 * waiting.
 */

/** Wall-clock microseconds, high resolution, comparable across processes. */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Wall-clock milliseconds (fractional). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** `promise`, or a rejection after `ms`; the timer never outlives the race. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
