/**
 * The kernel's own table of TCP sockets: Linux's /proc/net/tcp and
 * /proc/net/tcp6, parsed into sockets with the notes' state names, read
 * once or polled, and searched for one connection.
 *
 * Reading anything under /proc needs --allow-all (-A); --allow-read is not
 * enough.
 *
 * @module
 */

import { Failure } from "../utils.ts";
import { formatAddress } from "./net.ts";
import type { StateName } from "./tcp_states.ts";

/** Codes from include/net/tcp_states.h, as /proc/net/tcp prints them (field `st`). */
const STATE_CODES: Record<string, StateName> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RCVD",
  "04": "FIN_WAIT_1",
  "05": "FIN_WAIT_2",
  "06": "TIME_WAIT",
  "07": "CLOSED",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
  // Linux keeps a half-open connection as a light "request socket" (NEW_SYN_RECV).
  "0C": "SYN_RCVD",
};

/** One end of a socket: an address and a port (0: a listener's unconnected remote end). */
export interface Endpoint {
  /** An IPv4 or IPv6 address, as text (IPv4-mapped IPv6 shown as IPv4). */
  hostname: string;
  /** The port number. */
  port: number;
}

/**
 * The kernel's timer for a socket (field `tr` of /proc/net/tcp): resending
 * unacknowledged data (or a SYN+ACK), keepalive, TIME_WAIT's 2MSL, or the
 * zero-window probe that asks a full receiver whether it has room again.
 */
export type TimerKind = "retransmit" | "keepalive" | "timewait" | "probe";

/** `tr` codes, from get_tcp4_sock() in net/ipv4/tcp_ipv4.c; 0 is "no timer". */
const TIMER_CODES: Record<string, TimerKind> = {
  "01": "retransmit",
  "02": "keepalive", // sk_timer: also the FIN_WAIT_2 timeout of a socket already closed
  "03": "timewait",
  "04": "probe",
};

/** The kernel prints timers in clock ticks of 1/100 s (USER_HZ), whatever its HZ. */
const TICKS_PER_SECOND = 100;

/** One line of /proc/net/tcp(6): a socket the kernel knows, and its state. */
export interface TcpSocket {
  /** This socket's own address and port. */
  local: Endpoint;
  /** The peer's (0.0.0.0:0 or :::0 for a listener). */
  remote: Endpoint;
  /** The kernel's state, by the notes' name. */
  state: StateName;
  /** Bytes written but not yet acknowledged by the peer (tx_queue). */
  sendQueue: number;
  /** Bytes received but not yet read by the program (rx_queue). */
  recvQueue: number;
  /** The timer running for this socket, if any (field `tr`). */
  timer: TimerKind | null;
  /** Seconds until it fires, to 1/100 s (field `tm->when`); null without a timer. */
  timerSeconds: number | null;
  /** Unanswered retransmissions or probes so far (field `retrnsmt`). */
  retransmits: number;
  /** The socket's inode (0: no file: TIME_WAIT, a half-open handshake, an orphan). */
  inode: number;
}

/**
 * Decodes one `HEX_ADDR:HEX_PORT` field of /proc/net/tcp(6). The kernel
 * prints the address as it sits in memory: an IPv4 address is one 32-bit
 * word, an IPv6 address four, each printed as a little-endian number on the
 * machines Deno runs on (x86_64, aarch64), so every 4-byte group is reversed.
 * The port is printed as a plain number. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, an IPv4 client of a `::` listener) is shown as IPv4.
 */
export function decodeAddress(field: string): Endpoint {
  const match = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(field);
  if (!match) throw new Error(`not a /proc/net/tcp address: '${field}'`);
  const bytes: number[] = [];
  for (let word = 0; word < match[1].length; word += 8) {
    const hex = match[1].slice(word, word + 8);
    for (let i = 6; i >= 0; i -= 2) bytes.push(parseInt(hex.slice(i, i + 2), 16));
  }
  return { hostname: formatIp(bytes), port: parseInt(match[2], 16) };
}

function formatIp(bytes: number[]): string {
  if (bytes.length === 4) return bytes.join(".");
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  if (mapped) return bytes.slice(12).join(".");
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  return formatIpv6(groups);
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of zero groups as `::`. */
function formatIpv6(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not shortened
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) [bestStart, bestLength] = [start, length];
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

/**
 * Parses the text of /proc/net/tcp or /proc/net/tcp6: the header and any
 * line that does not look like a socket are skipped.
 */
export function parseProcNetTcp(text: string): TcpSocket[] {
  const sockets: TcpSocket[] = [];
  for (const line of text.split("\n")) {
    // sl local_address rem_address st tx_queue:rx_queue ...
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5 || !/^\d+:$/.test(fields[0])) continue;
    const state = STATE_CODES[fields[3].toUpperCase()];
    const queues = /^([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8})$/.exec(fields[4]);
    if (!state || !queues) continue;
    try {
      sockets.push({
        local: decodeAddress(fields[1]),
        remote: decodeAddress(fields[2]),
        state,
        sendQueue: parseInt(queues[1], 16),
        recvQueue: parseInt(queues[2], 16),
        ...parseTimer(fields[5]),
        retransmits: parseInt(fields[6] ?? "0", 16) || 0,
        inode: Number(fields[9] ?? 0) || 0,
      });
    } catch {
      continue; // not an address: not a socket line
    }
  }
  return sockets;
}

