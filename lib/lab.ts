/**
 * The sockets states.ts --demo stages its steps with, all on loopback in one
 * process: a listener, the connection the current steps are about, an
 * accept queue filled on purpose, and every socket still to be closed.
 * Closing a socket is often a step's action itself, so closing is explicit
 * (`release`); whatever is left is closed by `closeAll`.
 *
 * @module
 */

import { closeQuietly, listenTcp } from "./net.ts";

/** A client's connection and the server's, the two ends of one TCP connection. */
export interface ConnectionPair {
  /** The end connect() returned. */
  client: Deno.TcpConn;
  /** The end accept() returned. */
  server: Deno.TcpConn;
}

/** Anything the lab can close: a connection or a listener. */
export type Closable = { close(): void };

/** Sockets on loopback for the demo's steps; see the module comment. */
export class Lab {
  /** Room for one read() of whatever a step's peer sent. */
  readonly buffer: Uint8Array = new Uint8Array(64 * 1024);
  /** The demo's server socket: every connect() goes to it. */
  readonly listener: Deno.TcpListener;
  /** Where clients connect: a wildcard listener is reached through loopback of its family. */
  readonly target: string;
  readonly #open = new Set<Closable>();
  readonly #aborter = new AbortController();
  #pair?: ConnectionPair;
  #full?: { listener: Deno.TcpListener; connects: Promise<Deno.TcpConn | undefined>[] };

  /** Listens on `host`:`port` (0: any free port). */
  constructor(host: string, port: number) {
    this.listener = this.#track(listenTcp(host, port));
    const { hostname } = this.listener.addr;
    this.target = hostname === "0.0.0.0" ? "127.0.0.1" : hostname === "::" ? "::1" : hostname;
  }

  /** The connection the current steps are about: the last one connect() made. */
  get pair(): ConnectionPair {
    if (!this.#pair) throw new Error("no connection yet: a step must connect() first");
    return this.#pair;
  }

  /** The listener fillAcceptQueue() made, whose queue is full. */
  get fullListener(): Deno.TcpListener {
    if (!this.#full) throw new Error("no full accept queue: fillAcceptQueue() first");
    return this.#full.listener;
  }

  /** A client connects and the server accepts: the new `pair`, which it also returns. */
  async connect(): Promise<ConnectionPair> {
    const port = this.listener.addr.port;
    const client = this.#track(await Deno.connect({ hostname: this.target, port }));
    this.#pair = { client, server: this.#track(await this.listener.accept()) };
    return this.#pair;
  }

  /**
   * `clients` connect() to a new listener with a backlog of 1 that never
   * accepts: once its accept queue is full, the kernel drops their SYNs
   * unanswered, and those clients wait in SYN_SENT.
   */
  fillAcceptQueue(clients: number): void {
    const listener = this.#track(listenTcp(this.target, 0, { tcpBacklog: 1 }));
    const { signal } = this.#aborter;
    const connects = Array.from(
      { length: clients },
      () =>
        Deno.connect({ hostname: this.target, port: listener.addr.port, signal }).then(
          (conn) => this.#track(conn),
          () => undefined, // aborted by emptyAcceptQueue(), on purpose
        ),
    );
    this.#full = { listener, connects };
  }

  /** Gives up the connect()s still waiting, and closes the full queue's sockets. */
  async emptyAcceptQueue(): Promise<void> {
    if (!this.#full) return;
    this.#aborter.abort();
    for (const conn of await Promise.all(this.#full.connects)) if (conn) this.release(conn);
    this.release(this.#full.listener);
  }

  /** Closes one socket now: the kernel's reaction is what /proc shows next. */
  release(resource: Closable): void {
    this.#open.delete(resource);
    closeQuietly(resource);
  }

  /** Ends every pending connect() and closes every socket still open. */
  closeAll(): void {
    this.#aborter.abort();
    for (const resource of this.#open) closeQuietly(resource);
  }

  #track<T extends Closable>(resource: T): T {
    this.#open.add(resource);
    return resource;
  }
}
