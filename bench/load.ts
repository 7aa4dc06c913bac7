// bench/load.ts: a load generator for line-based chat rooms (chat_server.ts,
// `ncat -l --chat`, anything that relays each line to every other client).
//
//   deno run -A bench/load.ts --port P[,P2...] [--host 127.0.0.1] [--clients N] [--senders S]
//        [--lines M] [--bytes B] [--rate R | --flat] [--workers W] [--slow K] [--json]
//
// The N clients are spread over W worker processes (this same file run with
// `--role worker`, started through `bash -c 'ulimit -n ...; exec ...'` so
// thousands of sockets fit) so the generator is not the bottleneck; each
// worker reports its own CPU so readers can judge whether it was. The first
// S clients are senders: each sends M lines of B bytes, paced at R lines/s
// (spread evenly, drift-free) or flat out. Every line carries its sender,
// sequence number and send time:
//
//   @<sender>:<seq>:<sendTime>:<padLength>:xxxx…x$
//
// and every receiver (senders too) finds such payloads anywhere in a line
// (ncat prefixes `<userN> ` per read chunk, chat_server `<guestN> `; notice
// lines are ignored), checks it arrived whole (the `$` sits exactly
// padLength bytes after the last colon), and keeps per-sender bitsets to
// count duplicates, reordering and loss: a missing line is "lost" when a
// later line from the same sender arrived, "missing at the deadline" when
// nothing after it did. sendTime is in microseconds since the run's start
// instant, which every worker is given. Latency = receive time - send time,
// both from `performance.timeOrigin + performance.now()` (wall clock, us),
// kept in a log-linear histogram (bounded memory, merged across workers).
// The K slow clients connect last and never read.
//
// Clients can be spread over several ports (instances of one room, e.g.
// chat_server.ts --redis): client i goes to port i mod P, so the senders are
// spread too, and latency is then also kept apart for lines that stayed on
// one instance and lines that crossed to another.
//
// Workers are driven with JSON lines on stdin/stdout; a worker exits when its
// stdin closes, so a dead coordinator never leaves workers behind.

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import {
  cpuSeconds,
  delay,
  fdLimit,
  Histogram,
  type HistogramData,
  type Json,
  nowMicros,
  nowMs,
  RAISE_FD_LIMIT,
  RpcChild,
} from "./shared.ts";

const LOAD_SCRIPT = fileURLToPath(import.meta.url);

// =================================================================== worker ===

const NEWLINE = 10;
const AT = 64; // '@'
const COLON = 58;
const DOLLAR = 36;
const PAD = 120; // 'x'

interface Receiver {
  id: number;
  conn: Deno.TcpConn;
  buf: Uint8Array;
  /** Bytes of an unfinished line kept at the start of `buf`. */
  tail: number;
  /** Inside a line longer than `buf` (a long notice): drop until its end. */
  skipping: boolean;
  ready: boolean;
  closed: boolean;
  slow: boolean;
  /** Was connected when the run started, so it is expected to receive. */
  inRun: boolean;
  /** Global sender index when this client sends, else -1. */
  senderIndex: number;
  /** Per sender: lines received (unique). */
  counts: Int32Array | null;
  /** Per sender: highest sequence number received. */
  maxSeq: Int32Array | null;
  /** Per sender: a bitset of sequence numbers received (stride bytes each). */
  seen: Uint8Array | null;
  unique: number;
  onReady: (() => void) | null;
  localPort: number;
  serverPort: number;
}

interface Sender {
  client: Receiver;
  index: number;
  /** Lines due so far (sequence numbers below this may be written). */
  due: number;
  /** Lines written so far. */
  written: number;
  writing: boolean;
  phaseMs: number;
  done: boolean;
}

interface RunConfig {
  senders: number;
  lines: number;
  bytes: number;
  /** Lines per second per sender; 0 means flat out. */
  rate: number;
  /** Most lines per write. */
  batch: number;
  at: number;
  /** `at` in microseconds: send times travel relative to it (fewer digits to parse). */
  epochMicros: number;
  stride: number;
  /** Per sender: the port it is connected to (several instances), else null. */
  senderPorts: number[] | null;
}

/** What one traffic run counts; a new run starts from these again. */
function runTotals() {
  return {
    hist: new Histogram(),
    /** With several instances: deliveries that stayed on one instance / crossed over. */
    histSame: new Histogram(),
    histCross: new Histogram(),
    unique: 0,
    duplicates: 0,
    reordered: 0,
    garbled: 0,
    echoes: 0,
    foreign: 0,
    notices: 0,
    longLines: 0,
    negative: 0,
    bytes: 0,
    firstRecv: 0,
    lastRecv: 0,
    firstSend: 0,
    lastSend: 0,
    sendErrors: 0,
    maxSendLagMs: 0,
  };
}

