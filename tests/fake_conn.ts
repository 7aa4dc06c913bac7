// A connection for in-process tests of the chat room and its outboxes: no
// sockets, every write recorded, and a switch that makes writes hang the
// way a peer that stops reading does once TCP's buffers are full.

import type { Connection } from "../lib/room.ts";

const decoder = new TextDecoder();
let nextPort = 40000;

export class FakeConn implements Connection {
  readonly remoteAddr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: nextPort++ };
  /** Every write() call's bytes, in order (what was accepted of each). */
  readonly writes: Uint8Array[] = [];
  closed = false;
  /** Writes hang until unstick() or close(). */
  stuck = false;
  /** Most bytes one write() takes: a partial write past it. */
  maxWrite = Infinity;
  #hanging: { resolve: (n: number) => void; reject: (err: Error) => void; bytes: Uint8Array }[] =
    [];

  write(bytes: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new Deno.errors.BadResource("closed"));
    if (this.stuck) {
      const { promise, resolve, reject } = Promise.withResolvers<number>();
      this.#hanging.push({ resolve, reject, bytes: bytes.slice() });
      return promise;
    }
    return Promise.resolve(this.#take(bytes));
  }

  /** Lets hanging writes complete. */
  unstick(): void {
    this.stuck = false;
    for (const { resolve, bytes } of this.#hanging.splice(0)) resolve(this.#take(bytes));
  }

  /** Fails hanging writes the way a reset peer does (EPIPE), leaving the connection open. */
  unstickWithError(): void {
    this.stuck = false;
    for (const { reject } of this.#hanging.splice(0)) reject(new Deno.errors.BrokenPipe("reset"));
  }

  close(): void {
    if (this.closed) throw new Deno.errors.BadResource("closed twice");
    this.closed = true;
    for (const { reject } of this.#hanging.splice(0)) reject(new Deno.errors.BadResource("closed"));
  }

  /** Everything written, as lines. */
  lines(): string[] {
    const text = this.writes.map((bytes) => decoder.decode(bytes)).join("");
    return text.split("\n").slice(0, -1);
  }

  #take(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.maxWrite);
    this.writes.push(bytes.subarray(0, n)); // a view: which buffer was written is checked
    return n;
  }
}

/** Lets queued microtasks and zero-delay timers run (a flush round, its writes). */
export function settle(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
