/**
 * The room's recent public lines (`--history N`): what a newcomer is shown
 * right after its welcome, the way ssh-chat replays its last lines and IRC
 * servers keep history. Only what everyone could read is kept: chat lines,
 * `/me` actions and the operator's `<server>` lines; never a private line,
 * never a notice.
 *
 * Lines are kept as they were encoded for the room (views into its slabs,
 * no copy): the last N lines hold at most N slabs alive, and usually one.
 *
 * @module
 */

/** The last `limit` public lines, oldest first. */
export class History {
  readonly #limit: number;
  #lines: Uint8Array[] = [];
  /** Where the oldest line is once the ring is full. */
  #start = 0;

  /** Keeps the last `limit` lines (0: none). */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Keeps `line` (encoded with its `\n`), forgetting the oldest past the limit. */
  record(line: Uint8Array): void {
    if (this.#limit === 0) return;
    if (this.#lines.length < this.#limit) {
      this.#lines.push(line);
      return;
    }
    this.#lines[this.#start] = line;
    this.#start = (this.#start + 1) % this.#limit;
  }

  /** The lines kept, oldest first. */
  recent(): Uint8Array[] {
    return [...this.#lines.slice(this.#start), ...this.#lines.slice(0, this.#start)];
  }
}