const W = {
  clients: [] as Receiver[],
  senders: [] as Sender[],
  run: null as RunConfig | null,
  ...runTotals(),
  expected: 0,
  closed: 0,
  connectFailed: 0,
  firstError: "",
  cpuAtRun: 0,
  slowDroppedAt: new Map<number, number>(),
};

// Parsing state shared by parseNumber (avoids allocating a result object).
let parsedPos = 0;

/** Parses decimal digits at `p` up to `end`; -1 when none. Sets parsedPos. */
function parseNumber(buf: Uint8Array, p: number, end: number): number {
  let value = 0;
  const start = p;
  while (p < end) {
    const ch = buf[p];
    if (ch < 48 || ch > 57) break;
    value = value * 10 + (ch - 48);
    p++;
  }
  parsedPos = p;
  return p === start || p - start > 17 ? -1 : value;
}

/** Parses one payload starting at '@' (index `at`); returns the index after it, or -1. */
function parsePayload(c: Receiver, buf: Uint8Array, at: number, end: number, recv: number): number {
  const sender = parseNumber(buf, at + 1, end);
  if (sender < 0 || buf[parsedPos] !== COLON) return -1;
  const seq = parseNumber(buf, parsedPos + 1, end);
  if (seq < 0 || buf[parsedPos] !== COLON) return -1;
  const sent = parseNumber(buf, parsedPos + 1, end);
  if (sent < 0 || buf[parsedPos] !== COLON) return -1;
  const pad = parseNumber(buf, parsedPos + 1, end);
  if (pad < 0 || buf[parsedPos] !== COLON) return -1;
  const dollar = parsedPos + 1 + pad;
  if (dollar >= end || buf[dollar] !== DOLLAR) return -1;
  deliver(c, sender, seq, sent, recv);
  return dollar + 1;
}

function deliver(c: Receiver, sender: number, seq: number, sent: number, recv: number): void {
  const run = W.run;
  if (!run || sender >= run.senders || seq >= run.lines) {
    W.foreign++;
    return;
  }
  if (sender === c.senderIndex) {
    W.echoes++; // the room sent a sender its own line back
    return;
  }
  if (c.seen === null) {
    c.seen = new Uint8Array(run.senders * run.stride);
    c.counts = new Int32Array(run.senders);
    c.maxSeq = new Int32Array(run.senders).fill(-1);
  }
  const byte = sender * run.stride + (seq >> 3);
  const mask = 1 << (seq & 7);
  if (c.seen[byte] & mask) {
    W.duplicates++;
    return;
  }
  c.seen[byte] |= mask;
  c.counts![sender]++;
  if (seq < c.maxSeq![sender]) W.reordered++;
  else c.maxSeq![sender] = seq;
  c.unique++;
  W.unique++;
  const latency = recv - (run.epochMicros + sent);
  if (latency < 0) W.negative++;
  W.hist.record(latency < 0 ? 0 : latency);
  if (run.senderPorts) {
    const split = run.senderPorts[sender] === c.serverPort ? W.histSame : W.histCross;
    split.record(latency < 0 ? 0 : latency);
  }
  if (W.firstRecv === 0 || recv < W.firstRecv) W.firstRecv = recv;
  if (recv > W.lastRecv) W.lastRecv = recv;
}

function handleLine(c: Receiver, buf: Uint8Array, start: number, end: number, recv: number): void {
  let at = buf.indexOf(AT, start);
  if (at === -1 || at >= end) {
    W.notices++;
    return;
  }
  while (at !== -1 && at < end) {
    const next = parsePayload(c, buf, at, end, recv);
    if (next < 0) {
      W.garbled++; // a payload cut or spliced by the room
      at = buf.indexOf(AT, at + 1);
    } else {
      if (next >= end) return; // the payload ended the line (the usual case)
      at = buf.indexOf(AT, next);
    }
  }
}

/** Handles `buf[0, end)`: every complete line; keeps the unfinished one. */
function onData(c: Receiver, end: number, recv: number): void {
  const buf = c.buf;
  const view = end === buf.length ? buf : buf.subarray(0, end);
  let pos = 0;
  while (pos < end) {
    const newline = view.indexOf(NEWLINE, pos);
    if (newline === -1) break;
    if (c.skipping) c.skipping = false;
    else handleLine(c, view, pos, newline, recv);
    if (!c.ready) markReady(c);
    pos = newline + 1;
  }
  if (pos >= end || c.skipping) {
    c.tail = 0;
  } else if (pos === 0 && end === buf.length) {
    c.skipping = true; // a line longer than the buffer: a notice (e.g. a /who list)
    W.longLines++;
    c.tail = 0;
  } else {
    buf.copyWithin(0, pos, end);
    c.tail = end - pos;
  }
}

