/**
 * Flood control (`--max-rate N`): a token bucket per client, N lines a
 * second with bursts up to 2N. A client over it is slowed, not cut off: its
 * reader loop waits before handling its next line, and while it waits it
 * does not read the socket, so TCP holds the client's lines (its window
 * fills, its writes block). Nothing is lost or reordered, and the room is
 * never held up for anyone else.
 *
 * @module
 */

/** One client's allowance of lines. */
export class LineBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #refilledAt: number;
  /** Told once; told again only after a complete refill. */
  #warned = false;

  /** `rate` lines a second, bursts up to twice that; `now` in ms (performance.now()). */
  constructor(rate: number, now: number = performance.now()) {
    this.#rate = rate;
    this.#burst = 2 * rate;
    this.#tokens = this.#burst;
    this.#refilledAt = now;
  }

  /**
   * Takes one line's token. Returns how many ms the reader must wait before
   * handling the line (0: at once), and whether the client should now be
   * told to slow down.
   */
  take(now: number = performance.now()): { waitMs: number; warn: boolean } {
    this.#refill(now);
    this.#tokens -= 1;
    if (this.#tokens >= 0) return { waitMs: 0, warn: false };
    const warn = !this.#warned;
    this.#warned = true;
    return { waitMs: (-this.#tokens / this.#rate) * 1000, warn };
  }

  #refill(now: number): void {
    const earned = ((now - this.#refilledAt) / 1000) * this.#rate;
    this.#refilledAt = now;
    this.#tokens = Math.min(this.#burst, this.#tokens + earned);
    if (this.#tokens >= this.#burst) this.#warned = false; // full again: may be told again
  }
}
