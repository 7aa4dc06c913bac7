// states.ts: the notes' sections "三次握手，数据传输，四次挥手" and the list of TCP
// states (closed ... CLOSE_WAIT), shown as the kernel really has them.
//
//   deno run -A states.ts [--port P] [--watch] [--interval MS] [--json]
//   deno run -A states.ts --demo [--json] [--host H] [--port P]
//
// The notes describe the states; this script reads them from Linux's own
// tables, /proc/net/tcp and /proc/net/tcp6, so a learner can watch TIME_WAIT
// happen instead of memorising it. `--demo` walks the whole lifecycle on
// loopback in one process and, after every step, prints what the kernel
// reports for both ends, including the short-lived states the textbooks say
// are hard to see (SYN_SENT, FIN_WAIT_1, LAST_ACK). States the kernel passes
// through too fast (SYN_RCVD, CLOSING) are explained and marked "not
// observed": nothing here is labelled observed unless /proc showed it.
// Then it draws the exchange as a textbook's two-column timeline, client on
// the left, server on the right, each state marked "(observed)" only if /proc
// showed it in that step; `--demo --json` gives the same steps as data.
//
// Reading anything under /proc needs --allow-all (-A); --allow-read is not enough.

import {
  closeQuietly,
  Failure,
  formatAddress,
  listenTcp,
  onStopSignal,
  paint,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  runMain,
  UsageError,
  writeAll,
} from "./utils.ts";

export const USAGE = `usage: deno run -A states.ts [--port P] [--watch] [--interval MS] [--json]
       deno run -A states.ts --demo [--json] [--host H] [--port P]

Shows the kernel's TCP states (the notes' state list, CLOSED ... CLOSE_WAIT)
for every TCP socket, IPv4 and IPv6, read from /proc/net/tcp and /proc/net/tcp6.

options:
  -p, --port P      only sockets whose local or remote port is P (default: all);
                    with --demo, the port the demo listens on (default 0: any free port)
  --watch           redraw whenever a state changes, highlighting what changed,
                    until Ctrl+C
  --interval MS     how often --watch reads the kernel's table (default 500)
  --json            print one JSON array of sockets (with --demo: the steps as data)
  --demo            walk the whole TCP lifecycle on loopback and show, after each
                    step, the states the kernel reports for the client and the server;
                    then draw the exchange as a two-column timeline (colour on a terminal)
  --host H          address the demo listens on (default 127.0.0.1; ::1 for IPv6)
  -h, --help        show this help

CLOSED means the kernel has no such socket (not created yet, or gone).
Needs Linux (/proc/net/tcp) and -A: reading /proc requires --allow-all.
Exit status: 0 success (and after Ctrl+C in --watch), 1 runtime error
(e.g. not Linux), 2 bad usage.`;

// ------------------------------------------------------------ the states ---

/** The notes' names; the kernel's /proc spells some differently (FIN_WAIT1, SYN_RECV). */
export type StateName =
  | "CLOSED"
  | "LISTEN"
  | "SYN_SENT"
  | "SYN_RCVD"
  | "ESTABLISHED"
  | "FIN_WAIT_1"
  | "FIN_WAIT_2"
  | "TIME_WAIT"
  | "CLOSE_WAIT"
  | "LAST_ACK"
  | "CLOSING";

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

/** One line per state, in the notes' words (LAST_ACK and CLOSING are not in the notes). */
export const MEANINGS: Record<StateName, string> = {
  CLOSED: "表示关闭状态（初始状态）",
  LISTEN: "服务器端的某个SOCKET处于监听状态，可以接受连接",
  SYN_SENT: "客户端已发送SYN报文，等待三次握手中的第2个报文",
  SYN_RCVD: "接收到SYN报文，三次握手的中间状态，很短暂，收到ACK后进入ESTABLISHED",
  ESTABLISHED: "表示连接已经建立",
  FIN_WAIT_1: "主动关闭，已向对方发送FIN报文，等待对方的ACK（一般较难见到）",
  FIN_WAIT_2: "主动关闭方发出FIN收到ACK以后，半关闭：只能接收数据，不能发",
  TIME_WAIT: "收到了对方的FIN报文，并发送出了ACK报文，等2MSL后即可回到CLOSED",
  CLOSE_WAIT: "对方发来FIN，系统已回应ACK，等待本方close()",
  LAST_ACK: "被动关闭方close()发出FIN后，等待对方最后的ACK（笔记未列出）",
  CLOSING: "双方同时关闭：发出FIN后又收到对方的FIN，等待ACK（笔记未列出）",
};

/** The order a connection lives through them: used to sort, never to guess. */
const LIFECYCLE: StateName[] = [
  "CLOSED",
  "LISTEN",
  "SYN_SENT",
  "SYN_RCVD",
  "ESTABLISHED",
  "FIN_WAIT_1",
  "CLOSE_WAIT",
  "FIN_WAIT_2",
  "CLOSING",
  "LAST_ACK",
  "TIME_WAIT",
];

const STATE_COLOURS: Record<StateName, "gray" | "blue" | "cyan" | "green" | "magenta" | "yellow"> =
  {
    CLOSED: "gray",
    LISTEN: "blue",
    SYN_SENT: "cyan",
    SYN_RCVD: "cyan",
    ESTABLISHED: "green",
    FIN_WAIT_1: "magenta",
    FIN_WAIT_2: "magenta",
    CLOSE_WAIT: "magenta",
    LAST_ACK: "magenta",
    CLOSING: "magenta",
    TIME_WAIT: "yellow",
  };