function markReady(c: Receiver): void {
  c.ready = true;
  const wake = c.onReady;
  c.onReady = null;
  wake?.();
}

async function readLoop(c: Receiver): Promise<void> {
  try {
    while (true) {
      const n = await c.conn.read(c.tail ? c.buf.subarray(c.tail) : c.buf);
      if (n === null) break;
      W.bytes += n;
      onData(c, c.tail + n, nowMicros());
    }
  } catch {
    // Reset by the server, or closed locally.
  }
  closeClient(c);
}

function closeClient(c: Receiver): void {
  if (c.closed) return;
  c.closed = true;
  W.closed++;
  try {
    c.conn.close();
  } catch {
    // Already closed.
  }
  const wake = c.onReady;
  c.onReady = null;
  wake?.();
}

async function connectClients(msg: Json): Promise<Json> {
  const ids: number[] = msg.ids;
  const slowIds = new Set<number>(msg.slowIds ?? []);
  const started = performance.now();
  const deadline = Date.now() + msg.timeoutMs;
  const failedBefore = W.connectFailed;
  let next = 0;
  let connected = 0;
  let ready = 0;
  // One port for all, or one per id (clients spread over several instances).
  const ports: number[] | undefined = msg.ports;
  const one = async (id: number, port: number) => {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: msg.host, port });
    } catch (err) {
      W.connectFailed++;
      W.firstError ||= err instanceof Error ? err.message : String(err);
      return;
    }
    connected++;
    try {
      conn.setNoDelay(true);
    } catch {
      // Reset already; the read loop notices.
    }
    const slow = slowIds.has(id);
    const c: Receiver = {
      id,
      conn,
      buf: new Uint8Array(slow ? 0 : msg.readBuffer),
      tail: 0,
      skipping: false,
      ready: slow,
      closed: false,
      slow,
      inRun: false,
      senderIndex: -1,
      counts: null,
      maxSeq: null,
      seen: null,
      unique: 0,
      onReady: null,
      localPort: conn.localAddr.port,
      serverPort: conn.remoteAddr.port,
    };
    W.clients.push(c);
    if (slow) {
      ready++;
      return;
    }
    const isReady = new Promise<void>((resolve) => (c.onReady = resolve));
    readLoop(c);
    // Wait for the first line (chat_server's welcome, ncat's announce) before
    // the next connect: the room has then accepted and registered us, and at
    // most `concurrency` handshakes wait in the server's accept queue.
    const left = deadline - Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([isReady, new Promise((r) => (timer = setTimeout(r, Math.max(0, left))))]);
    clearTimeout(timer);
    if (c.ready && !c.closed) ready++;
  };
  const lanes = Array.from({ length: Math.max(1, msg.concurrency) }, async () => {
    while (next < ids.length && Date.now() < deadline) {
      const i = next++;
      await one(ids[i], ports ? ports[i] : msg.port);
    }
  });
  await Promise.all(lanes);
  return {
    attempted: next,
    connected,
    ready,
    failed: W.connectFailed - failedBefore,
    closed: W.clients.filter((c) => c.closed).length,
    open: W.clients.filter((c) => !c.closed).length,
    ms: performance.now() - started,
    error: undefined,
    firstError: W.firstError,
  };
}

function startRun(msg: Json): Json {
  const run: RunConfig = {
    senders: msg.senders,
    lines: msg.lines,
    bytes: msg.bytes,
    rate: msg.rate,
    batch: Math.max(1, msg.batch),
    at: msg.at,
    epochMicros: Math.round(msg.at * 1000),
    stride: Math.ceil(msg.lines / 8),
    senderPorts: msg.senderPorts ?? null,
  };
  W.run = run;
  forgetLastRun();
  const byId = new Map(W.clients.map((c) => [c.id, c]));
  W.senders = [];
  for (const [id, index] of msg.mySenders as [number, number][]) {
    const client = byId.get(id);
    if (!client) continue;
    client.senderIndex = index;
    W.senders.push({
      client,
      index,
      due: 0,
      written: 0,
      writing: false,
      // Spread the senders' lines evenly over each period.
      phaseMs: run.rate > 0 ? (index / run.senders) * (1000 / run.rate) : 0,
      done: false,
    });
  }
  W.expected = 0;
  for (const c of W.clients) {
    c.inRun = !c.closed && !c.slow;
    if (c.inRun) W.expected += run.senders * run.lines - (c.senderIndex >= 0 ? run.lines : 0);
  }
  W.cpuAtRun = cpuSeconds("self");
  setTimeout(tick, Math.max(0, run.at - nowMs()));
  return { expected: W.expected, senders: W.senders.length };
}

/** A second run on the same clients counts only its own lines. */
function forgetLastRun(): void {
  for (const c of W.clients) {
    c.seen = c.counts = c.maxSeq = null;
    c.unique = 0;
  }
  Object.assign(W, runTotals());
}

