/**
 * The chat server's TLS listener (`--tls-cert FILE --tls-key FILE`), with
 * Nagle's algorithm off on every client socket.
 *
 * Why not `Deno.listenTls`: it leaves Nagle on, and its `TlsConn` has no
 * `setNoDelay`. Measured on loopback, a reply written in two small pieces
 * took 44 ms there (the second piece waits for the peer's delayed ACK) and
 * 0.03 ms over plain TCP with `setNoDelay(true)`. `node:tls`'s
 * `createServer({ noDelay: true })` sets TCP_NODELAY on each accepted
 * socket before the handshake, so here the TLS sockets come from it, and
 * {@link TlsClientConn} gives each the small part of `Deno.Conn` the chat
 * uses (read, write, close, remoteAddr), so its reader loop and outboxes are
 * the same code for TLS and plain TCP.
 *
 * A peer that fails the handshake (a plain-TCP client, a wrong certificate)
 * is dropped by `node:tls` and never reaches {@link TlsListener.accept}.
 *
 * @module
 */

import type { Socket } from "node:net";
import { createServer, type Server, type TLSSocket } from "node:tls";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { Failure, UsageError } from "../utils.ts";
import { formatAddress } from "./net.ts";

/** A certificate and its private key (PEM), and the files they came from (for errors). */
export interface TlsKeyPair {
  /** The certificate chain, PEM, leaf first. */
  cert: string;
  /** The private key, PEM. */
  key: string;
  /** Where the certificate was read from (`--tls-cert FILE`). */
  certFile: string;
  /** Where the key was read from (`--tls-key FILE`). */
  keyFile: string;
}

/** A client past this long without finishing its handshake is dropped. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Received bytes not yet read past which the socket stops reading (TCP then slows the sender). */
const READ_AHEAD_BYTES = 64 * 1024;
/** How long a closing connection may take to send what is left before it is cut. */
const CLOSE_GRACE_MS = 1000;

/**
 * Checks that `pair` is a PEM certificate and its matching key, so that a
 * wrong file is a one-line usage error at start-up (`node:tls` itself would
 * only fail each handshake).
 */
export function checkKeyPair(pair: TlsKeyPair): void {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pair.cert);
  } catch {
    throw new UsageError(`--tls-cert ${pair.certFile}: not a PEM certificate`);
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(pair.key));
  } catch {
    throw new UsageError(`--tls-key ${pair.keyFile}: not a PEM private key`);
  }
  if (!matches) {
    throw new UsageError(
      `--tls-key ${pair.keyFile}: not the key of the certificate in ${pair.certFile}`,
    );
  }
}

/**
 * Listens for TLS on HOST:PORT (port 0: any free one) with TCP_NODELAY on
 * every accepted socket; failures are one line, like lib/net.ts's.
 */
export async function listenTlsNoDelay(
  hostname: string,
  port: number,
  pair: TlsKeyPair,
): Promise<TlsListener> {
  checkKeyPair(pair);
  const server = createServer({
    cert: pair.cert,
    key: pair.key,
    noDelay: true,
    // At a client's EOF the chat closes the socket once its answers are
    // written (lib/outbox.ts), as over TCP; node:tls must not end it first.
    allowHalfOpen: true,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  });
  const listener = new TlsListener(server);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, hostname, 1024, () => {
        server.off("error", reject);
        // From now on an error is one accept that failed (too many open
        // files): that client is lost, the listener goes on.
        server.on("error", () => {});
        resolve();
      });
    });
  } catch (err) {
    listener.close();
    throw new Failure(`cannot listen on ${formatAddress({ hostname, port })}: ${hint(err)}`);
  }
  return listener;
}

const HINTS: Record<string, string> = {
  EADDRINUSE: "address already in use; choose another --port (0 picks a free one)",
  EACCES: "permission denied; ports below 1024 need root, choose another --port",
  EADDRNOTAVAIL: "address not available on this machine; check --host",
  ENOTFOUND: "unknown host; check --host",
};

function hint(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === "string" && code in HINTS) return HINTS[code];
  return err instanceof Error ? err.message : String(err);
}

/** Accepts TLS clients whose handshake succeeded, one at a time, like Deno.Listener.accept. */
export class TlsListener {
  #server: Server;
  #ready: TlsClientConn[] = [];
  #waiter?: (conn: TlsClientConn | undefined) => void;
  #closed = false;

