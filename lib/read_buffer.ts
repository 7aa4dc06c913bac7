/**
 * A client's read buffer, sized by what its reads bring.
 *
 * Every client keeps a read pending, and the pending read holds its buffer:
 * a small one keeps an idle client cheap; a client that fills it (a busy
 * sender, a paste) gets a bigger one, and a small one again once its reads
 * are small. A read whose lines all went out as runs (a paste, a flood) may
 * grow to what Node reads at once: fewer, fuller reads are fewer rounds of
 * writes to the room (at 4 KiB, 20 clients pasting 1 KiB lines cost a write
 * per receiver every 4 lines). Commands stay at 4 KiB a read: 64 KiB of
 * `/nick` lines handled in one turn left 15 MB of heap behind.
 *
 * @module
 */

/** What an idle client's pending read holds. */
export const READ_BUFFER_MIN = 128;
/** The most a read may bring when its lines are handled one by one (commands). */
export const READ_BUFFER_COMMANDS = 4096;
/** The most a read may bring when its lines all go out as runs. */
export const READ_BUFFER_RUNS = 64 * 1024;

/**
 * The size of the next read after one of `n` bytes into a buffer of `size`:
 * a read that filled it asks for 8 times more, up to 64 KiB when its lines
 * all went out as runs, else 4 KiB; a small read, the small buffer.
 */
export function nextReadSize(size: number, n: number, allInRuns: boolean): number {
  const most = allInRuns ? READ_BUFFER_RUNS : READ_BUFFER_COMMANDS;
  if (n === size) return Math.min(size * 8, most);
  if (n <= READ_BUFFER_MIN) return READ_BUFFER_MIN;
  return Math.min(size, most);
}