/** Marks lines due (paced: by the clock; flat out: all) and starts writers. */
function tick(): void {
  const run = W.run!;
  const now = nowMs();
  let nextDue = Infinity;
  for (const s of W.senders) {
    if (s.client.closed) {
      s.done = true;
      continue;
    }
    if (run.rate <= 0) {
      s.due = run.lines;
    } else {
      const elapsed = now - run.at - s.phaseMs;
      const due = elapsed < 0 ? 0 : Math.min(run.lines, Math.floor(elapsed * run.rate / 1000) + 1);
      if (due > s.due) {
        // How late the oldest newly due line is (the generator's own lag).
        const lag = now - (run.at + s.phaseMs + s.due * 1000 / run.rate);
        if (lag > W.maxSendLagMs) W.maxSendLagMs = lag;
        s.due = due;
      }
      if (s.due < run.lines) {
        nextDue = Math.min(nextDue, run.at + s.phaseMs + s.due * 1000 / run.rate);
      }
    }
    if (!s.writing && s.written < s.due) writeLines(s);
  }
  if (nextDue !== Infinity) setTimeout(tick, Math.max(0, nextDue - nowMs()));
}

const textEncoder = new TextEncoder();

/** Encodes lines [from, to) of a sender, all stamped now. */
function buildLines(index: number, from: number, to: number, bytes: number): Uint8Array {
  const out = new Uint8Array((to - from) * bytes);
  const now = nowMicros();
  if (W.firstSend === 0) W.firstSend = now;
  W.lastSend = now;
  // Relative to the run's start; a line built a moment early is clamped to 0.
  const sent = Math.max(0, now - W.run!.epochMicros);
  const padDigits = String(bytes).length;
  for (let seq = from; seq < to; seq++) {
    const start = (seq - from) * bytes;
    const base = `@${index}:${seq}:${sent}:`;
    let pad = bytes - base.length - 2 - padDigits - 1; // "$\n", the pad length and its ':'
    if (String(pad).length !== padDigits) pad = bytes - base.length - 2 - String(pad).length - 1;
    if (pad < 0) throw new Error(`--bytes ${bytes} is too short for the payload header`);
    const { written } = textEncoder.encodeInto(`${base}${pad}:`, out.subarray(start));
    out.fill(PAD, start + written, start + written + pad);
    out[start + bytes - 2] = DOLLAR;
    out[start + bytes - 1] = NEWLINE;
  }
  return out;
}

async function writeLines(s: Sender): Promise<void> {
  const run = W.run!;
  s.writing = true;
  try {
    while (s.written < s.due && !s.client.closed) {
      const to = Math.min(s.due, s.written + run.batch);
      let bytes = buildLines(s.index, s.written, to, run.bytes);
      while (bytes.length) bytes = bytes.subarray(await s.client.conn.write(bytes));
      s.written = to;
    }
  } catch {
    W.sendErrors++;
    s.done = true;
  }
  s.writing = false;
  if (s.written >= run.lines) s.done = true;
}

function stats(): Json {
  const sent = W.senders.reduce((sum, s) => sum + s.written, 0);
  pollSlow();
  return {
    unique: W.unique,
    expected: W.expected,
    sent,
    sendersDone: W.senders.every((s) => s.done),
    lastRecv: W.lastRecv,
    closed: W.clients.filter((c) => c.inRun && c.closed).length,
  };
}

/**
 * Notes when the server dropped a slow client. The client side cannot tell:
 * the server's FIN waits behind the data the client never read, so the client
 * socket stays ESTABLISHED. The server side of the connection can: once the
 * server closed it, it is FIN_WAIT1/2, CLOSING or TIME_WAIT (or gone).
 */
function pollSlow(): void {
  const slow = W.clients.filter((c) => c.slow && !W.slowDroppedAt.has(c.id));
  if (slow.length === 0) return;
  let table = "";
  try {
    table = Deno.readTextFileSync("/proc/net/tcp") + Deno.readTextFileSync("/proc/net/tcp6");
  } catch {
    return;
  }
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");
  for (const c of slow) {
    const client = hex(c.localPort);
    const server = hex(c.serverPort);
    const row = new RegExp(`:${server} [0-9A-F]+:${client} ([0-9A-F]{2}) `).exec(table);
    if (!row || row[1] !== "01") W.slowDroppedAt.set(c.id, nowMs());
  }
}

