/**
 * The sockets states.ts --demo stages its steps with, all on loopback in one
 * process: a listener, the connection the current steps are about, an
 * accept queue filled on purpose, sockets made with libc through FFI (a
 * listener with TCP_DEFER_ACCEPT, a client that aborts with SO_LINGER 0),
 * and every socket still to be closed. Closing a socket is often a step's
 * action itself, so closing is explicit (`release`, `closeFd`); whatever is
 * left is closed by `closeAll`.
 *
 * @module
 */

import { type Libc, openLibc } from "./libc.ts";
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

/** A listener made with libc, and the client whose handshake it holds back. */
export interface Deferred {
  /** The listener's file descriptor (libc's, not a Deno resource). */
  fd: number;
  /** Where it listens. */
  address: Deno.NetAddr;
  /** The client: connect() returned, its end ESTABLISHED, the server's not. */
  client: Deno.TcpConn;
}

/** Sockets on loopback for the demo's steps; see the module comment. */
export class Lab {
  /** Room for one read() of whatever a step's peer sent. */
  readonly buffer: Uint8Array = new Uint8Array(64 * 1024);
  /** The demo's server socket: every connect() goes to it. */
  readonly listener: Deno.TcpListener;
  /** Where clients connect: a wildcard listener is reached through loopback of its family. */
  readonly target: string;
  /** libc through FFI for the steps that need it, or why it cannot be used here. */
  readonly libc: Libc | string;
  readonly #open = new Set<Closable>();
  readonly #fds = new Set<number>();
  readonly #aborter = new AbortController();
  #pair?: ConnectionPair;
  #full?: { listener: Deno.TcpListener; connects: Promise<Deno.TcpConn | undefined>[] };
  #deferred?: Deferred;
  #aborting?: { fd: number; server: Deno.TcpConn };
  #closed?: Deno.NetAddr;

  /** Listens on `host`:`port` (0: any free port); `libc` defaults to openLibc()'s. */
  constructor(host: string, port: number, libc: Libc | string = openLibc()) {
    this.libc = libc;
    this.listener = this.#track(listenTcp(host, port));
    const { hostname } = this.listener.addr;
    this.target = hostname === "0.0.0.0" ? "127.0.0.1" : hostname === "::" ? "::1" : hostname;
  }

  /** libc, for a step that runs only when it is available (runStep skips it otherwise). */
  get ffi(): Libc {
    if (typeof this.libc === "string") throw new Error(`no libc: ${this.libc}`);
    return this.libc;
  }

  /** The listener deferredConnect() made, and the client it holds back. */
  get deferred(): Deferred {
    if (!this.#deferred) throw new Error("no deferred listener: deferredConnect() first");
    return this.#deferred;
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
   * A client connects to a new listener made with libc whose
   * TCP_DEFER_ACCEPT is `seconds`: the kernel finishes the handshake but
   * keeps the server's half in SYN_RCVD until the client sends data.
   */
  async deferredConnect(seconds: number): Promise<Deferred> {
    const libc = this.ffi;
    const fd = this.#trackFd(libc.socket(this.target.includes(":") ? 6 : 4));
    libc.setsockopt(fd, "TCP_DEFER_ACCEPT", seconds);
    libc.bind(fd, this.target, 0);
    libc.listen(fd, 16);
    const address: Deno.NetAddr = {
      transport: "tcp",
      hostname: this.target,
      port: libc.localPort(fd),
    };
    const client = this.#track(await Deno.connect({ hostname: this.target, port: address.port }));
    this.#deferred = { fd, address, client };
    return this.#deferred;
  }

  /**
   * A client made with libc connects to the lab's listener, which accepts:
   * the new `pair`'s server end, and the client's file descriptor (no Deno
   * resource: libc's close() on it sends no FIN first, unlike Deno's).
   */
  async ffiConnect(): Promise<{ fd: number; server: Deno.TcpConn }> {
    const libc = this.ffi;
    const fd = this.#trackFd(libc.socket(this.target.includes(":") ? 6 : 4));
    libc.connect(fd, this.target, this.listener.addr.port);
    this.#aborting = { fd, server: this.#track(await this.listener.accept()) };
    return this.#aborting;
  }

  /** The connection ffiConnect() made: the libc client's descriptor and the server's end. */
  get ffiPair(): { fd: number; server: Deno.TcpConn } {
    if (!this.#aborting) throw new Error("no libc client: ffiConnect() first");
    return this.#aborting;
  }

  /** Closes a file descriptor made with libc: the kernel's reaction is what /proc shows next. */
  closeFd(fd: number): void {
    if (this.#fds.delete(fd) && typeof this.libc !== "string") this.libc.close(fd);
  }

  /**
   * A port nobody listens on: one the kernel just gave a listener, closed
   * at once (on loopback no other program takes it in between).
   */
  closedPort(): Deno.NetAddr {
    const listener = listenTcp(this.target, 0);
    listener.close();
    this.#closed = listener.addr;
    return listener.addr;
  }

  /** The address closedPort() gave: where nobody listens. */
  get closedAddress(): Deno.NetAddr {
    if (!this.#closed) throw new Error("no closed port yet: closedPort() first");
    return this.#closed;
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

  /** Ends every pending connect(), closes every socket still open, releases libc. */
  closeAll(): void {
    this.#aborter.abort();
    for (const resource of this.#open) closeQuietly(resource);
    for (const fd of this.#fds) this.closeFd(fd);
    if (typeof this.libc !== "string") this.libc.unload();
  }

  #track<T extends Closable>(resource: T): T {
    this.#open.add(resource);
    return resource;
  }

  #trackFd(fd: number): number {
    this.#fds.add(fd);
    return fd;
  }
}
