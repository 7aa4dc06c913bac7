/**
 * bench/load/group.ts: the load generator's coordinator side. A LoadGroup is a
 * set of worker processes (load/worker.ts) holding the clients of one room:
 * it spreads clients over them, starts a traffic pattern on every worker at
 * the same wall-clock instant, polls their progress, and merges their reports
 * into one TrafficResult.
 */

import { fileURLToPath } from "node:url";
import { RAISE_FD_LIMIT } from "../common/children.ts";
import { Histogram } from "../common/histogram.ts";
import { RpcChild } from "../common/rpc.ts";
import { delay, nowMs, withTimeout } from "../common/time.ts";
import {
  type ClockReply,
  type CloseReply,
  type ConnectReply,
  type ConnectRequest,
  decodeClock,
  decodeClose,
  decodeConnectReply,
  decodeDrain,
  decodeHello,
  decodeReport,
  decodeRunReply,
  decodeStats,
  type DrainReply,
  type DrainRequest,
  type HelloReply,
  type ReportCount,
  type ReportReply,
  type RunReply,
  type RunRequest,
  type StatsReply,
} from "./protocol.ts";

const WORKER_SCRIPT = fileURLToPath(new URL("./worker.ts", import.meta.url));

/** One worker process, with a typed method per request of load/protocol.ts. */
export class WorkerClient {
  readonly #rpc: RpcChild;

