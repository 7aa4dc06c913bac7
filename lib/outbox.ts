/**
 * The chat's write path: one {@linkcode Outbox} per client, and the
 * {@linkcode PacedOutboxes} they share, which pace their writes and hold the
 * room's readers back while a client is behind.
 *
 * Like the Go book's chat server, where each client has a channel and a
 * writer goroutine, a delivery only appends to a client's queue and never
 * waits: a client that stops reading fills its own queue, never stalls the
 * room. What the room must know comes back as a return value: `deliver`
 * answers false when the client is past its limits, and the room drops it
 * once the delivery is over, so every other receiver sees the same order.
 *
 * Why the pacing: each `write()` costs a syscall and a wakeup of its reader
 * whatever it carries. A quiet room writes at once; a big busy one gathers
 * the lines of a round into one write per client (see WRITES_PER_SECOND).
 *
 * @module
 */

import { closeQuietly } from "./net.ts";
import { adjacentRun, joinLines, SlabEncoder, viewOf } from "./slab_encoder.ts";

/** The part of a connection an outbox writes to. */
export interface Writable {
  /** Like Deno.Conn.write: may write only part of `bytes`. */
  write(bytes: Uint8Array): Promise<number>;
  /** Closes the connection; may throw if it is closed already. */
  close(): void;
}

/**
 * One client's output, as the room sees it: lines go in and never wait;
 * whether the client keeps up comes back as deliver's answer.
 */
export interface Outbox {
  /**
   * Queues `line` (encoded, with its `\n`). Never waits. False when the
   * client is past its limits: the outbox has closed, and the room should
   * drop the client once the delivery at hand is over.
   */
  deliver(line: Uint8Array, now?: number): boolean;
  /** Queues one line of text; see deliver. */
  send(line: string): boolean;
  /** Starts writing now, not with the next paced round (a newcomer's welcome). */
  flushNow(): void;
  /** Closes once what is queued has been written, or after `graceMs`. */
  closeAfterDrain(graceMs: number): void;
  /** Closes now, dropping whatever is queued. */
  close(): void;
  /** The connection is closed: nothing more is queued or written. */
  readonly closed: boolean;
}

/** What a room's outboxes share: where lines are encoded, and the hold on readers. */
export interface OutboxPool {
  /** Where lines for these outboxes are encoded (lines side by side, see SlabEncoder). */
  readonly encoder: SlabEncoder;
  /** A new, empty outbox writing to `conn`. */
  open(conn: Writable): Outbox;
  /**
   * Resolves when no client that is reading is past its limit; reader loops
   * wait on it before each read. Undefined when there is nothing to wait for.
   */
  caughtUp(): Promise<void> | undefined;
  /** Stops holding anyone back, for good (the room is shutting down). */
  releaseAll(): void;
}

/** What the outboxes need to know. */
export interface OutboxOptions {
  /** Unsent bytes a client may leave unread (--max-queue). */
  maxQueue: number;
  /** People in the room: small rooms flush at once. */
  roomSize: () => number;
}

// How many writes a second a busy room aims at. At 100,000 a second, 1,000
// busy clients got ~5 lines per write, the server and its readers ran out of
// CPU together and p99 latency rose to 0.1-0.6 s.
const WRITES_PER_SECOND = 50_000;
// A room this small flushes at once, busy or not: its rounds are cheap and
// it stays interactive.
const SMALL_ROOM = 200;
// The longest pause between rounds, whatever the room's size.
const MAX_FLUSH_PAUSE_MS = 25;
// A client past --max-queue that took nothing for this long has stopped reading.
const STALL_MS = 1000;
// A client past --max-queue that took something in the last HOLD_MS is only
// behind: the room stops reading from its senders until it catches up (TCP
// then slows them down), rather than queue without end or drop a reader
// that is reading. One that took nothing for that long is not waited for,
// so a stuck reader holds the room up for HOLD_MS once: 100 ms cost a
// fifth of the throughput of the bench's 0.4 s push, 50 ms a tenth, but
// with 50 ms a load generator paused by its machine lost readers.
const HOLD_MS = 100;
const HOLD_CHECK_MS = 10;
// A queue of more than this goes out run by run, each run of lines that lie
// side by side one write of a view, rather than copied whole into one
// buffer: under a flood of big lines, a reader's queue held some 850 KB when
// its last write ended, and copying it whole cost a sixth of the server's CPU
// (the kernel takes a write that big in parts anyway).
const JOIN_AT_MOST = 64 * 1024;

