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

/** A sealed batch: what everyone gets, and what each newcomer in it gets instead. */
export interface PresenceBatch<Member> {
  /** Every notice of the batch, encoded once for all. */
  bytes: Uint8Array;
  /**
   * A newcomer gets only what came after its own join (its welcome already
   * counted everyone before it): a tail of `bytes`, or nothing.
   */
  shareOf: Map<Member, Uint8Array>;
}

/** How presence reaches the room. */
export interface PresenceHooks<Member> {
  /** People in the room now. */
  roomSize(): number;
  /** Where the notices are encoded. */
  encoder: SlabEncoder;
  /** A small room: one notice to everyone but `except`, at once. */
  broadcast(line: string, except?: Member): void;
  /** A big room: a sealed batch, for every member of the room. */
  deliverBatch(batch: PresenceBatch<Member>): void;
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
export class Presence<Member> {
  #hooks: PresenceHooks<Member>;
  #pending: { line: string; newcomer?: Member }[] = [];
  #timer?: ReturnType<typeof setTimeout>;

  /** Presence for the room `hooks` reach. */
  constructor(hooks: PresenceHooks<Member>) {
    this.#hooks = hooks;
  }

  /** Announces a join (with its `newcomer`, who is not told of itself) or a leave. */
  announce(line: string, newcomer?: Member): void {
    const roomSize = this.#hooks.roomSize();
    if (roomSize <= BATCH_OVER && this.#pending.length === 0) {
      return this.#hooks.broadcast(line, newcomer);
    }
    this.#pending.push({ line, newcomer });
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
    const batch = this.#pending;
    this.#pending = [];
    this.#hooks.deliverBatch(this.#encode(batch));
  }

  #wait(roomSize: number): number {
    const budget = (roomSize / WRITES_PER_SECOND) * 1000;
    return Math.min(BATCH_MAX_MS, Math.max(BATCH_MS, budget));
  }

  /** The first NAMED by name, the rest counted in one line, in a very big room. */
  #encode(batch: { line: string; newcomer?: Member }[]): PresenceBatch<Member> {
    const { encoder } = this.#hooks;
    const naming = this.#hooks.roomSize() > NAME_ALL ? NAMED : batch.length;
    const named = batch.slice(0, naming).map(({ line }) => encoder.encodeLine(line));
    const counted = batch.slice(naming);
    const joins = counted.filter(({ newcomer }) => newcomer).length;
    const bytes = joinLines([...named, countLine(encoder, joins, counted.length - joins)]);
    const shareOf = new Map<Member, Uint8Array>();
    let offset = 0;
    named.forEach((line, i) => {
      offset += line.length;
      const { newcomer } = batch[i];
      if (newcomer) shareOf.set(newcomer, bytes.subarray(offset));
    });
    for (const { newcomer } of counted) if (newcomer) shareOf.set(newcomer, NOTHING);
    return { bytes, shareOf };
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
