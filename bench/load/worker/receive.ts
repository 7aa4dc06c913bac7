/**
 * bench/load/worker/receive.ts: a worker's receiving side. Senders write
 * lines `@<sender>:<seq>:<sendTime>:<padLength>:xxxx…x$`; every receiver
 * (senders too) finds such payloads anywhere in a line (ncat prefixes
 * `<userN> ` per read chunk, chat_server `<guestN> `; notice lines are
 * ignored), checks each arrived whole (the `$` sits exactly padLength bytes
 * after the last colon), and keeps per-sender bitsets to count duplicates,
 * reordering and loss: a missing line is "lost" when a later line from the
 * same sender arrived, "missing at the deadline" when nothing after it did.
 * sendTime is in microseconds since the run's start instant, which every
 * worker is given; latency = receive time - send time, kept in a log-linear
 * histogram the coordinator merges. With clients on several ports (instances
 * of one room), latency is also kept apart for lines that stayed on one
 * instance and lines that crossed. No allocation per line or payload. */

import { nowMicros } from "../../common/time.ts";
import { closeClient, type Receiver, W } from "./state.ts";

const NEWLINE = 10;
const AT = 64; // '@'
const COLON = 58;
const DOLLAR = 36;

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

// chat_server shows a newcomer the room's recent lines between these two
// notices: payloads from earlier runs, never counted as deliveries.
const HISTORY_START = new TextEncoder().encode("* recent messages:");
const HISTORY_END = new TextEncoder().encode("* end of recent messages");
const STAR = 42;

function isLine(buf: Uint8Array, start: number, end: number, line: Uint8Array): boolean {
  if (end - start !== line.length) return false;
  for (let i = 0; i < line.length; i++) if (buf[start + i] !== line[i]) return false;
  return true;
}

function handleLine(c: Receiver, buf: Uint8Array, start: number, end: number, recv: number): void {
  if (buf[start] === STAR && isLine(buf, start, end, c.inHistory ? HISTORY_END : HISTORY_START)) {
    c.inHistory = !c.inHistory;
    return;
  }
  if (c.inHistory) return;
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

export async function readLoop(c: Receiver): Promise<void> {
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