// --------------------------------------------------------- /proc/net/tcp ---

export interface Endpoint {
  hostname: string;
  port: number;
}

export interface TcpSocket {
  local: Endpoint;
  remote: Endpoint;
  state: StateName;
  /** Bytes written but not yet acknowledged by the peer (tx_queue). */
  sendQueue: number;
  /** Bytes received but not yet read by the program (rx_queue). */
  recvQueue: number;
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
      });
    } catch {
      continue; // not an address: not a socket line
    }
  }
  return sockets;
}

const TABLES = ["/proc/net/tcp", "/proc/net/tcp6"];

/** Every TCP socket the kernel knows, IPv4 and IPv6. Linux only. */
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

function requireLinux(): void {
  if (Deno.build.os !== "linux") {
    throw new Failure(
      `the live view of TCP states reads /proc/net/tcp, which only Linux has; ` +
        `on ${Deno.build.os} try: netstat -an -p tcp`,
    );
  }
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

function findConnection(sockets: TcpSocket[], local: Endpoint, remote: Endpoint) {
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

function socketKey(s: TcpSocket): string {
  return `${formatEndpoint(s.local)} ${formatEndpoint(s.remote)}`;
}

/** `HOST:PORT`, with `*` for the port of a listener's unconnected remote end. */
function formatEndpoint(e: Endpoint): string {
  return e.port === 0 ? formatAddress(e).replace(/:0$/, ":*") : formatAddress(e);
}

// ---------------------------------------------------------------- tables ---

type Mark = "new" | "changed" | "gone";

interface Row {
  socket: TcpSocket;
  mark?: Mark;
  was?: StateName;
}

/** The socket table: LOCAL, REMOTE, STATE and the notes' meaning of the state. */
export function formatTable(rows: Row[]): string[] {
  const marks = rows.some((r) => r.mark); // a mark column only when something changed
  const cells = rows.map(({ socket, mark, was }) => {
    const colour = STATE_COLOURS[socket.state];
    const wasText = was ? ` (was ${was})` : "";
    return {
      mark: mark ? paint("bold", "* ") : "  ",
      local: formatEndpoint(socket.local),
      remote: formatEndpoint(socket.remote),
      // Widths are measured on plain text: escape codes take no room on screen.
      state: socket.state + wasText,
      painted: paint(mark ? ["inverse", colour] : colour, socket.state) + wasText,
      meaning: MEANINGS[socket.state],
    };
  });
  const width = (key: "local" | "remote" | "state", min: number) =>
    Math.max(min, ...cells.map((c) => c[key].length));
  const [local, remote, state] = [width("local", 5), width("remote", 6), width("state", 11)];
  return [
    `${marks ? "  " : ""}${"LOCAL".padEnd(local)}  ${"REMOTE".padEnd(remote)}  ` +
    `${"STATE".padEnd(state)}  MEANING`,
    ...cells.map((c) =>
      `${marks ? c.mark : ""}${c.local.padEnd(local)}  ${c.remote.padEnd(remote)}  ` +
      `${c.painted}${" ".repeat(state - c.state.length)}  ${c.meaning}`
    ),
  ];
}

function noSocketsLine(port?: number): string {
  return port === undefined ? "no TCP sockets" : `no TCP sockets with port ${port}`;
}

async function listOnce(port: number | undefined, json: boolean): Promise<void> {
  const sockets = socketsOnPort(await readTcpSockets(), port);
  if (json) {
    console.log(JSON.stringify(sockets));
  } else if (sockets.length === 0) {
    console.log(noSocketsLine(port));
  } else {
    console.log(formatTable(sockets.map((socket) => ({ socket }))).join("\n"));
  }
}

/**
 * Compares two snapshots: a socket that is new or changed state is marked,
 * one that vanished is shown once more as CLOSED (the kernel forgot it).
 */
function diffSnapshots(before: TcpSocket[], after: TcpSocket[]): Row[] {
  const old = new Map(before.map((s) => [socketKey(s), s]));
  const rows: Row[] = after.map((socket) => {
    const previous = old.get(socketKey(socket));
    old.delete(socketKey(socket));
    if (!previous) return { socket, mark: "new" };
    if (previous.state !== socket.state) return { socket, mark: "changed", was: previous.state };
    return { socket };
  });
  for (const gone of old.values()) {
    rows.push({ socket: { ...gone, state: "CLOSED" }, mark: "gone", was: gone.state });
  }
  return rows;
}

/**
 * Reads the table every `interval` ms and redraws only when a state changed,
 * so the highlight stays until the next change. On a terminal the screen is
 * redrawn in place; into a pipe each change is appended with a time stamp.
 */
async function watch(port: number | undefined, interval: number): Promise<number> {
  const stop = new AbortController();
  const removeSignals = onStopSignal(() => stop.abort());
  const tty = Deno.stdout.isTerminal();
  let previous: TcpSocket[] | undefined;
  try {
    while (!stop.signal.aborted) {
      const sockets = socketsOnPort(await readTcpSockets(), port);
      const rows = diffSnapshots(previous ?? sockets, sockets);
      if (previous === undefined || rows.some((r) => r.mark)) {
        const title =
          `${port === undefined ? "all TCP sockets" : `TCP sockets with port ${port}`}` +
          `, ${clock()}`;
        const body = rows.length ? formatTable(rows) : [noSocketsLine(port)];
        if (tty) {
          // Home the cursor and clear the screen, then draw the new table.
          console.log(`\x1b[H\x1b[2J${title} (Ctrl+C to stop; * marks what changed)`);
        } else {
          console.log(`-- ${title}`);
        }
        console.log(body.join("\n"));
      }
      previous = sockets;
      await sleep(interval, stop.signal);
    }
  } finally {
    removeSignals();
  }
  return 0;
}

/** HH:MM:SS.mmm, local time. */
function clock(): string {
  const now = new Date();
  return `${now.toTimeString().slice(0, 8)}.${String(now.getMilliseconds()).padStart(3, "0")}`;
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

// ------------------------------------------------------------------ demo ---

export type End = "client" | "server";

export interface Segment {
  from: End;
  to: End;
  segment: string;
}

/**
 * A row of a step's textbook picture: a segment on the wire, or the states
 * the ends are in once the segments above it have passed.
 */
export type PictureRow = Segment | Partial<Record<End, StateName>>;

/**
 * How a drawn state is known. "observed": /proc showed it during the step.
 * "too fast to observe": /proc did not, but showed a later state of the same
 * end that the kernel cannot reach without passing through this one.
 * "not observed": neither. "no socket": CLOSED, the kernel has no such socket.
 */
export type Seen = "observed" | "too fast to observe" | "not observed" | "no socket";

export interface DrawnState {
  state: StateName;
  seen: Seen;
}

/** One row of the drawn timeline (states.ts --demo), as data. */
export type TimelineRow =
  /** A segment on the wire, with its direction. */
  | { kind: "segment"; from: End; to: End; segment: string }
  /** The textbook's states at this point, each marked with how it is known. */
  | { kind: "states"; client?: DrawnState; server?: DrawnState }
  /** What /proc showed that the textbook picture of this step does not have. */
  | { kind: "instead"; client?: DrawnState; server?: DrawnState }
  /** TIME_WAIT's timer: the end holds the connection for 2MSL, then it is CLOSED. */
  | { kind: "timer"; ends: End[]; timer: string; then: string };

/** One step of the demo, as data (for --json, and for drawing timelines). */
export interface DemoStep {
  id: string;
  scene: string;
  title: string;
  /** The segments the step exchanges, as the textbook draws them. */
  segments: Segment[];
  /** The states the textbook predicts for each end, in order. */
  expected: Record<End, StateName[]>;
  /** The states /proc showed for each end during the step, in the order first seen. */
  observed: Record<End, StateName[]>;
  /** `HOST:PORT` of each end's socket (null when it has none). */
  addresses: Record<End, string | null>;
  note: string;
  /** The step as the drawn timeline shows it: segments and marked states, in order. */
  timeline: TimelineRow[];
}

/** What a step watches: each end's states in one snapshot of the kernel's table. */
type Probe = (sockets: TcpSocket[]) => StateName[];

const OBSERVE_MS = 1500; // long enough for any loopback transition, short for a demo
const POLL_MS = 5;
const MIB = 1024 * 1024;

function byLifecycle(states: StateName[]): StateName[] {
  return [...new Set(states)].sort((a, b) => LIFECYCLE.indexOf(a) - LIFECYCLE.indexOf(b));
}

function connectionProbe(conn: Deno.TcpConn): Probe {
  const local = conn.localAddr;
  const remote = conn.remoteAddr;
  return (sockets) => [connectionState(sockets, local, remote)];
}

function listenerProbe(listener: Deno.TcpListener): Probe {
  return (sockets) =>
    sockets.some((s) => s.state === "LISTEN" && sameEndpoint(s.local, listener.addr))
      ? ["LISTEN"]
      : ["CLOSED"];
}

/**
 * The clients of `listener` whose handshake has not finished. Their
 * connect() has not returned, so their ports are unknown: they are found
 * by where they connect to. Nothing (not CLOSED) before they exist.
 */
function waitingProbe(listener: Deno.TcpListener): Probe {
  return (sockets) =>
    byLifecycle(
      sockets.filter((s) => sameEndpoint(s.remote, listener.addr) && s.state !== "ESTABLISHED").map(
        (s) => s.state,
      ),
    );
}

const nothing: Probe = () => ["CLOSED"];

/**
 * Polls /proc until every end shows the state its step waits for (by
 * default the last one expected), or OBSERVE_MS passes. Records each state
 * seen, so a transient one caught in passing is reported too.
 */
async function observe(
  probes: Record<End, Probe>,
  until: Record<End, StateName[]>,
): Promise<{ observed: Record<End, StateName[]>; sockets: TcpSocket[] }> {
  const observed: Record<End, StateName[]> = { client: [], server: [] };
  const deadline = Date.now() + OBSERVE_MS;
  while (true) {
    const sockets = await readTcpSockets();
    let settled = true;
    for (const end of ["client", "server"] as const) {
      const now = probes[end](sockets);
      for (const state of now) if (!observed[end].includes(state)) observed[end].push(state);
      if (!now.some((s) => until[end].includes(s))) settled = false;
    }
    if (settled || Date.now() > deadline) return { observed, sockets };
    await sleep(POLL_MS);
  }
}

const C2S = (segment: string): Segment => ({ from: "client", to: "server", segment });
const S2C = (segment: string): Segment => ({ from: "server", to: "client", segment });
const HANDSHAKE: PictureRow[] = [
  C2S("SYN"),
  { client: "SYN_SENT", server: "SYN_RCVD" },
  S2C("SYN+ACK"),
  C2S("ACK"),
  { client: "ESTABLISHED", server: "ESTABLISHED" },
];
const ENDS = ["client", "server"] as const;

function isSegment(row: PictureRow): row is Segment {
  return "segment" in row;
}

/** The states a picture has each end go through, in order. */
function expectedOf(picture: PictureRow[]): Record<End, StateName[]> {
  const expected: Record<End, StateName[]> = { client: [], server: [] };
  for (const row of picture) {
    if (isSegment(row)) continue;
    for (const end of ENDS) if (row[end]) expected[end].push(row[end]);
  }
  return expected;
}

/**
 * A state a connection may skip on its way to a later one in the same
 * picture: CLOSING happens only when the two FINs cross; otherwise
 * FIN_WAIT_2 leads to TIME_WAIT. Seeing TIME_WAIT proves nothing about it.
 */
const SKIPPABLE: StateName[] = ["CLOSING"];

/**
 * The step's picture as timeline rows, each state marked with how it is
 * known from `observed` (what /proc showed in this step, and nothing else);
 * states /proc showed that the picture lacks are added as "instead" rows,
 * and an observed TIME_WAIT gets its 2MSL timer.
 */
export function timelineOf(
  picture: PictureRow[],
  observed: Record<End, StateName[]>,
): TimelineRow[] {
  const expected = expectedOf(picture);
  const seen = (end: End, state: StateName): Seen => {
    if (state === "CLOSED") return observed[end].includes("CLOSED") ? "no socket" : "not observed";
    if (observed[end].includes(state)) return "observed";
    const later = expected[end].slice(expected[end].indexOf(state) + 1);
    return !SKIPPABLE.includes(state) && later.some((s) => observed[end].includes(s))
      ? "too fast to observe"
      : "not observed";
  };
  const rows: TimelineRow[] = picture.map((row) => {
    if (isSegment(row)) return { kind: "segment", ...row };
    const drawn: TimelineRow = { kind: "states" };
    for (const end of ENDS) {
      const state = row[end];
      if (state) drawn[end] = { state, seen: seen(end, state) };
    }
    return drawn;
  });
  const extra = {
    client: observed.client.filter((s) => !expected.client.includes(s)),
    server: observed.server.filter((s) => !expected.server.includes(s)),
  };
  for (let i = 0; i < Math.max(extra.client.length, extra.server.length); i++) {
    const drawn: TimelineRow = { kind: "instead" };
    for (const end of ENDS) {
      const state = extra[end][i];
      if (state) drawn[end] = { state, seen: state === "CLOSED" ? "no socket" : "observed" };
    }
    rows.push(drawn);
  }
  const timed = ENDS.filter((end) =>
    expected[end].at(-1) === "TIME_WAIT" && observed[end].includes("TIME_WAIT")
  );
  if (timed.length) {
    rows.push({
      kind: "timer",
      ends: timed,
      timer: "2MSL timer (60 s on Linux)",
      then: "CLOSED (not waited for)",
    });
  }
  return rows;
}

interface StepSpec {
  id: string;
  scene: string;
  title: string;
  /** The textbook picture: segments and states in order (gives segments and expected). */
  picture: PictureRow[];
  probes: Record<End, Probe>;
  addresses: Record<End, string | null>;
  /** States at which polling stops, per end (default: the last expected). */
  until?: Partial<Record<End, StateName[]>>;
  /** The step's explanation, which may quote what /proc showed. */
  note: (sockets: TcpSocket[], observed: Record<End, StateName[]>) => string;
}

async function runStep(spec: StepSpec): Promise<DemoStep> {
  const expected = expectedOf(spec.picture);
  const until = {
    client: spec.until?.client ?? [expected.client.at(-1)!],
    server: spec.until?.server ?? [expected.server.at(-1)!],
  };
  const { observed, sockets } = await observe(spec.probes, until);
  return toStep(spec, observed, spec.note(sockets, observed));
}

/** The step as data: its picture unfolded into segments, expected states and timeline. */
function toStep(
  spec: Pick<StepSpec, "id" | "scene" | "title" | "picture" | "addresses">,
  observed: Record<End, StateName[]>,
  note: string,
): DemoStep {
  return {
    id: spec.id,
    scene: spec.scene,
    title: spec.title,
    segments: spec.picture.filter(isSegment),
    expected: expectedOf(spec.picture),
    observed,
    addresses: spec.addresses,
    note,
    timeline: timelineOf(spec.picture, observed),
  };
}

const SCENE_1 = "the client closes first (the notes' 四次挥手)";
const SCENE_2 =
  "the server closes first: the TIME_WAIT lands on the server's port (解决2MSL延时问题)";
const SCENE_3 = "catching the short-lived states";

function addressOf(conn: Deno.TcpConn): string {
  return formatAddress(conn.localAddr);
}

/** A readable size: 3919467 -> "3.7 MiB". */
function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

function queueOf(sockets: TcpSocket[], conn: Deno.TcpConn, which: "sendQueue" | "recvQueue") {
  const found = findConnection(sockets, conn.localAddr, conn.remoteAddr);
  return found ? mib(found[which]) : "?";
}

/**
 * Walks the lifecycle on loopback and returns each step with what /proc
 * showed. `onStep` prints a step as soon as it is done. Every socket and
 * pending connect is closed before returning; only the kernel's TIME_WAIT
 * entries stay behind (they expire after 60 s).
 */
async function runDemo(
  host: string,
  port: number,
  onStep: (step: DemoStep, index: number) => void = () => {},
): Promise<{ listening: string; port: number; steps: DemoStep[] }> {
  requireLinux();
  const open = new Set<{ close(): void }>();
  const track = <T extends { close(): void }>(resource: T): T => {
    open.add(resource);
    return resource;
  };
  // Closing is the step's action itself: the kernel's reaction is what /proc shows next.
  const release = (resource: { close(): void }) => {
    open.delete(resource);
    closeQuietly(resource);
  };
  const aborter = new AbortController();
  const steps: DemoStep[] = [];
  const explain = (done: DemoStep) => {
    steps.push(done);
    onStep(done, steps.length);
  };
  const step = async (spec: StepSpec) => explain(await runStep(spec));
  const encoder = new TextEncoder();
  const buffer = new Uint8Array(64 * 1024);

  // A wildcard listener is reached through loopback of the same family.
  const listener = track(listenTcp(host, port));
  const listening = formatAddress(listener.addr);
  const listeningPort = listener.addr.port;
  const target = listener.addr.hostname === "0.0.0.0"
    ? "127.0.0.1"
    : listener.addr.hostname === "::"
    ? "::1"
    : listener.addr.hostname;
  const connect = async (to: Deno.TcpListener) => {
    const client = track(await Deno.connect({ hostname: target, port: to.addr.port }));
    const server = track(await to.accept());
    return { client, server };
  };
  const pair = (client: Deno.TcpConn, server: Deno.TcpConn) => ({
    probes: { client: connectionProbe(client), server: connectionProbe(server) },
    addresses: { client: addressOf(client), server: addressOf(server) },
  });

  try {
    // ---- scene 1: the notes' order, the client closes first ----
    await step({
      id: "listen",
      scene: SCENE_1,
      title: "server: socket(), bind(), listen() (Deno.listen does all three)",
      picture: [{ client: "CLOSED", server: "LISTEN" }],
      probes: { client: nothing, server: listenerProbe(listener) },
      addresses: { client: null, server: formatAddress(listener.addr) },
      note: () => "No packet yet: the listening socket only waits for a SYN.",
    });

    const first = await connect(listener);
    await step({
      id: "handshake",
      scene: SCENE_1,
      title: "client: connect(); server: accept(): the three-way handshake",
      picture: HANDSHAKE,
      ...pair(first.client, first.server),
      note: () =>
        "The kernel did the handshake; accept() only took the finished connection from the " +
        "queue. SYN_SENT and SYN_RCVD lasted one loopback round trip (see scene 3).",
    });

    await writeAll(first.client, encoder.encode("hello\n"));
    const asked = await first.server.read(buffer);
    await writeAll(first.server, encoder.encode("thank you!\n"));
    const answered = await first.client.read(buffer);
    await step({
      id: "data",
      scene: SCENE_1,
      title: "data both ways: send() and recv() on each side",
      picture: [
        C2S('data "hello"'),
        S2C("ACK"),
        S2C('data "thank you!"'),
        C2S("ACK"),
        { client: "ESTABLISHED", server: "ESTABLISHED" },
      ],
      ...pair(first.client, first.server),
      note: () =>
        `The server read ${asked ?? 0} bytes, the client ${answered ?? 0}: ` +
        "every segment is acknowledged, the states do not change.",
    });

    release(first.client);
    await step({
      id: "client-close",
      scene: SCENE_1,
      title: "client: close() first (wave 1 and 2 of the four-way wave)",
      picture: [
        C2S("FIN"),
        { client: "FIN_WAIT_1", server: "CLOSE_WAIT" },
        S2C("ACK"),
        { client: "FIN_WAIT_2" },
      ],
      ...pair(first.client, first.server),
      note: () =>
        "The client program is done, but its kernel keeps the connection until the server's " +
        "FIN (with closeWrite(), a half-close, it could still receive). The server's kernel " +
        "ACKed the FIN by itself; CLOSE_WAIT lasts until the server program calls close().",
    });
    const eof = await first.server.read(buffer);

    release(first.server);
    await step({
      id: "server-close",
      scene: SCENE_1,
      title: "server: read() returns null (the FIN), then close() (wave 3 and 4)",
      picture: [
        S2C("FIN"),
        { server: "LAST_ACK" },
        C2S("ACK"),
        { client: "TIME_WAIT", server: "CLOSED" },
      ],
      ...pair(first.client, first.server),
      until: { server: ["CLOSED"] },
      note: () =>
        `The server's read() returned ${eof === null ? "null" : eof}: how a program sees a FIN ` +
        "(the notes: 接收数据的长度为0). The client, which closed first, waits 2MSL in " +
        "TIME_WAIT (60 s on Linux); LAST_ACK lasted one round trip (caught in scene 3).",
    });

    // ---- scene 2: the mirror case, the server closes first ----
    const second = await connect(listener);
    await step({
      id: "handshake-2",
      scene: SCENE_2,
      title: "a second client: connect() and accept()",
      // The handshake's passing states were drawn in step 2; only the result here.
      picture: [...HANDSHAKE.filter(isSegment), { client: "ESTABLISHED", server: "ESTABLISHED" }],
      ...pair(second.client, second.server),
      note: () => "A new connection: a new client port, the same server port.",
    });

    release(second.server);
    await step({
      id: "server-close-first",
      scene: SCENE_2,
      title: "server: close() first",
      picture: [
        S2C("FIN"),
        { client: "CLOSE_WAIT", server: "FIN_WAIT_1" },
        C2S("ACK"),
        { server: "FIN_WAIT_2" },
      ],
      ...pair(second.client, second.server),
      note: () => "Now the roles swap: the server is the one waiting for the other FIN.",
    });
    const eof2 = await second.client.read(buffer);

    release(second.client);
    await step({
      id: "client-close-last",
      scene: SCENE_2,
      title: "client: read() returns null, then close()",
      picture: [
        C2S("FIN"),
        { client: "LAST_ACK" },
        S2C("ACK"),
        { client: "CLOSED", server: "TIME_WAIT" },
      ],
      ...pair(second.client, second.server),
      until: { client: ["CLOSED"] },
      note: () =>
        `The client's read() returned ${eof2 === null ? "null" : eof2}. The TIME_WAIT now ` +
        `holds the server's own address ${formatAddress(listener.addr)} for 60 s: a server ` +
        "restarted without SO_REUSEADDR could not bind it (see reuse_server.ts --demo).",
    });

    // ---- scene 3: the states textbooks call hard to see ----
    // A backlog of 1 that is never accepted: the accept queue fills up and
    // the kernel drops further SYNs, so those clients wait in SYN_SENT.
    const full = track(listenTcp(target, 0, { tcpBacklog: 1 }));
    const attempts = Array.from(
      { length: 4 },
      () =>
        Deno.connect({ hostname: target, port: full.addr.port, signal: aborter.signal }).then(
          track,
          () => undefined, // aborted below, on purpose
        ),
    );
    await step({
      id: "syn-sent",
      scene: SCENE_3,
      title: "4 clients connect() to a listener with tcpBacklog 1 that never accept()s",
      picture: [
        C2S("SYN (dropped: the accept queue is full)"),
        { client: "SYN_SENT", server: "LISTEN" },
      ],
      probes: { client: waitingProbe(full), server: listenerProbe(full) },
      addresses: { client: null, server: formatAddress(full.addr) },
      until: { client: ["SYN_SENT"] },
      note: (sockets) => {
        const states = sockets.filter((s) => sameEndpoint(s.remote, full.addr)).map((s) => s.state);
        const count = (state: StateName) => states.filter((s) => s === state).length;
        return `Of 4 connect()s, ${count("ESTABLISHED")} finished the handshake and wait in the ` +
          `accept queue (ESTABLISHED), ${count("SYN_SENT")} sent a SYN nobody answers ` +
          "(SYN_SENT): the kernel would resend it after 1 s, 3 s, 7 s... The demo gives up.";
      },
    });
    aborter.abort();
    for (const conn of await Promise.all(attempts)) if (conn) release(conn);
    release(full);

    const third = await connect(listener);
    const unsent = await third.client.write(new Uint8Array(16 * MIB));
    release(third.client);
    await step({
      id: "fin-wait-1",
      scene: SCENE_3,
      title: "client: write 16 MiB the server never reads, then close()",
      picture: [
        C2S("data, until the server's receive buffer is full"),
        S2C("ACK, window 0"),
        { client: "FIN_WAIT_1", server: "ESTABLISHED" },
      ],
      ...pair(third.client, third.server),
      note: (sockets) =>
        `write() took ${mib(unsent)} (the rest did not fit). After close() the client's FIN ` +
        `queues behind ${queueOf(sockets, third.client, "sendQueue")} not yet acknowledged, ` +
        `while ${queueOf(sockets, third.server, "recvQueue")} sit unread at the server: the ` +
        "FIN cannot be sent, so FIN_WAIT_1 lasts (the notes: FIN_WAIT_1状态一般较难见到).",
    });

    release(third.server);
    await step({
      id: "reset",
      scene: SCENE_3,
      title: "server: close() with the data still unread",
      picture: [S2C("RST"), { client: "CLOSED", server: "CLOSED" }],
      ...pair(third.client, third.server),
      note: () =>
        "Closing a socket with unread data sends RST, not FIN: no four-way wave, both ends " +
        "are gone at once, and nobody waits in TIME_WAIT.",
    });

    const fourth = await connect(listener);
    await fourth.client.closeWrite();
    const eof4 = await fourth.server.read(buffer);
    const unread = await fourth.server.write(new Uint8Array(16 * MIB));
    release(fourth.server);
    await step({
      id: "last-ack",
      scene: SCENE_3,
      title: "client: closeWrite(); server: write 16 MiB the client never reads, then close()",
      picture: [
        C2S("FIN"),
        S2C("ACK"),
        { client: "FIN_WAIT_2" },
        S2C("data, until the client's buffer is full"),
        { server: "LAST_ACK" },
      ],
      ...pair(fourth.client, fourth.server),
      note: (sockets) =>
        `The server read ${eof4 === null ? "null (the FIN)" : eof4}, wrote ${mib(unread)} and ` +
        `closed: its FIN waits behind ${queueOf(sockets, fourth.server, "sendQueue")} the ` +
        "client has not read, so LAST_ACK lasts. The client then closes with that data " +
        "unread: RST, and both are gone.",
    });
    release(fourth.client);

    // Nothing is run or read here: a textbook step, explained, with nothing observed.
    explain(toStep(
      {
        id: "syn-rcvd",
        scene: SCENE_3,
        title: "SYN_RCVD: the server between its SYN+ACK and the client's ACK",
        picture: [
          C2S("SYN"),
          { client: "SYN_SENT", server: "SYN_RCVD" },
          S2C("SYN+ACK"),
          C2S("ACK"),
        ],
        addresses: { client: null, server: null },
      },
      { client: [], server: [] },
      "Not observed, and not staged: on loopback the client's ACK comes back within " +
        "microseconds, inside the connect() call, before /proc can be read. Catching it needs " +
        "a client that never sends that ACK (a raw socket, root) or a slow network. The " +
        "SYN_SENT trick above works only because the full queue drops the SYN unanswered.",
    ));

    const fifth = await connect(listener);
    release(fifth.client);
    release(fifth.server);
    await step({
      id: "closing",
      scene: SCENE_3,
      title: "CLOSING: both ends close() back to back, hoping the FINs cross",
      picture: [
        C2S("FIN"),
        S2C("FIN"),
        { client: "CLOSING", server: "CLOSING" },
        C2S("ACK"),
        S2C("ACK"),
        { client: "TIME_WAIT", server: "TIME_WAIT" },
      ],
      ...pair(fifth.client, fifth.server),
      until: { client: ["TIME_WAIT", "CLOSED"], server: ["TIME_WAIT", "CLOSED"] },
      note: (_, observed) =>
        observed.client.includes("CLOSING") || observed.server.includes("CLOSING")
          ? "CLOSING observed: the two FINs crossed."
          : "CLOSING not observed: it needs the two FINs to cross on the wire, but on loopback " +
            "the client's FIN reached the server inside the first close(), so the second " +
            "close() was an ordinary passive close, as the states above show.",
    });
  } finally {
    aborter.abort();
    for (const resource of open) closeQuietly(resource);
  }
  return { listening, port: listeningPort, steps };
}

/** Every state /proc showed in any step, and the expected ones it never showed. */
function summarize(steps: DemoStep[]): { observed: StateName[]; notObserved: StateName[] } {
  const all = (key: "expected" | "observed") =>
    byLifecycle(steps.flatMap((step) => [...step[key].client, ...step[key].server]));
  // CLOSED is no entry at all: /proc never "shows" it.
  const observed = all("observed").filter((s) => s !== "CLOSED");
  return {
    observed,
    notObserved: all("expected").filter((s) => s !== "CLOSED" && !observed.includes(s)),
  };
}

function printStep(step: DemoStep, index: number, previous?: DemoStep): void {
  if (step.scene !== previous?.scene) console.log(`\n== ${step.scene}`);
  console.log(`\n${String(index).padStart(2)}. ${step.title}`);
  for (const { from, segment } of step.segments) {
    const label = ` ${segment} `;
    const body = label + "-".repeat(Math.max(2, 30 - label.length));
    console.log(
      from === "client" ? `      client ---${body}> server` : `      client <--${body}- server`,
    );
  }
  const width = Math.max(
    ...(["client", "server"] as const).map((e) => (step.addresses[e] ?? "-").length),
  );
  for (const end of ["client", "server"] as const) {
    const seen = step.observed[end];
    const states = seen.length
      ? seen.map((s) => paint(STATE_COLOURS[s], s)).join(" -> ")
      : paint("yellow", "not observed");
    const differs = step.expected[end].join() !== seen.join();
    const textbook = differs ? `  (textbook: ${step.expected[end].join(" -> ")})` : "";
    console.log(`      ${end} ${(step.addresses[end] ?? "-").padEnd(width)}  ${states}${textbook}`);
  }
  for (const line of wrap(step.note, 72)) console.log(`      ${line}`);
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

// -------------------------------------------------------------- timeline ---

/** The scenes --demo draws as a timeline: one connection each, from handshake to TIME_WAIT. */
export const TIMELINE_SCENES = [SCENE_1, SCENE_2];

const GUTTER = "    "; // room for the step number
const COLUMN = 38; // the server's column starts here
const ARROW = COLUMN - 6; // an arrow fits between "  |  " and "   |"

const SEEN_COLOURS: Record<Seen, "green" | "yellow" | "gray"> = {
  observed: "green",
  "too fast to observe": "yellow",
  "not observed": "yellow",
  "no socket": "gray",
};

/** Text as it takes room on screen, and as printed (with colour). */
interface Cell {
  plain: string;
  painted: string;
}

/** `------- SYN ------->` or `<------ ACK -------`, the label centred. */
function arrow(segment: Segment): { body: string; left: number; right: number } {
  const label = ` ${segment.segment} `;
  const dashes = Math.max(4, ARROW - 1 - label.length);
  const left = Math.floor(dashes / 2);
  return { body: label, left, right: dashes - left };
}

/**
 * Draws demo steps as the two-column timeline of a textbook: the client on
 * the left, the server on the right, each segment an arrow between them and,
 * in between, the states each end is in, marked with how they are known
 * (DemoStep.timeline, which --json carries). Each step's first line starts
 * with its number in the demo. Only steps of `scenes` are drawn (default:
 * all); `colour: false` gives plain text even on a terminal.
 */
export function drawTimeline(
  steps: DemoStep[],
  options: { scenes?: string[]; colour?: boolean } = {},
): string[] {
  const style = (format: Parameters<typeof paint>[0], text: string) =>
    options.colour === false ? text : paint(format, text);
  const lines: string[] = [];
  // Whether an end has a socket at this point: its lifeline is drawn.
  const alive: Record<End, boolean> = { client: false, server: false };
  const lifeline = (end: End): Cell =>
    alive[end] ? { plain: "  |", painted: style("dim", "  |") } : { plain: "", painted: "" };
  let gutter = GUTTER;
  const push = (client: Cell, server: Cell) => {
    const gap = server.plain ? " ".repeat(Math.max(2, COLUMN - client.plain.length)) : "";
    lines.push((gutter + client.painted + gap + server.painted).trimEnd());
    gutter = GUTTER;
  };
  const stateCell = (drawn: DrawnState | undefined, end: End, prefix = ""): Cell => {
    if (!drawn) return lifeline(end);
    const mark = `(${drawn.seen})`;
    return {
      plain: `${prefix}${drawn.state} ${mark}`,
      painted: `${prefix}${style(STATE_COLOURS[drawn.state], drawn.state)} ` +
        style(SEEN_COLOURS[drawn.seen], mark),
    };
  };

  let scene: string | undefined;
  steps.forEach((step, index) => {
    if (options.scenes && !options.scenes.includes(step.scene)) return;
    if (step.scene !== scene) {
      scene = step.scene;
      alive.client = alive.server = false;
      lines.push("", `-- ${scene}`, "");
      lines.push(GUTTER + style("bold", "client".padEnd(COLUMN)) + style("bold", "server"));
    }
    gutter = `${String(index + 1).padStart(2)}  `;
    for (const row of step.timeline) {
      if (row.kind === "segment") {
        alive.client = alive.server = true;
        const { body, left, right } = arrow(row);
        const line = row.from === "client"
          ? `${"-".repeat(left)}${style("bold", body)}${"-".repeat(right)}>`
          : `<${"-".repeat(left)}${style("bold", body)}${"-".repeat(right)}`;
        push({ plain: "", painted: `${style("dim", "  |")}  ${line}   ${style("dim", "|")}` }, {
          plain: "",
          painted: "",
        });
      } else if (row.kind === "timer") {
        for (const [mark, text] of [[":", row.timer], ["v", `then ${row.then}`]]) {
          const [client, server] = ENDS.map((end): Cell =>
            row.ends.includes(end)
              ? { plain: `  ${mark}  ${text}`, painted: `${style("dim", `  ${mark}`)}  ${text}` }
              : lifeline(end)
          );
          push(client, server);
        }
        for (const end of row.ends) alive[end] = false;
      } else {
        const prefix = row.kind === "instead" ? "instead: " : "";
        push(stateCell(row.client, "client", prefix), stateCell(row.server, "server", prefix));
        for (const end of ENDS) {
          const drawn = row[end];
          if (drawn) alive[end] = drawn.state !== "CLOSED";
        }
      }
    }
  });
  return lines;
}

async function demo(host: string, port: number, json: boolean): Promise<void> {
  let previous: DemoStep | undefined;
  if (!json) {
    console.log("The TCP lifecycle on loopback, as the kernel reports it: after each step the");
    console.log("states of both ends are read from /proc/net/tcp. CLOSED = no such socket.");
  }
  const demoRun = await runDemo(host, port, (step, index) => {
    if (json) return;
    printStep(step, index, previous);
    previous = step;
  });
  const { listening, steps } = demoRun;
  const { observed, notObserved } = summarize(steps);
  if (json) {
    const timelineScenes = TIMELINE_SCENES; // the scenes the text output draws
    console.log(
      JSON.stringify({ listening, steps, observed, notObserved, timelineScenes }, null, 2),
    );
    return;
  }
  console.log("\n== The same exchange as a timeline; the number on the left is the step above");
  console.log(
    "(observed): /proc showed it during that step. (too fast to observe): /proc did not,",
  );
  console.log("but showed a later state the kernel cannot reach without it. (no socket): CLOSED,");
  console.log("the kernel has no such socket.");
  for (const line of drawTimeline(steps, { scenes: TIMELINE_SCENES })) console.log(line);
  console.log(`\nSeen in /proc: ${observed.join(", ")}`);
  if (notObserved.length) console.log(`Not observed: ${notObserved.join(", ")} (explained above)`);
  console.log("The TIME_WAIT entries expire after 60 s; watch them go with:");
  console.log(`  deno run -A states.ts --watch --port ${demoRun.port}`);
}

// ------------------------------------------------------------------ main ---

export async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    // No default here: without --port every socket is listed (the shared 8080 would filter).
    port: { type: "string", short: "p" },
    watch: { type: "boolean", default: false },
    interval: { type: "string", default: "500" },
    json: { type: "boolean", default: false },
    demo: { type: "boolean", default: false },
  }, USAGE);
  const portFlag: string | undefined = flags.port;
  const host = parseHost(flags.host);
  const interval = parseIntFlag(flags.interval, "--interval", 10);
  if (flags.demo && flags.watch) throw new UsageError("--demo and --watch cannot be combined");
  if (flags.watch && flags.json) {
    throw new UsageError("--json prints one snapshot; it cannot be combined with --watch");
  }

  if (flags.demo) {
    await demo(host, parsePort(portFlag ?? "0"), flags.json);
    return 0;
  }
  const port = portFlag === undefined ? undefined : parsePort(portFlag);
  if (port === 0) {
    throw new UsageError("--port 0 matches no socket: give a port 1-65535, or leave --port out");
  }
  if (flags.watch) return await watch(port, interval);
  await listOnce(port, flags.json);
  return 0;
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
