// fault_proxy.ts: a small TCP proxy for tests that breaks the network on
// purpose, on loopback only.
//
//   const proxy = FaultProxy.start(server.port, { faults: (i) => ({ up: { trickle: true } }) });
//   const client = await connectClient(proxy.port);     // talks to the server through it
//   const link = await proxy.link(0);                   // that connection's two sockets
//   link.blackhole(); link.reset("both"); await link.halfClose("up");
//   await proxy.close();
//
// Each accepted connection (a Link) gets its own connection to the target and
// two pumps: "up" (client -> server) and "down" (server -> client). Faults,
// per direction, set at accept time or changed later:
//   delayMs         every chunk waits this long before it is forwarded (latency)
//   trickle         forward one byte per write, each a segment of its own (with
//                   `trickleMs` between bytes, default 1)
//   splitAt         absolute stream offsets where writes are cut; each piece
//                   goes out alone, `splitPauseMs` apart (default 5)
//   blackholeAfter  after this many bytes, forward nothing more and stop
//                   reading: the peer sees a silent partner that never ACKs
//                   past its buffers (like a dead route), not a FIN or RST
//   resetAfter      after this many bytes, reset both sides (RST, not FIN)
//   halfCloseAfter  after this many bytes, send a FIN that way and drop the rest
// A FIN from either side is passed on as a FIN (half-close); the link closes
// once both directions have ended.
//
// Resets: Deno has no SO_LINGER, and its close() shuts the write side down
// first, so the peer would read a FIN before any RST. The proxy finds the
// socket's file descriptor (its inode in /proc/net/tcp, then /proc/self/fd)
// and calls libc connect() with AF_UNSPEC on it (Deno.dlopen): Linux then
// aborts the connection with a RST alone. Linux only; needs -A.

export type Direction = "up" | "down";
export type Side = "client" | "server" | "both";

export interface Faults {
  delayMs?: number;
  trickle?: boolean;
  trickleMs?: number;
  splitAt?: number[];
  splitPauseMs?: number;
  blackholeAfter?: number;
  resetAfter?: number;
  halfCloseAfter?: number;
}

export interface ProxyOptions {
  /** The port to listen on (default: any free one); e.g. to come back on the same one. */
  port?: number;
  /** Faults for the n-th accepted connection (0-based), by direction. */
  faults?: (index: number) => { up?: Faults; down?: Faults } | undefined;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class FaultProxy {
  readonly links: Link[] = [];
  readonly #listener: Deno.TcpListener;
  readonly #accepting: Promise<void>;
  #waiters: (() => void)[] = [];
  #closed = false;

  private constructor(readonly targetPort: number, readonly options: ProxyOptions) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: options.port ?? 0 });
    this.#accepting = this.#accept();
  }

  /** Listens on 127.0.0.1 (any free port, or options.port) and forwards to 127.0.0.1:targetPort. */
  static start(targetPort: number, options: ProxyOptions = {}): FaultProxy {
    return new FaultProxy(targetPort, options);
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  /** The index-th accepted connection, once both its sockets are up. */
  async link(index: number, timeoutMs = 10_000): Promise<Link> {
    const deadline = Date.now() + timeoutMs;
    while (!this.links[index]) {
      if (this.#closed) throw new Error("proxy closed");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no connection #${index} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.push(done);
      });
    }
    return this.links[index];
  }

  /** Stops accepting, closes every link, and waits for all pumps to finish. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#listener.close();
      } catch {
        // Already closed.
      }
    }
    await this.#accepting;
    for (const link of this.links) link.close();
    await Promise.all(this.links.map((link) => link.done));
    this.#wake();
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch (err) {
        if (err instanceof Deno.errors.BadResource || this.#closed) return;
        continue; // a client that reset before accept completed
      }
      let server: Deno.TcpConn;
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port: this.targetPort });
      } catch {
        closeConn(client);
        continue;
      }
      if (this.#closed) {
        closeConn(client);
        closeConn(server);
        return;
      }
      const index = this.links.length;
      const faults = this.options.faults?.(index) ?? {};
      this.links.push(new Link(index, client, server, faults.up ?? {}, faults.down ?? {}));
      this.#wake();
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** One proxied connection: the client's socket, ours to the server, two pumps. */
export class Link {
  readonly up: Pipe;
  readonly down: Pipe;
  /** Resolves when both pumps have finished and both sockets are closed. */
  readonly done: Promise<void>;
  /** How the link ended, once it has: "closed" (FINs or close()), "reset", "broken". */
  ending: "open" | "closed" | "reset" | "broken" = "open";
  #closed = false;