  /** `denoFlags`: extra flags for the worker's deno run (e.g. --cpu-prof). */
  constructor(denoFlags: string[]) {
    this.#rpc = new RpcChild("bash", [
      "-c",
      `${RAISE_FD_LIMIT}; exec "$@"`,
      "bench-load",
      Deno.execPath(),
      "run",
      "-A",
      ...denoFlags,
      WORKER_SCRIPT,
    ], { NO_COLOR: "1" });
  }

  get pid(): number {
    return this.#rpc.pid;
  }

  get exited(): boolean {
    return this.#rpc.exited;
  }

  async hello(): Promise<HelloReply> {
    return decodeHello(await this.#rpc.call("hello"));
  }

  async clock(): Promise<ClockReply> {
    return decodeClock(await this.#rpc.call("clock"));
  }

  async connect(request: ConnectRequest): Promise<ConnectReply> {
    return decodeConnectReply(await this.#rpc.call("connect", request));
  }

  async run(request: RunRequest): Promise<RunReply> {
    return decodeRunReply(await this.#rpc.call("run", request));
  }

  async stats(): Promise<StatsReply> {
    return decodeStats(await this.#rpc.call("stats"));
  }

  async report(): Promise<ReportReply> {
    return decodeReport(await this.#rpc.call("report"));
  }

  async drainSlow(request: DrainRequest): Promise<DrainReply> {
    return decodeDrain(await this.#rpc.call("drainSlow", request));
  }

  /** Closes every client of this worker (the worker stays). */
  async closeClients(): Promise<CloseReply> {
    return decodeClose(await this.#rpc.call("close"));
  }

  /** Ends the worker: stdin closed, SIGKILL after `timeoutMs`. */
  close(timeoutMs: number): Promise<void> {
    return this.#rpc.close(timeoutMs);
  }
}

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

/** Called at the run's start instant, and about every 50 ms while it runs. */
export interface TrafficHooks {
  onStart?: () => void;
  onPoll?: () => void;
}

/** How clients are opened: the options both load generators take. */
export interface LoadConnectOptions {
  /** Read buffer per client (16 KiB by default): a longer line is skipped as a notice. */
  readBuffer?: number;
  /** Clients connecting or waiting for their first line at once (8 by default). */
  concurrency?: number;
  timeoutMs?: number;
  /**
   * When a client counts as ready: once the room's first line arrived ("line",
   * the default: chat_server's welcome, ncat's announce), or once its connect
   * completed ("connected": a relay that greets nobody; CLoadGen only).
   */
  ready?: "line" | "connected";
  /** Connect over TLS, trusting this certificate (PEM); LoadGroup only. */
  caCert?: string;
}

/**
 * The clients of one room behind either load generator: a LoadGroup (Deno
 * worker processes) or a CLoadGen (bench/loadgen.c, load/c_load.ts). Both
 * send the same lines and check them the same way; traffic() may be called
 * several times on the same clients.
 */
export interface LoadClients {
  /** "deno" (LoadGroup) or "c" (CLoadGen), for the record. */
  readonly kind: "deno" | "c";
  /** The generator's processes (e.g. to pin them with taskset). */
  readonly pids: number[];
  connect(
    host: string,
    port: number,
    count: number,
    options?: LoadConnectOptions,
  ): Promise<ConnectResult>;
  traffic(spec: TrafficSpec, hooks?: TrafficHooks): Promise<TrafficResult>;
  /** Largest |generator clock - coordinator clock| in ms. */
  clockSkewMs(): Promise<number>;
  /** Closes every client and ends the generator's processes. */
  close(): Promise<void>;
}

/** A set of worker processes holding clients of one room. */
export class LoadGroup implements LoadClients {
  readonly kind = "deno";
  readonly workers: WorkerClient[];
  /** Client id -> worker index. */
  readonly owner: number[] = [];
  /** Client id -> the port it connected to. */
  readonly portOf: number[] = [];
  slowIds: number[] = [];
  fdLimits: number[] = [];

  private constructor(workers: WorkerClient[]) {
    this.workers = workers;
  }

  static async start(count: number): Promise<LoadGroup> {
    // e.g. BENCH_WORKER_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the workers
    const flags = (Deno.env.get("BENCH_WORKER_FLAGS") ?? "").split(/\s+/).filter(Boolean);
    const workers: WorkerClient[] = [];
    for (let i = 0; i < count; i++) workers.push(new WorkerClient(flags));
    const group = new LoadGroup(workers);
    try {
      const hellos = await withTimeout(Promise.all(workers.map((w) => w.hello())), 30_000);
      group.fdLimits = hellos.map((h) => h.fdLimit);
    } catch (err) {
      await group.close();
      throw err;
    }
    return group;
  }

  get clients(): number {
    return this.owner.length;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.pid);
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
    options: LoadConnectOptions & { slow?: number } = {},
  ): Promise<ConnectResult> {
    if (options.ready === "connected") {
      // The workers wait for each client's first line (load/worker/connect.ts).
      throw new Error("the Deno load workers need a room that greets each client");
    }
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
          : w.connect({
            host,
            ports: portsPerWorker[i],
            ids: perWorker[i],
            slowIds: slowPerWorker[i],
            readBuffer: options.readBuffer ?? 16 * 1024,
            concurrency,
            timeoutMs: options.timeoutMs ?? 60_000,
            caCert: options.caCert,
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
        const { now } = await w.clock();
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
  async traffic(spec: TrafficSpec, hooks: TrafficHooks = {}): Promise<TrafficResult> {
    if (spec.senders > this.clients - this.slowIds.length) {
      throw new Error(`${spec.senders} senders but only ${this.clients} clients`);
    }
    const at = nowMs() + 200; // every worker starts on the same wall-clock instant
    // Several instances: receivers tell same-instance from cross-instance lines.
    const senderPorts = new Set(this.portOf).size > 1
      ? this.portOf.slice(0, spec.senders)
      : undefined;
    const expected = await this.#startRun(spec, at, senderPorts);
    await delay(at - nowMs());
    hooks.onStart?.();
    const stoppedBy = await this.#waitForEnd(spec, at, expected, hooks);
    const tEnd = nowMs();
    const reports = await Promise.all(this.workers.map((w) => w.report()));
    return {
      t0: at,
      tEnd,
      stoppedBy,
      expected,
      ...mergeReports(reports, spec, at, senderPorts !== undefined),
    };
  }

  /** Tells every worker the run (its senders start at `at`); the deliveries expected in all. */
  async #startRun(spec: TrafficSpec, at: number, senderPorts?: number[]): Promise<number> {
    const mySenders: [number, number][][] = this.workers.map(() => []);
    for (let index = 0; index < spec.senders; index++) {
      mySenders[this.owner[index]].push([index, index]);
    }
    const starts = await Promise.all(this.workers.map((w, i) =>
      w.run({
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
    return starts.reduce((sum, s) => sum + s.expected, 0);
  }

  /**
   * Polls the workers until every expected line arrived and every sender is
   * done, the deadline passed, or nothing arrived for `stallMs`.
   */
  async #waitForEnd(
    spec: TrafficSpec,
    at: number,
    expected: number,
    hooks: TrafficHooks,
  ): Promise<TrafficResult["stoppedBy"]> {
    // Paced: the schedule's end plus the drain time; flat out: only maxMs.
    const deadline = spec.rate > 0
      ? Math.min(at + spec.maxMs, at + (spec.lines / spec.rate) * 1000 + spec.drainMs)
      : at + spec.maxMs;
    let lastUnique = -1;
    let lastProgress = nowMs();
    let lastPollStats = 0;
    while (nowMs() < deadline) {
      await delay(50);
      hooks.onPoll?.();
      if (nowMs() - lastPollStats < 100) continue;
      lastPollStats = nowMs();
      const stats = await Promise.all(this.workers.map((w) => w.stats()));
      const unique = stats.reduce((sum, s) => sum + s.unique, 0);
      if (unique >= expected && stats.every((s) => s.sendersDone)) return "done";
      if (unique !== lastUnique) {
        lastUnique = unique;
        lastProgress = nowMs();
      } else if (nowMs() - lastProgress > spec.stallMs && nowMs() > at + spec.stallMs) {
        return "stall";
      }
    }
    return "deadline";
  }

  /** Reads what the slow clients left unread: bytes, and whether EOF came (dropped). */
  async drainSlow(timeoutMs = 3000, idleMs = 500): Promise<{ bytes: number; eof: boolean }[]> {
    const results = await Promise.all(
      this.workers.map((w) => w.drainSlow({ timeoutMs, idleMs })),
    );
    return results.flatMap((r) => r.slow);
  }

  /** Closes every client and ends the workers. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map(async (w) => {
      if (!w.exited) await withTimeout(w.closeClients(), 5000).catch(() => {});
      await w.close(5000);
    }));
  }
}

/** The workers' reports as one: counts summed, times the earliest or latest, histograms merged. */
function mergeReports(
  reports: ReportReply[],
  spec: TrafficSpec,
  at: number,
  split: boolean,
): Omit<TrafficResult, "t0" | "tEnd" | "stoppedBy" | "expected"> {
  const hist = new Histogram();
  for (const r of reports) hist.merge(r.hist);
  const merged = (key: "histSame" | "histCross") => {
    if (!split) return undefined;
    const h = new Histogram();
    for (const r of reports) {
      const data = r[key];
      if (data) h.merge(data);
    }
    return h;
  };
  const sum = (key: ReportCount) => reports.reduce((total, r) => total + r[key], 0);
  const nonZero = (key: ReportCount) => reports.map((r) => r[key]).filter((v) => v > 0);
  return {
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
    slowDroppedAtMs: reports.flatMap((r) => r.slowDroppedAt).map((t) => t - at),
  };
}