/** One client's queue of output, written in order, one write at a time. */
class QueuedOutbox implements Outbox {
  #group: PacedOutboxes;
  #conn: Writable;
  /** Encoded lines waiting to be written, oldest first. */
  #queue: Uint8Array[] = [];
  /** Bytes in the queue plus the unwritten rest of the write in flight. */
  #queued = 0;
  #writing = false;
  /** Waiting in the group's round for the next flush. */
  #dirty = false;
  #closed = false;
  /** Close once the queue has drained (the client left). */
  #closing = false;
  /** Closes a leaver that does not read its last lines. */
  #farewell?: ReturnType<typeof setTimeout>;
  /** performance.now() when output last went out (or there was none). */
  #lastProgress = performance.now();

  constructor(group: PacedOutboxes, conn: Writable) {
    this.#group = group;
    this.#conn = conn;
  }

  /** The connection is closed: nothing more is queued or written. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queues `line` (encoded, with its `\n`). Never waits. Returns false when
   * the client is past --max-queue and has either stopped reading (nothing
   * taken for STALL_MS) or left twice that unread while taking nothing for
   * HOLD_MS: its queue is discarded and the room should drop it, after the
   * delivery at hand. One that is reading is waited for instead, however a
   * burst found it: 20 senders' 64 KiB reads handled in one turn add over
   * 1 MiB to every reader's queue before the room can stop reading.
   */
  deliver(line: Uint8Array, now: number = performance.now()): boolean {
    if (this.#closed) return true;
    if (this.#queued === 0) this.#lastProgress = now; // it had caught up
    this.#queue.push(line);
    this.#queued += line.length;
    const { maxQueue } = this.#group.options;
    if (this.#queued > maxQueue) {
      const stalled = now - this.#lastProgress > STALL_MS;
      if (stalled || (this.#queued > 2 * maxQueue && !this.isTakingOutput(now))) {
        this.close();
        return false;
      }
      this.#group.waitFor(this);
    }
    if (!this.#dirty && !this.#writing) {
      this.#dirty = true;
      this.#group.schedule(this);
    }
    return true;
  }

  /** Queues one line of text; see deliver. */
  send(line: string): boolean {
    return this.deliver(this.#group.encoder.encodeLine(line));
  }

  /** Starts writing now, not with the next paced round (a newcomer's welcome). */
  flushNow(): void {
    this.#write();
  }

  /**
   * Closes the connection once what is queued has been written (answers to
   * a client's last commands: `printf '/who\n' | nc -N` sees its answer),
   * or after `graceMs` for a peer that does not read its last lines.
   */
  closeAfterDrain(graceMs: number): void {
    if (this.#closed) return;
    this.#closing = true;
    this.#group.stopWaitingFor(this); // a leaver is not waited for
    if (!this.#writing && this.#queue.length === 0) return this.close();
    this.#farewell = setTimeout(() => this.close(), graceMs);
  }

  /** Closes the connection now, dropping whatever is queued. */
  close(): void {
    clearTimeout(this.#farewell);
    this.#closed = true;
    this.#queue = [];
    this.#group.stopWaitingFor(this);
    closeQuietly(this.#conn);
  }

  /** @internal Took output recently enough to be waited for. */
  isTakingOutput(now: number): boolean {
    return now - this.#lastProgress < HOLD_MS;
  }

  /** @internal Called by the group's flush round. */
  flushRound(): void {
    this.#dirty = false;
    this.#write();
  }

  /**
   * One write of everything queued (a partial write is finished at once).
   * Never two at once on one socket: lines queued meanwhile go in the next.
   */
  async #write(): Promise<void> {
    if (this.#closed || this.#writing || this.#queue.length === 0) return;
    this.#writing = true;
    const lines = this.#queue;
    this.#queue = [];
    try {
      let from = 0;
      while (from < lines.length) {
        // One async layer and no object per write: this runs for every
        // receiver of every line, and each layer left garbage behind.
        const chunk = this.#group.nextChunk(lines, from);
        from = this.#group.chunkEnd;
        let offset = 0;
        while (offset < chunk.length) {
          offset += await this.#conn.write(offset === 0 ? chunk : chunk.subarray(offset));
          this.#lastProgress = performance.now();
        }
        this.#queued -= chunk.length;
      }
    } catch {
      // The peer went away; its reader loop sees that too and the room cleans up.
      this.#queue = [];
      this.#queued = 0;
    }
    this.#writing = false;
    if (this.#queued <= this.#group.options.maxQueue) this.#group.stopWaitingFor(this);
    if (this.#queue.length > 0) {
      this.#dirty = true;
      this.#group.schedule(this);
    } else if (this.#closing) {
      this.close();
    }
  }
}

/**
 * The room's outboxes: the line encoder, the flush round that gives each
 * dirty outbox one write, and the hold that makes the room's readers wait
 * while a client that is reading is past --max-queue.
 */
export class PacedOutboxes implements OutboxPool {
  /** The limits this group was made with. */
  readonly options: OutboxOptions;
  /** Where lines for these outboxes are encoded. */
  readonly encoder: SlabEncoder = new SlabEncoder();
  #dirty: QueuedOutbox[] = [];
  #flushScheduled = false;
  /** performance.now() before which the next flush should not start. */
  #nextFlushAt = 0;
  /**
   * The last queue joined for a write and its bytes, for the next outbox
   * whose queue holds the very same lines (forgotten after each round).
   */
  #lastJoined?: { lines: Uint8Array[]; bytes: Uint8Array };
  /** Outboxes past --max-queue; see HOLD_MS. */
  #backlogged = new Set<QueuedOutbox>();
  #hold?: { done: Promise<void>; release: () => void; timer: ReturnType<typeof setInterval> };
  #released = false;

  /** Outboxes with these limits. */
  constructor(options: OutboxOptions) {
    this.options = options;
  }

  /** A new, empty outbox writing to `conn`. */
  open(conn: Writable): Outbox {
    return new QueuedOutbox(this, conn);
  }

  /**
   * Resolves when no outbox the room waits for is past --max-queue; every
   * reader loop awaits it before its next read (so TCP slows the senders
   * down). Nothing to wait for: undefined, at no cost.
   */
  caughtUp(): Promise<void> | undefined {
    if (this.#backlogged.size === 0 || this.#released) return undefined;
    if (this.#hold) return this.#hold.done;
    if (!this.#isHeld()) return undefined;
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setInterval(() => this.#checkHold(), HOLD_CHECK_MS);
    this.#hold = { done: promise, release: resolve, timer };
    return promise;
  }

  /** Stops holding anyone back, for good (the room is shutting down). */
  releaseAll(): void {
    this.#released = true;
    this.#checkHold();
  }

  /** @internal An outbox went past --max-queue. */
  waitFor(outbox: QueuedOutbox): void {
    this.#backlogged.add(outbox);
  }

  /** @internal An outbox is no longer past --max-queue (or is gone). */
  stopWaitingFor(outbox: QueuedOutbox): void {
    if (this.#backlogged.delete(outbox)) this.#checkHold();
  }

  /** @internal Puts an outbox in the next flush round. */
  schedule(outbox: QueuedOutbox): void {
    this.#dirty.push(outbox);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    const wait = this.#nextFlushAt - performance.now();
    if (wait < 1) queueMicrotask(() => this.#flush());
    else setTimeout(() => this.#flush(), wait);
  }

  /**
   * Everything queued for an outbox as one buffer for one write. Broadcast
   * lines are encoded once and shared by every queue, so in a round most
   * queues hold the very same lines (the room's news since the last round):
   * they share one joined buffer too, instead of a copy each.
   * @internal
   */
  takeJoined(queue: Uint8Array[]): Uint8Array {
    if (queue.length === 1) return queue[0];
    const last = this.#lastJoined;
    if (last && sameLines(last.lines, queue)) return last.bytes;
    const bytes = joinLines(queue);
    this.#lastJoined = { lines: queue, bytes };
    return bytes;
  }

  /**
   * The next write of `queue` from its line `from` (chunkEnd: the line after it):
   * the whole queue as one buffer (takeJoined) when it is side by side or
   * small; else the run of lines from `from` that lie side by side, a view,
   * or, where that run is short, a copy of at most JOIN_AT_MOST bytes.
   * @internal
   */
  nextChunk(queue: Uint8Array[], from: number): Uint8Array {
    const runEnd = adjacentRun(queue, from);
    if (runEnd === queue.length) return this.#chunkTo(runEnd, viewOf(queue, from, runEnd));
    if (from === 0 && queuedBytes(queue, JOIN_AT_MOST) <= JOIN_AT_MOST) {
      return this.#chunkTo(queue.length, this.takeJoined(queue));
    }
    const run = viewOf(queue, from, runEnd);
    if (run.length >= JOIN_AT_MOST / 4) return this.#chunkTo(runEnd, run);
    let end = from + 1;
    let bytes = queue[from].length;
    while (end < queue.length && bytes + queue[end].length <= JOIN_AT_MOST) {
      bytes += queue[end++].length;
    }
    return this.#chunkTo(end, joinLines(queue.slice(from, end)));
  }

  /** Where the chunk nextChunk returned last ends in its queue. @internal */
  chunkEnd = 0;

  #chunkTo(end: number, chunk: Uint8Array): Uint8Array {
    this.chunkEnd = end;
    return chunk;
  }

  /**
   * Starts one write for every outbox with pending output. The next round
   * waits until the room has had time for these writes at
   * WRITES_PER_SECOND: a quiet room flushes at once (low latency), a busy
   * one gathers more lines per write (far fewer syscalls per line).
   */
  #flush(): void {
    const dirty = this.#dirty;
    this.#dirty = [];
    this.#flushScheduled = false;
    this.#nextFlushAt = performance.now() + this.#pause(dirty.length);
    for (const outbox of dirty) outbox.flushRound();
    this.#lastJoined = undefined;
  }

  /**
   * How long the next round waits: the time `writes` take at
   * WRITES_PER_SECOND. Judged by the room's size, not the round's: rounds
   * split up as writes finish at different times, and small rounds flushed
   * at once would multiply the writes of a busy room again.
   */
  #pause(writes: number): number {
    if (this.options.roomSize() <= SMALL_ROOM) return 0;
    return Math.min(MAX_FLUSH_PAUSE_MS, (writes / WRITES_PER_SECOND) * 1000);
  }

  /** Lets the readers go on once nobody is waited for (or for good). */
  #checkHold(): void {
    if (!this.#hold || (!this.#released && this.#isHeld())) return;
    clearInterval(this.#hold.timer);
    this.#hold.release();
    this.#hold = undefined;
  }

  #isHeld(): boolean {
    const now = performance.now();
    for (const outbox of this.#backlogged) {
      if (outbox.isTakingOutput(now)) return true;
    }
    return false;
  }
}

/** The bytes of `queue`, counted only up to a little past `limit`. */
function queuedBytes(queue: Uint8Array[], limit: number): number {
  let bytes = 0;
  for (const line of queue) {
    bytes += line.length;
    if (bytes > limit) break;
  }
  return bytes;
}

function sameLines(a: Uint8Array[], b: Uint8Array[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
