/**
 * Join and leave notices ("* alice joined"), batched in big rooms.
 *
 * Filling a room of N people announces N joins to up to N people each: one
 * write per person per notice made that O(N^2) in writes and in the memory
 * their churn leaves behind. In a small room each notice goes out at once;
 * in a big one they are gathered for a moment and sent as one buffer shared
 * by everyone, a write per person per batch. In a very big room a batch
 * names a few and counts the rest.
 *
 * @module
 */

import type { SlabEncoder } from "./slab_encoder.ts";
import { joinLines } from "./slab_encoder.ts";

/**
 * A sealed batch of notices, in the order the events happened, encoded once.
 * Each receiver gets what happened after it arrived: its welcome already
 * counted everyone before it.
 */
export interface PresenceBatch {
  /** Every notice of the batch, encoded once for all. */
  bytes: Uint8Array;
  /** The part of `bytes` for a receiver that arrived at `arrival`: a view, or nothing. */
  shareFrom(arrival: number): Uint8Array;
}

/** How presence reaches the room. */
export interface PresenceHooks {
  /** People in the room now. */
  roomSize(): number;
  /** Where the notices are encoded. */
  encoder: SlabEncoder;
  /** A small room: one notice, at once, to everyone who arrived before `at`. */
  deliver(line: string, at: number): void;
  /** A big room: a sealed batch, for every member of the room. */
  deliverBatch(batch: PresenceBatch): void;
}

/**
 * One join or leave. `at` orders events in the room: a join's is when its
 * member arrived (announced up to half a second later, see Room), a leave's
 * when it happened. Receivers that arrived at or after `at` knew it already.
 */
interface Event {
  line: string;
  at: number;
  join: boolean;
}

// A room this small announces each join and leave at once.
const BATCH_OVER = 200;
// A batch is at most this old; a bigger room waits longer, enough for its
// batches to cost at most WRITES_PER_SECOND, never more than the longest wait.
const BATCH_MS = 250;
const BATCH_MAX_MS = 2000;
const WRITES_PER_SECOND = 5000;
// In a room of more than NAME_ALL, a batch names this many joins and leaves
// and counts the rest: naming them all, 5,000 joins into a room of 10,000
// made a gigabyte of notices, and the memory of queueing them.
const NAMED = 10;
const NAME_ALL = 1000;
const NOTHING = new Uint8Array();

/** The room's join and leave notices, at once or in batches. */
export class Presence {
  #hooks: PresenceHooks;
  #pending: Event[] = [];
  #timer?: ReturnType<typeof setTimeout>;

  /** Presence for the room `hooks` reach. */
  constructor(hooks: PresenceHooks) {
    this.#hooks = hooks;
  }

  /** Announces a join or a leave that happened at `at` (see Event). */
  announce(line: string, at: number, join: boolean): void {
    const roomSize = this.#hooks.roomSize();
    if (roomSize <= BATCH_OVER && this.#pending.length === 0) {
      return this.#hooks.deliver(line, at);
    }
    this.#pending.push({ line, at, join });
    this.#timer ??= setTimeout(() => this.seal(), this.#wait(roomSize));
  }

  /**
   * Sends the gathered notices now. The room calls this before anything
   * else it sends, so "* X joined" always comes before anything X says.
   */
  seal(): void {
    if (this.#pending.length === 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#pending.sort((a, b) => a.at - b.at);
    this.#pending = [];
    this.#hooks.deliverBatch(this.#encode(batch));
  }

  #wait(roomSize: number): number {
    const budget = (roomSize / WRITES_PER_SECOND) * 1000;
    return Math.min(BATCH_MAX_MS, Math.max(BATCH_MS, budget));
  }

  /**
   * The first NAMED by name, the rest counted in one line, in a very big
   * room. A receiver that arrived among the counted ones gets none of it.
   */
  #encode(batch: Event[]): PresenceBatch {
    const { encoder } = this.#hooks;
    const naming = this.#hooks.roomSize() > NAME_ALL ? NAMED : batch.length;
    const named = batch.slice(0, naming).map(({ line }) => encoder.encodeLine(line));
    const counted = batch.slice(naming);
    const joins = counted.filter(({ join }) => join).length;
    const bytes = joinLines([...named, countLine(encoder, joins, counted.length - joins)]);
    const starts: number[] = []; // where each named notice starts in `bytes`
    named.reduce((offset, line) => (starts.push(offset), offset + line.length), 0);
    const shareFrom = (arrival: number) => {
      if (arrival < batch[0].at) return bytes; // most receivers: all of it, at no cost
      const first = firstAfter(batch, arrival);
      return first >= naming ? NOTHING : bytes.subarray(starts[first]);
    };
    return { bytes, shareFrom };
  }
}

/** "* 12 more joined, 3 more left (/who lists everyone)", encoded; empty for none. */
function countLine(encoder: SlabEncoder, joined: number, left: number): Uint8Array {
  const counts = [];
  if (joined > 0) counts.push(`${joined} more joined`);
  if (left > 0) counts.push(`${left} more left`);
  if (counts.length === 0) return NOTHING;
  return encoder.encodeLine(`* ${counts.join(", ")} (/who lists everyone)`);
}

/** The index of the first event (sorted by `at`) after `arrival`; the length if none. */
function firstAfter(events: Event[], arrival: number): number {
  let low = 0;
  let high = events.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (events[middle].at > arrival) high = middle;
    else low = middle + 1;
  }
  return low;
}
