/**
 * The notes' socket calls, with what the notes leave out: a listen or
 * connect that fails says why in one line (port in use, refused, unknown
 * host); accept() survives a client that resets before it is accepted; a
 * write finishes (Python's sendall(), since send() and Deno's conn.write()
 * may send only part); a close tolerates a socket already closed.
 *
 * @module
 */

import { Failure } from "../utils.ts";

/** `HOST:PORT`, with IPv6 hosts in brackets: `[::1]:8080`. */
export function formatAddress(addr: { hostname: string; port: number }): string {
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return `${host}:${addr.port}`;
}

/** The readiness line tests and users wait for: `listening on HOST:PORT`, the real port. */
export function announceListening(listener: { readonly addr: Deno.NetAddr }): void {
  console.log(`listening on ${formatAddress(listener.addr)}`);
}

/**
 * Runs a socket call that can fail for reasons users can fix (Deno.listen,
 * Deno.connect), so the script shows the call itself: a failure becomes one
 * line, `cannot WHAT: address already in use; choose another --port ...`.
 */
export function withHints<T>(what: string, call: () => T): T {
  try {
    const result = call();
    if (!(result instanceof Promise)) return result;
    return result.catch((err) => {
      throw explainNetError(err, `cannot ${what}`);
    }) as T;
  } catch (err) {
    throw explainNetError(err, `cannot ${what}`);
  }
}

/** Deno.listen on HOST:PORT, its failures explained (see withHints). */
export function listenTcp(
  hostname: string,
  port: number,
  extra: { tcpBacklog?: number } = {},
): Deno.TcpListener {
  const where = formatAddress({ hostname, port });
  return withHints(`listen on ${where}`, () => Deno.listen({ hostname, port, ...extra }));
}

/** Deno.connect to HOST:PORT, its failures explained (see withHints). */
export function connectTcp(hostname: string, port: number): Promise<Deno.TcpConn> {
  const where = formatAddress({ hostname, port });
  return withHints(`connect to ${where}`, () => Deno.connect({ hostname, port }));
}

const { errors } = Deno;
const HINTS: [new (...args: never[]) => Error, string][] = [
  [errors.AddrInUse, "address already in use; choose another --port (0 picks a free one)"],
  [errors.ConnectionRefused, "connection refused; is the server running?"],
  [
    errors.PermissionDenied,
    "permission denied; ports below 1024 need root, choose another --port",
  ],
  [errors.AddrNotAvailable, "address not available on this machine; check --host"],
  [errors.TimedOut, "timed out; is the host reachable?"],
];

function explainNetError(err: unknown, what: string): Failure {
  const hint = HINTS.find(([kind]) => err instanceof kind)?.[1] ??
    (/lookup|resolve|dns|name or service/i.test(String(err))
      ? "unknown host; check --host"
      : err instanceof Error
      ? `${lowerFirst(err.message.replace(/ \(os error \d+\)$/, ""))}; check --host and --port`
      : String(err));
  return new Failure(`${what}: ${hint}`);
}

/**
 * accept() that survives a client resetting before the handshake completes
 * (Deno reports that as an error from accept: retry at once); undefined
 * once the listener is closed (by a shutdown).
 */
export async function acceptClient(listener: Deno.TcpListener): Promise<Deno.TcpConn | undefined> {
  while (true) {
    try {
      return await listener.accept();
    } catch (err) {
      if (err instanceof errors.BadResource) return undefined;
      const reset = err instanceof errors.NotConnected ||
        err instanceof errors.ConnectionAborted || err instanceof errors.ConnectionReset;
      if (!reset) throw err;
    }
  }
}

/** Closes a connection or listener that may already be closed. */
export function closeQuietly(resource: { close(): void } | undefined): void {
  try {
    resource?.close();
  } catch {
    // Already closed (BadResource): nothing left to release.
  }
}

/**
 * Writes all of `bytes`: like send(), conn.write() may write only part (the
 * note's sendall() loops). Returns how many write() calls it took.
 */
export async function writeAll(
  writer: { write(bytes: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<number> {
  let calls = 0;
  for (let offset = 0; offset < bytes.length; calls++) {
    offset += await writer.write(bytes.subarray(offset));
  }
  return calls;
}

const lowerFirst = (text: string) => text.charAt(0).toLowerCase() + text.slice(1);