  /** Wraps a `node:tls` server that has not started listening yet. */
  constructor(server: Server) {
    this.#server = server;
    // A connection that never finishes its handshake (a port scan, a silent
    // or plain-TCP client, one that closes first) is closed after
    // HANDSHAKE_TIMEOUT_MS: node:tls in Deno does not apply handshakeTimeout,
    // and every such socket would otherwise hold a descriptor for good.
    const pending = new Map<string, ReturnType<typeof setTimeout>>();
    server.on("connection", (raw: Socket) => {
      const key = `${raw.remoteAddress}:${raw.remotePort}`;
      const timer = setTimeout(() => raw.destroy(), HANDSHAKE_TIMEOUT_MS);
      pending.set(key, timer);
      const forget = () => {
        clearTimeout(timer);
        if (pending.get(key) === timer) pending.delete(key);
      };
      raw.once("close", forget);
      // EOF before the handshake: nothing more can come (allowHalfOpen keeps it open otherwise).
      raw.once("end", () => pending.has(key) && raw.destroy());
    });
    server.on("secureConnection", (socket: TLSSocket) => {
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      clearTimeout(pending.get(key));
      pending.delete(key);
      this.#arrived(new TlsClientConn(socket));
    });
    // A failed handshake: node:tls destroys that socket; the others go on.
    server.on("tlsClientError", () => {});
  }

  /** The address it listens on, with the real port. */
  get addr(): Deno.NetAddr {
    const address = this.#server.address();
    if (address === null || typeof address === "string") {
      throw new Error("the TLS listener is not listening");
    }
    return { transport: "tcp", hostname: address.address, port: address.port };
  }

  /** The next client, handshake done; undefined once the listener is closed. */
  accept(): Promise<TlsClientConn | undefined> {
    const next = this.#ready.shift();
    if (next || this.#closed) return Promise.resolve(next);
    return new Promise((resolve) => this.#waiter = resolve);
  }

  /** Stops listening; a pending accept() answers undefined. Connected clients stay. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const conn of this.#ready.splice(0)) conn.close();
    this.#take()?.(undefined);
  }

  #arrived(conn: TlsClientConn): void {
    if (this.#closed) return conn.close();
    const waiter = this.#take();
    if (waiter) waiter(conn);
    else this.#ready.push(conn);
  }

  #take(): ((conn: TlsClientConn | undefined) => void) | undefined {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    return waiter;
  }
}

/**
 * One TLS client as the chat sees a `Deno.TcpConn`: `read` answers null at
 * EOF, `write` resolves once `node:tls` has taken the bytes (so a client
 * that does not read makes its writes wait, as over TCP), `close` sends
 * what is left and then closes.
 */
export class TlsClientConn {
  /** The client's address. */
  readonly remoteAddr: Deno.NetAddr;
  #socket: TLSSocket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #closed = false;
  #error?: Error;
  #wake?: () => void;

  /** Wraps a socket whose handshake is done. */
  constructor(socket: TLSSocket) {
    this.#socket = socket;
    this.remoteAddr = {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "",
      port: socket.remotePort ?? 0,
    };
    socket.on("data", (chunk: Uint8Array) => this.#received(chunk));
    socket.on("end", () => this.#finish());
    socket.on("close", () => this.#finish());
    socket.on("error", (err: Error) => {
      this.#error = err;
      this.#notify();
    });
  }

  /** Like Deno.Conn.read: up to `buffer.length` bytes, or null at EOF. */
  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    const chunk = this.#chunks[0];
    const n = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    this.#buffered -= n;
    if (this.#socket.isPaused() && this.#buffered < READ_AHEAD_BYTES) this.#socket.resume();
    return n;
  }

  /** Like Deno.Conn.write; all of `bytes`, resolved once node:tls has taken them. */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("connection closed"));
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (err) => err ? reject(err) : resolve(bytes.length));
    });
  }

  /** Already set when the socket was accepted (see the module comment); kept for Deno.TcpConn's shape. */
  setNoDelay(noDelay = true): void {
    this.#socket.setNoDelay(noDelay);
  }

  /** TCP keep-alive, as Deno.TcpConn.setKeepAlive. */
  setKeepAlive(keepAlive = true): void {
    this.#socket.setKeepAlive(keepAlive);
  }

  /** Sends what is queued and a TLS close, then closes; cut after CLOSE_GRACE_MS. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ended = true;
    this.#notify();
    const cut = setTimeout(() => this.#socket.destroy(), CLOSE_GRACE_MS);
    Deno.unrefTimer(cut);
    this.#socket.end(() => {
      clearTimeout(cut);
      this.#socket.destroy();
    });
  }

  #received(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    if (this.#buffered >= READ_AHEAD_BYTES) this.#socket.pause();
    this.#notify();
  }

  #finish(): void {
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