function report(): Json {
  const run = W.run;
  let gapLost = 0;
  let tailMissing = 0;
  let closedReceivers = 0;
  let receivers = 0;
  if (run) {
    for (const c of W.clients) {
      if (!c.inRun) continue;
      receivers++;
      if (c.closed) closedReceivers++;
      for (let s = 0; s < run.senders; s++) {
        if (s === c.senderIndex) continue;
        const count = c.counts ? c.counts[s] : 0;
        const max = c.maxSeq ? c.maxSeq[s] : -1;
        gapLost += max + 1 - count;
        tailMissing += run.lines - 1 - max;
      }
    }
  }
  pollSlow();
  return {
    receivers,
    expected: W.expected,
    unique: W.unique,
    gapLost,
    tailMissing,
    duplicates: W.duplicates,
    reordered: W.reordered,
    garbled: W.garbled,
    echoes: W.echoes,
    foreign: W.foreign,
    notices: W.notices,
    longLines: W.longLines,
    negativeLatencies: W.negative,
    bytes: W.bytes,
    closedReceivers,
    firstRecv: W.firstRecv,
    lastRecv: W.lastRecv,
    firstSend: W.firstSend,
    lastSend: W.lastSend,
    sent: W.senders.reduce((sum, s) => sum + s.written, 0),
    sendErrors: W.sendErrors,
    maxSendLagMs: W.maxSendLagMs,
    cpuSeconds: cpuSeconds("self") - W.cpuAtRun,
    hist: W.hist.toJSON(),
    histSame: W.run?.senderPorts ? W.histSame.toJSON() : null,
    histCross: W.run?.senderPorts ? W.histCross.toJSON() : null,
    slowDroppedAt: [...W.slowDroppedAt.values()],
  };
}

/** Reads what the slow clients never read, until EOF or `timeoutMs`. */
async function drainSlow(msg: Json): Promise<Json> {
  const buffer = new Uint8Array(256 * 1024);
  const slow = W.clients.filter((c) => c.slow && !c.closed);
  const results = [];
  for (const c of slow) {
    let bytes = 0;
    let eof = false;
    let idle = setTimeout(() => closeClient(c), msg.timeoutMs);
    try {
      while (true) {
        const n = await c.conn.read(buffer);
        if (n === null) {
          eof = true;
          break;
        }
        bytes += n;
        clearTimeout(idle);
        idle = setTimeout(() => closeClient(c), msg.idleMs);
      }
    } catch {
      // Closed by our timeout (not dropped), or reset.
    }
    clearTimeout(idle);
    closeClient(c);
    results.push({ bytes, eof });
  }
  return { slow: results };
}