  constructor(
    readonly index: number,
    readonly client: Deno.TcpConn,
    readonly server: Deno.TcpConn,
    upFaults: Faults,
    downFaults: Faults,
  ) {
    // The proxy must not add latency of its own: Nagle off both ways.
    client.setNoDelay(true);
    server.setNoDelay(true);
    this.up = new Pipe(this, "up", client, server, upFaults);
    this.down = new Pipe(this, "down", server, client, downFaults);
    this.done = Promise.all([this.up.done, this.down.done]).then(() => this.close());
  }

  /** Both directions stop forwarding and reading; the sockets stay open. */
  blackhole(): void {
    this.up.blackhole();
    this.down.blackhole();
  }

  /** Sends a RST to the client, the server or both, and closes the link. */
  reset(side: Side = "both"): void {
    if (this.#closed) return;
    if (side !== "server") resetConn(this.client);
    if (side !== "client") resetConn(this.server);
    this.ending = "reset";
    this.close();
  }

  /** Sends a FIN one way (up: to the server) after what was forwarded so far. */
  halfClose(direction: Direction): Promise<void> {
    return (direction === "up" ? this.up : this.down).halfClose();
  }

  /** Closes both sockets (FINs, or RSTs where reset() armed them). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.ending === "open") this.ending = "closed";
    closeConn(this.client);
    closeConn(this.server);
    this.up.stop();
    this.down.stop();
  }

  get isClosed(): boolean {
    return this.#closed;
  }
}

/** One direction of a link: reads `from`, applies the faults, writes `to`. */
export class Pipe {
  /** Bytes forwarded so far. */
  forwarded = 0;
  /** Bytes read but never forwarded (black hole, after a half-close). */
  dropped = 0;
  /** Writes made: a trickled or split stream makes many. */
  writes = 0;
  readonly done: Promise<void>;
  #blackholed = false;
  #halfClosed = false;
  #stopped = false;
  #wakeStopped!: () => void;
  readonly #stoppedPromise = new Promise<void>((resolve) => this.#wakeStopped = resolve);

  constructor(
    readonly link: Link,
    readonly direction: Direction,
    readonly from: Deno.TcpConn,
    readonly to: Deno.TcpConn,
    public faults: Faults,
  ) {
    this.done = this.#pump();
  }

  get blackholed(): boolean {
    return this.#blackholed;
  }

  /** Forward nothing more and stop reading (what was read is dropped). */
  blackhole(): void {
    this.#blackholed = true;
  }

  /** A FIN to the destination now; later bytes from the source are dropped. */
  async halfClose(): Promise<void> {
    if (this.#halfClosed) return;
    this.#halfClosed = true;
    try {
      await this.to.closeWrite();
    } catch {
      // The destination is gone already.
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#wakeStopped();
  }

  async #pump(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (!this.#stopped) {
        let n: number | null;
        try {
          n = await this.from.read(buffer);
        } catch {
          n = null; // reset, or closed by the link: the end either way
        }
        if (n === null) {
          // A FIN (or a reset) from the source: pass a FIN on, unless stopped.
          if (!this.#stopped && !this.#blackholed) await this.halfClose();
          return;
        }
        if (this.#blackholed || this.#halfClosed) {
          this.dropped += n;
          if (this.#blackholed) return await this.#stoppedPromise; // read no more
          continue;
        }
        await this.#forward(buffer.subarray(0, n));
      }
    } catch {
      // The destination went away mid-write: the link is broken.
      if (this.link.ending === "open") this.link.ending = "broken";
      this.link.close();
    }
  }

  async #forward(bytes: Uint8Array): Promise<void> {
    const f = this.faults;
    if (f.delayMs) await sleep(f.delayMs);
    let offset = 0;
    while (offset < bytes.length) {
      if (this.#stopped || this.#blackholed || this.#halfClosed) {
        this.dropped += bytes.length - offset;
        return;
      }
      // The piece ends at the next cut: a byte when trickling, a split
      // offset, or a threshold at which a fault fires.
      let end = f.trickle ? offset + 1 : bytes.length;
      const at = this.forwarded;
      for (const cut of [...(f.splitAt ?? []), f.blackholeAfter, f.resetAfter, f.halfCloseAfter]) {
        if (cut !== undefined && cut > at && offset + (cut - at) < end) end = offset + (cut - at);
      }
      const piece = bytes.subarray(offset, end);
      let rest = piece;
      while (rest.length) rest = rest.subarray(await this.to.write(rest));
      this.writes++;
      this.forwarded += piece.length;
      offset = end;
      if (this.forwarded === f.resetAfter) {
        this.dropped += bytes.length - offset;
        return this.link.reset("both");
      }
      if (this.forwarded === f.blackholeAfter) this.blackhole();
      if (this.forwarded === f.halfCloseAfter) await this.halfClose();
      if (offset < bytes.length || f.trickle) {
        // Let the piece leave as a segment of its own before the next one.
        if (f.trickle) await sleep(f.trickleMs ?? 1);
        else if (f.splitAt?.includes(this.forwarded)) await sleep(f.splitPauseMs ?? 5);
      }
    }
  }
}

function closeConn(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

// ------------------------------------------------------------------ RST ---

/**
 * Aborts the connection with a RST (no FIN before it), then closes the
 * socket. Deno has no API for it, so the socket's descriptor is found
 * through /proc and libc's connect(fd, AF_UNSPEC) is called on it.
 */
function resetConn(conn: Deno.TcpConn): void {
  let fd: number | undefined;
  try {
    fd = socketFd(conn);
  } catch {
    fd = undefined; // closed already: nothing left to reset
  }
  if (fd !== undefined) {
    const libc = Deno.dlopen("libc.so.6", {
      connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    });
    try {
      // connect() to AF_UNSPEC "disconnects" a TCP socket: Linux aborts the
      // connection with a RST at once (tcp_disconnect). Closing with
      // SO_LINGER 0 would not do: Deno shuts the write side down before it
      // closes, so the peer would read a FIN first and the RST only after.
      const unspec = new Uint8Array(16); // struct sockaddr, sa_family 0 = AF_UNSPEC
      const result = libc.symbols.connect(fd, unspec, unspec.length);
      if (result !== 0) throw new Error(`connect(AF_UNSPEC) on fd ${fd} failed`);
    } finally {
      libc.close();
    }
  }
  closeConn(conn);
}

/** The file descriptor of an IPv4 TCP socket of this process, via its inode. */
function socketFd(conn: Deno.TcpConn): number {
  const local = conn.localAddr as Deno.NetAddr;
  const remote = conn.remoteAddr as Deno.NetAddr;
  const wanted = `${procAddress(local)} ${procAddress(remote)}`;
  let inode: string | undefined;
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (`${fields[1]} ${fields[2]}` === wanted) inode = fields[9];
  }
  if (!inode || inode === "0") throw new Error(`no socket ${wanted} in /proc/net/tcp`);
  const target = `socket:[${inode}]`;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === target) return Number(entry.name);
    } catch {
      // A descriptor closed while we looked.
    }
  }
  throw new Error(`no descriptor for ${target}`);
}

/** 127.0.0.1:8080 as /proc/net/tcp writes it: 0100007F:1F90 (address bytes reversed). */
function procAddress(addr: Deno.NetAddr): string {
  const ip = addr.hostname.split(".").reverse()
    .map((part) => Number(part).toString(16).padStart(2, "0")).join("");
  return `${ip}:${addr.port.toString(16).padStart(4, "0")}`.toUpperCase();
}