/** Field `tr:tm->when` (`03:0000170C`: TIME_WAIT, 59.00 s left); no timer when absent. */
function parseTimer(field: string | undefined): Pick<TcpSocket, "timer" | "timerSeconds"> {
  const match = /^([0-9A-Fa-f]{2}):([0-9A-Fa-f]{8})$/.exec(field ?? "");
  const timer = match ? TIMER_CODES[match[1]] ?? null : null;
  if (!match || !timer) return { timer: null, timerSeconds: null };
  return { timer, timerSeconds: parseInt(match[2], 16) / TICKS_PER_SECOND };
}

const TABLES = ["/proc/net/tcp", "/proc/net/tcp6"];

/** Every TCP socket the kernel knows, IPv4 and IPv6. Linux only: Failure elsewhere. */
export async function readTcpSockets(): Promise<TcpSocket[]> {
  requireLinux();
  const sockets: TcpSocket[] = [];
  for (const table of TABLES) {
    let text: string;
    try {
      text = await Deno.readTextFile(table);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue; // a kernel without IPv6
      if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
        throw new Failure(`cannot read ${table}: /proc needs --allow-all, run with deno run -A`);
      }
      throw new Failure(`cannot read ${table}: ${(err as Error).message}`);
    }
    sockets.push(...parseProcNetTcp(text));
  }
  return sockets;
}

/**
 * The permissions this process lacks to read /proc: Deno opens it only with
 * all of them (-A). Empty when it may.
 */
export function missingForProc(): string[] {
  const kinds = ["read", "write", "net", "env", "run", "ffi", "sys", "import"] as const;
  return kinds.filter((name) => Deno.permissions.querySync({ name }).state !== "granted");
}

/** Throws Failure, with what to use instead, when this is not Linux (no /proc/net/tcp). */
export function requireLinux(): void {
  if (Deno.build.os !== "linux") {
    throw new Failure(
      `the live view of TCP states reads /proc/net/tcp, which only Linux has; ` +
        `on ${Deno.build.os} try: netstat -an -p tcp`,
    );
  }
}

/**
 * The kernel's table again and again: a snapshot at once, then one every
 * `everyMs`, until the caller stops asking or `signal` aborts. A transition
 * faster than `everyMs` can pass unseen: /proc has no history.
 */
export async function* pollTcpSockets(
  everyMs: number,
  signal?: AbortSignal,
): AsyncGenerator<TcpSocket[]> {
  while (!signal?.aborted) {
    yield await readTcpSockets();
    await sleep(everyMs, signal);
  }
}

/** A delay that ends early when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}

/** Sockets whose local or remote port is `port` (all when undefined), in a stable order. */
export function socketsOnPort(sockets: TcpSocket[], port?: number): TcpSocket[] {
  return sockets
    .filter((s) => port === undefined || s.local.port === port || s.remote.port === port)
    .sort((a, b) =>
      Number(b.state === "LISTEN") - Number(a.state === "LISTEN") ||
      a.local.port - b.local.port || a.remote.port - b.remote.port ||
      socketKey(a).localeCompare(socketKey(b))
    );
}

/** Same address? Deno says ::ffff:127.0.0.1 where /proc (decoded) says 127.0.0.1. */
export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  const host = (h: string) => h.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
  return a.port === b.port && host(a.hostname) === host(b.hostname);
}

/** The kernel's entry for the connection `local` <-> `remote`, if it has one. */
export function findConnection(
  sockets: TcpSocket[],
  local: Endpoint,
  remote: Endpoint,
): TcpSocket | undefined {
  return sockets.find((s) => sameEndpoint(s.local, local) && sameEndpoint(s.remote, remote));
}

/** The kernel's state of the connection `local` <-> `remote`; CLOSED when it has none. */
export function connectionState(
  sockets: TcpSocket[],
  local: Endpoint,
  remote: Endpoint,
): StateName {
  return findConnection(sockets, local, remote)?.state ?? "CLOSED";
}

/** What tells two sockets apart: both ends, as text. */
export function socketKey(socket: TcpSocket): string {
  return `${formatEndpoint(socket.local)} ${formatEndpoint(socket.remote)}`;
}

/** `HOST:PORT`, with `*` for the port of a listener's unconnected remote end. */
export function formatEndpoint(endpoint: Endpoint): string {
  const text = formatAddress(endpoint);
  return endpoint.port === 0 ? text.replace(/:0$/, ":*") : text;
}