async function workerMain(): Promise<void> {
  const stdout = Deno.stdout;
  const encoder = new TextEncoder();
  const reply = async (message: Json) => {
    let bytes = encoder.encode(JSON.stringify(message) + "\n");
    while (bytes.length) bytes = bytes.subarray(await stdout.write(bytes));
  };
  let output = Promise.resolve();
  const send = (message: Json) => (output = output.then(() => reply(message)).catch(() => {}));
  const handle = async (msg: Json): Promise<Json> => {
    switch (msg.cmd) {
      case "hello":
        return { pid: Deno.pid, fdLimit: fdLimit("self") };
      case "clock":
        return { now: nowMs() };
      case "connect":
        return await connectClients(msg);
      case "run":
        return startRun(msg);
      case "stats":
        return stats();
      case "report":
        return report();
      case "drainSlow":
        return await drainSlow(msg);
      case "close":
        for (const c of W.clients) closeClient(c);
        return { closed: W.clients.length };
      default:
        throw new Error(`unknown command ${msg.cmd}`);
    }
  };
  const decoder = new TextDecoder();
  const input = new Uint8Array(64 * 1024);
  let pending = "";
  while (true) {
    const n = await Deno.stdin.read(input);
    if (n === null) break;
    pending += decoder.decode(input.subarray(0, n), { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (!line.trim()) continue;
      const msg = JSON.parse(line);
      handle(msg).then(
        (result) => send({ ...result, id: msg.id }),
        (err) => send({ id: msg.id, error: err instanceof Error ? err.message : String(err) }),
      );
    }
  }
  // The coordinator closed our stdin (or died): close everything and leave.
  for (const c of W.clients) closeClient(c);
  await output;
  Deno.exit(0);
}

// ============================================================== coordinator ===

export interface ConnectResult {
  requested: number;
  ready: number;
  failed: number;
  open: number;
  ms: number;
  firstError: string;
}

export interface TrafficSpec {
  senders: number;
  /** Lines per sender. */
  lines: number;
  /** Bytes per line, newline included (at least ~48). */
  bytes: number;
  /** Lines per second per sender; 0 = flat out. */
  rate: number;
  /** Most lines per write (flat out; a late paced sender also batches). */
  batch: number;
  /** After the last scheduled send, how long in-flight lines may take. */
  drainMs: number;
  /** Hard cap on the whole run (from start). */
  maxMs: number;
  /** Stop early when no line arrived for this long. */
  stallMs: number;
}

export interface TrafficResult {
  t0: number;
  tEnd: number;
  stoppedBy: "done" | "deadline" | "stall";
  expected: number;
  delivered: number;
  gapLost: number;
  tailMissing: number;
  duplicates: number;
  reordered: number;
  garbled: number;
  echoes: number;
  foreign: number;
  notices: number;
  negativeLatencies: number;
  receivers: number;
  closedReceivers: number;
  /** Lines written by all senders, and lines they were to write. */
  sent: number;
  scheduled: number;
  sendErrors: number;
  bytesRead: number;
  firstSend: number;
  lastSend: number;
  lastRecv: number;
  maxSendLagMs: number;
  /** CPU seconds of all workers from the run's start to the report. */
  loadCpuSeconds: number;
  hist: Histogram;
  /** Clients on several ports: latency of lines that stayed on one instance / crossed. */
  histSame?: Histogram;
  histCross?: Histogram;
  slowDroppedAtMs: number[];
}

/** A set of worker processes holding clients of one room. */
export class LoadGroup {
  readonly workers: RpcChild[];
  /** Client id -> worker index. */
  readonly owner: number[] = [];
  /** Client id -> the port it connected to. */
  readonly portOf: number[] = [];
  slowIds: number[] = [];
  fdLimits: number[] = [];

  private constructor(workers: RpcChild[]) {
    this.workers = workers;
  }

  static async start(count: number): Promise<LoadGroup> {
    // e.g. BENCH_WORKER_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the workers
    const flags = (Deno.env.get("BENCH_WORKER_FLAGS") ?? "").split(/\s+/).filter(Boolean);
    const workers: RpcChild[] = [];
    for (let i = 0; i < count; i++) {
      workers.push(
        new RpcChild("bash", [
          "-c",
          `${RAISE_FD_LIMIT}; exec "$@"`,
          "bench-load",
          Deno.execPath(),
          "run",
          "-A",
          ...flags,
          LOAD_SCRIPT,
          "--role",
          "worker",
        ], { NO_COLOR: "1" }),
      );
    }
    const group = new LoadGroup(workers);
    try {
      const hellos = await withTimeout(Promise.all(workers.map((w) => w.call("hello"))), 30_000);
      group.fdLimits = hellos.map((h: Json) => h.fdLimit);
    } catch (err) {
      await group.close();
      throw err;
    }
    return group;
  }

  get clients(): number {
    return this.owner.length;
  }

  /**
   * Opens `count` more clients (round robin over the workers), `slow` of them
   * never reading. Resolves when every one has received its first line, failed,
   * or `timeoutMs` passed. With a list of ports, client id i goes to port
   * i mod ports.length (instances of one room).
   */
  async connect(
    host: string,
    port: number | number[],
    count: number,
    options: { slow?: number; readBuffer?: number; concurrency?: number; timeoutMs?: number } = {},
  ): Promise<ConnectResult> {
    const perWorker: number[][] = this.workers.map(() => []);
    const portsPerWorker: number[][] = this.workers.map(() => []);
    const ports = typeof port === "number" ? [port] : port;
    const slowPerWorker: number[][] = this.workers.map(() => []);
    const first = this.owner.length;
    const slow = options.slow ?? 0;
    for (let i = 0; i < count; i++) {
      const id = first + i;
      const worker = id % this.workers.length;
      this.owner.push(worker);
      this.portOf.push(ports[id % ports.length]);
      perWorker[worker].push(id);
      portsPerWorker[worker].push(ports[id % ports.length]);
      if (i >= count - slow) {
        slowPerWorker[worker].push(id);
        this.slowIds.push(id);
      }
    }
    const concurrency = Math.max(1, Math.ceil((options.concurrency ?? 8) / this.workers.length));
    const started = performance.now();
    const results = await Promise.all(
      this.workers.map((w, i) =>
        perWorker[i].length === 0
          ? Promise.resolve({ ready: 0, failed: 0, open: 0, firstError: "" })
          : w.call("connect", {
            host,
            ports: portsPerWorker[i],
            ids: perWorker[i],
            slowIds: slowPerWorker[i],
            readBuffer: options.readBuffer ?? 16 * 1024,
            concurrency,
            timeoutMs: options.timeoutMs ?? 60_000,
          })
      ),
    );
    return {
      requested: count,
      ready: results.reduce((sum, r) => sum + r.ready, 0),
      failed: results.reduce((sum, r) => sum + r.failed, 0),
      open: results.reduce((sum, r) => sum + r.open, 0),
      ms: performance.now() - started,
      firstError: results.map((r) => r.firstError).find(Boolean) ?? "",
    };
  }

  /** Largest |worker clock - coordinator clock| in ms (best of 5 round trips each). */
  async clockSkewMs(): Promise<number> {
    let worst = 0;
    for (const w of this.workers) {
      let best = { rtt: Infinity, offset: 0 };
      for (let i = 0; i < 5; i++) {
        const t1 = nowMs();
        const { now } = await w.call("clock");
        const t2 = nowMs();
        if (t2 - t1 < best.rtt) best = { rtt: t2 - t1, offset: now - (t1 + t2) / 2 };
      }
      worst = Math.max(worst, Math.abs(best.offset));
    }
    return worst;
  }

  /**
   * Runs one traffic pattern: the first `spec.senders` clients send, every
   * connected (non-slow) client receives; resolves when all expected lines
   * arrived, at the deadline, or when nothing arrived for `stallMs`.
   * `onPoll` is called about every 50 ms (e.g. to sample the server's RSS).
   */
  async traffic(
    spec: TrafficSpec,
    hooks: { onStart?: () => void; onPoll?: () => void } = {},
  ): Promise<TrafficResult> {
    if (spec.senders > this.clients - this.slowIds.length) {
      throw new Error(`${spec.senders} senders but only ${this.clients} clients`);
    }
    const at = nowMs() + 200; // every worker starts on the same wall-clock instant
    const mySenders: [number, number][][] = this.workers.map(() => []);
    for (let index = 0; index < spec.senders; index++) {
      mySenders[this.owner[index]].push([index, index]);
    }
    // Several instances: receivers tell same-instance from cross-instance lines.
    const senderPorts = new Set(this.portOf).size > 1
      ? this.portOf.slice(0, spec.senders)
      : undefined;
    const starts = await Promise.all(this.workers.map((w, i) =>
      w.call("run", {
        at,
        senders: spec.senders,
        lines: spec.lines,
        bytes: spec.bytes,
        rate: spec.rate,
        batch: spec.batch,
        mySenders: mySenders[i],
        senderPorts,
      })
    ));
    const expected = starts.reduce((sum, s) => sum + s.expected, 0);
    await delay(at - nowMs());
    hooks.onStart?.();
    // Paced: the schedule's end plus the drain time; flat out: only maxMs.
    const deadline = spec.rate > 0
      ? Math.min(at + spec.maxMs, at + (spec.lines / spec.rate) * 1000 + spec.drainMs)
      : at + spec.maxMs;
    let stoppedBy: TrafficResult["stoppedBy"] = "deadline";
    let lastUnique = -1;
    let lastProgress = nowMs();
    let lastPollStats = 0;
    while (nowMs() < deadline) {
      await delay(50);
      hooks.onPoll?.();
      if (nowMs() - lastPollStats < 100) continue;
      lastPollStats = nowMs();
      const stats = await Promise.all(this.workers.map((w) => w.call("stats")));
      const unique = stats.reduce((sum, s) => sum + s.unique, 0);
      const sendersDone = stats.every((s) => s.sendersDone);
      if (unique >= expected && sendersDone) {
        stoppedBy = "done";
        break;
      }
      if (unique !== lastUnique) {
        lastUnique = unique;
        lastProgress = nowMs();
      } else if (nowMs() - lastProgress > spec.stallMs && nowMs() > at + spec.stallMs) {
        stoppedBy = "stall";
        break;
      }
    }
    const tEnd = nowMs();
    const reports = await Promise.all(this.workers.map((w) => w.call("report")));
    const hist = new Histogram();
    for (const r of reports) hist.merge(r.hist as HistogramData);
    const merged = (key: "histSame" | "histCross") => {
      if (!senderPorts) return undefined;
      const h = new Histogram();
      for (const r of reports) h.merge(r[key] as HistogramData);
      return h;
    };
    const sum = (key: string) => reports.reduce((total, r) => total + r[key], 0);
    const nonZero = (key: string) => reports.map((r) => r[key]).filter((v) => v > 0);
    return {
      t0: at,
      tEnd,
      stoppedBy,
      expected,
      delivered: sum("unique"),
      gapLost: sum("gapLost"),
      tailMissing: sum("tailMissing"),
      duplicates: sum("duplicates"),
      reordered: sum("reordered"),
      garbled: sum("garbled"),
      echoes: sum("echoes"),
      foreign: sum("foreign"),
      notices: sum("notices"),
      negativeLatencies: sum("negativeLatencies"),
      receivers: sum("receivers"),
      closedReceivers: sum("closedReceivers"),
      sent: sum("sent"),
      scheduled: spec.senders * spec.lines,
      sendErrors: sum("sendErrors"),
      bytesRead: sum("bytes"),
      firstSend: Math.min(...nonZero("firstSend"), Infinity) / 1000,
      lastSend: Math.max(0, ...nonZero("lastSend")) / 1000,
      lastRecv: Math.max(0, ...nonZero("lastRecv")) / 1000,
      maxSendLagMs: Math.max(...reports.map((r) => r.maxSendLagMs)),
      loadCpuSeconds: sum("cpuSeconds"),
      hist,
      histSame: merged("histSame"),
      histCross: merged("histCross"),
      slowDroppedAtMs: reports.flatMap((r) => r.slowDroppedAt).map((t: number) => t - at),
    };
  }

  /** Reads what the slow clients left unread: bytes, and whether EOF came (dropped). */
  async drainSlow(timeoutMs = 3000, idleMs = 500): Promise<{ bytes: number; eof: boolean }[]> {
    const results = await Promise.all(
      this.workers.map((w) => w.call("drainSlow", { timeoutMs, idleMs })),
    );
    return results.flatMap((r) => r.slow);
  }

  /** Closes every client and ends the workers. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map(async (w) => {
      if (!w.exited) await withTimeout(w.call("close"), 5000).catch(() => {});
      await w.close(5000);
    }));
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ====================================================================== CLI ===

const USAGE = `usage: deno run -A bench/load.ts --port P[,P2...] [--host 127.0.0.1]
       [--clients N] [--senders S] [--lines M] [--bytes B] [--rate R | --flat] [--batch K]
       [--workers W] [--slow K] [--drain-ms MS] [--max-ms MS] [--json]

Opens N clients to a chat room on loopback (--port P1,P2,...: spread round
robin over instances of one room); the first S send M lines of B bytes
each, at R lines/s per sender (or --flat: flat out); every client checks loss,
duplicates, order and latency. Prints a summary (or JSON with --json).`;

async function cliMain(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      role: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string" },
      clients: { type: "string", default: "100" },
      senders: { type: "string", default: "10" },
      lines: { type: "string", default: "500" },
      bytes: { type: "string", default: "64" },
      rate: { type: "string", default: "100" },
      flat: { type: "boolean", default: false },
      batch: { type: "string", default: "32" },
      workers: { type: "string", default: "2" },
      slow: { type: "string", default: "0" },
      "drain-ms": { type: "string", default: "3000" },
      "max-ms": { type: "string", default: "60000" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.role === "worker") {
    await workerMain();
    return 0;
  }
  if (values.help || !values.port) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  if (!["127.0.0.1", "localhost", "::1"].includes(values.host)) {
    console.error("error: load.ts only targets loopback (127.0.0.1, ::1)");
    return 2;
  }
  const num = (v: string) => Number(v);
  const group = await LoadGroup.start(num(values.workers));
  try {
    const clients = num(values.clients);
    const slow = num(values.slow);
    // --port 8080,8081: instances of one room, clients spread round robin.
    const ports = values.port.split(",").map(num);
    const connected = await group.connect(values.host, ports, clients + slow, { slow });
    if (connected.ready < clients + slow) {
      console.error(
        `warning: only ${connected.ready} of ${clients + slow} clients ready` +
          (connected.firstError ? ` (${connected.firstError})` : ""),
      );
    }
    const result = await group.traffic({
      senders: num(values.senders),
      lines: num(values.lines),
      bytes: num(values.bytes),
      rate: values.flat ? 0 : num(values.rate),
      batch: num(values.batch),
      drainMs: num(values["drain-ms"]),
      maxMs: num(values["max-ms"]),
      stallMs: 3000,
    });
    const seconds = (result.lastRecv - result.firstSend) / 1000;
    const summary = {
      connectMs: Math.round(connected.ms),
      ...result,
      hist: undefined,
      deliveredPerSecond: Math.round(result.delivered / seconds),
      p50Ms: result.hist.percentile(50) / 1000,
      p99Ms: result.hist.percentile(99) / 1000,
      maxMs: result.hist.max / 1000,
      loadCpuShare: result.loadCpuSeconds / ((result.tEnd - result.t0) / 1000) /
        navigator.hardwareConcurrency,
    };
    if (values.json) {
      console.log(JSON.stringify(summary, null, 2));
    } else {
      console.log(
        `connected ${connected.ready}/${clients + slow} in ${summary.connectMs} ms; ` +
          `delivered ${result.delivered}/${result.expected} (${result.stoppedBy}); ` +
          `lost ${result.gapLost}, missing at deadline ${result.tailMissing}, ` +
          `dup ${result.duplicates}, reordered ${result.reordered}, garbled ${result.garbled}`,
      );
      console.log(
        `${summary.deliveredPerSecond} deliveries/s; latency p50 ${summary.p50Ms} ms, ` +
          `p99 ${summary.p99Ms} ms, max ${summary.maxMs} ms; ` +
          `load generator CPU ${(summary.loadCpuShare * 100).toFixed(0)}% of all cores`,
      );
    }
  } finally {
    await group.close();
  }
  return 0;
}

if (import.meta.main) {
  cliMain(Deno.args).then((code) => Deno.exit(code), (err) => {
    console.error(`error: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  });
}
