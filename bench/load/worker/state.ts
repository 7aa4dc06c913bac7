/**
 * bench/load/worker/state.ts: what a load worker holds: its clients (each a
 * receiver, the first ones senders too), the current run's configuration, and
 * the counters a run adds to; a new run starts them from zero.
 */

import { Histogram } from "../../common/histogram.ts";

export interface Receiver {
  id: number;
  /** Plain TCP, or TLS over a TCP socket whose Nagle is off (see connect.ts). */
  conn: Deno.TcpConn | Deno.TlsConn;
  buf: Uint8Array;
  /** Bytes of an unfinished line kept at the start of `buf`. */
  tail: number;
  /** Inside a line longer than `buf` (a long notice): drop until its end. */
  skipping: boolean;
  /** Inside chat_server's replay of recent lines to a newcomer: not this run's deliveries. */
  inHistory: boolean;
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

export interface Sender {
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

export interface RunConfig {
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
export function runTotals() {
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

/** This worker's clients and senders, the current run, and its counters. */
export const W = {
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

/** Closes a client (once), and wakes a connect waiting for its first line. */
export function closeClient(c: Receiver): void {
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
