/**
 * bench/load/protocol.ts: the JSON-line messages between the load coordinator
 * (load/group.ts) and its workers (load/worker.ts): one type per request and
 * reply, and decoders that narrow what the other process sent before it is
 * used.
 */

import { type HistogramData } from "../common/histogram.ts";
import {
  arrayField,
  asObject,
  booleanField,
  type JsonObject,
  numberArrayField,
  numberField,
  numberFields,
  numberPairsField,
  optionalNumberArrayField,
  optionalNumberField,
  stringField,
} from "../common/json.ts";

// ------------------------------------------------------------- requests ---

export interface ConnectRequest {
  host: string;
  /** One port per id (clients spread over instances of one room)... */
  ports?: number[];
  /** ...or one port for all. */
  port?: number;
  ids: number[];
  slowIds: number[];
  readBuffer: number;
  concurrency: number;
  timeoutMs: number;
  /** Set: connect over TLS, trusting this certificate (PEM); else plain TCP. */
  caCert?: string;
}

export interface RunRequest {
  /** Wall-clock ms at which every worker starts sending. */
  at: number;
  senders: number;
  lines: number;
  bytes: number;
  rate: number;
  batch: number;
  /** [client id, global sender index] of the senders this worker holds. */
  mySenders: [number, number][];
  /** Per sender: the port it is connected to (several instances only). */
  senderPorts?: number[];
}

export interface DrainRequest {
  timeoutMs: number;
  idleMs: number;
}

export type WorkerRequest =
  | { cmd: "hello" | "clock" | "stats" | "report" | "close" }
  | ({ cmd: "connect" } & ConnectRequest)
  | ({ cmd: "run" } & RunRequest)
  | ({ cmd: "drainSlow" } & DrainRequest);

/** A request line as the worker reads it: its id, and the request (or why it is not one). */
export function decodeRequest(value: unknown): { id: number; request: WorkerRequest } {
  const o = asObject(value, "request");
  const id = numberField(o, "id");
  const cmd = stringField(o, "cmd");
  switch (cmd) {
    case "hello":
    case "clock":
    case "stats":
    case "report":
    case "close":
      return { id, request: { cmd } };
    case "connect":
      return { id, request: { cmd, ...decodeConnect(o) } };
    case "run":
      return { id, request: { cmd, ...decodeRun(o) } };
    case "drainSlow":
      return { id, request: { cmd, ...numberFields(o, ["timeoutMs", "idleMs"] as const) } };
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

function decodeConnect(o: JsonObject): ConnectRequest {
  return {
    host: stringField(o, "host"),
    ports: optionalNumberArrayField(o, "ports"),
    port: optionalNumberField(o, "port"),
    ids: numberArrayField(o, "ids"),
    slowIds: optionalNumberArrayField(o, "slowIds") ?? [],
    ...numberFields(o, ["readBuffer", "concurrency", "timeoutMs"] as const),
    caCert: o.caCert === undefined ? undefined : stringField(o, "caCert"),
  };
}

function decodeRun(o: JsonObject): RunRequest {
  return {
    ...numberFields(o, ["at", "senders", "lines", "bytes", "rate", "batch"] as const),
    mySenders: numberPairsField(o, "mySenders"),
    senderPorts: optionalNumberArrayField(o, "senderPorts"),
  };
}

// -------------------------------------------------------------- replies ---

export interface HelloReply {
  pid: number;
  fdLimit: number;
}

export interface ClockReply {
  now: number;
}

const CONNECT_COUNTS = [
  "attempted",
  "connected",
  "ready",
  "failed",
  "closed",
  "open",
  "ms",
] as const;

export type ConnectReply = Record<typeof CONNECT_COUNTS[number], number> & {
  /** The first connect error this worker saw (in any connect so far), or "". */
  firstError: string;
};

export interface RunReply {
  /** Deliveries this worker's receivers are to get. */
  expected: number;
  senders: number;
}

export interface StatsReply {
  unique: number;
  expected: number;
  sent: number;
  sendersDone: boolean;
  lastRecv: number;
  closed: number;
}

/** The counts of a worker's report; the coordinator sums each over the workers. */
const REPORT_COUNTS = [
  "receivers",
  "expected",
  "unique",
  "gapLost",
  "tailMissing",
  "duplicates",
  "reordered",
  "garbled",
  "echoes",
  "foreign",
  "notices",
  "longLines",
  "negativeLatencies",
  "bytes",
  "closedReceivers",
  "firstRecv",
  "lastRecv",
  "firstSend",
  "lastSend",
  "sent",
  "sendErrors",
  "maxSendLagMs",
  "cpuSeconds",
] as const;

export type ReportCount = typeof REPORT_COUNTS[number];

export type ReportReply = Record<ReportCount, number> & {
  hist: HistogramData;
  /** Several instances only: deliveries that stayed on one instance / crossed. */
  histSame: HistogramData | null;
  histCross: HistogramData | null;
  /** Wall-clock ms at which the server was seen to drop each slow client. */
  slowDroppedAt: number[];
};

export interface SlowDrain {
  bytes: number;
  /** EOF came: the server had closed the connection. */
  eof: boolean;
}

export interface DrainReply {
  slow: SlowDrain[];
}

export interface CloseReply {
  closed: number;
}

export function decodeHello(o: JsonObject): HelloReply {
  return numberFields(o, ["pid", "fdLimit"] as const);
}

export function decodeClock(o: JsonObject): ClockReply {
  return { now: numberField(o, "now") };
}

export function decodeConnectReply(o: JsonObject): ConnectReply {
  return { ...numberFields(o, CONNECT_COUNTS), firstError: stringField(o, "firstError") };
}

export function decodeRunReply(o: JsonObject): RunReply {
  return numberFields(o, ["expected", "senders"] as const);
}

export function decodeStats(o: JsonObject): StatsReply {
  return {
    ...numberFields(o, ["unique", "expected", "sent", "lastRecv", "closed"] as const),
    sendersDone: booleanField(o, "sendersDone"),
  };
}

export function decodeReport(o: JsonObject): ReportReply {
  return {
    ...numberFields(o, REPORT_COUNTS),
    hist: decodeHistogram(o.hist, "hist"),
    histSame: o.histSame === null ? null : decodeHistogram(o.histSame, "histSame"),
    histCross: o.histCross === null ? null : decodeHistogram(o.histCross, "histCross"),
    slowDroppedAt: numberArrayField(o, "slowDroppedAt"),
  };
}

export function decodeDrain(o: JsonObject): DrainReply {
  return {
    slow: arrayField(o, "slow").map((entry) => {
      const d = asObject(entry, "slow");
      return { bytes: numberField(d, "bytes"), eof: booleanField(d, "eof") };
    }),
  };
}

export function decodeClose(o: JsonObject): CloseReply {
  return { closed: numberField(o, "closed") };
}

function decodeHistogram(value: unknown, what: string): HistogramData {
  const o = asObject(value, what);
  const buckets = numberPairsField(o, "buckets");
  return { buckets, ...numberFields(o, ["total", "max", "min", "sum"] as const) };
}
