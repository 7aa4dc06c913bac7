/**
 * bench/load/c_load.ts: bench/loadgen.c, the load generator in C (one thread,
 * epoll), built with `cc -O2` once per bench, and CLoadGen, which drives it
 * with the same shapes a LoadGroup offers (LoadClients), so a scenario takes
 * either. The paced and flood scenarios use it so that what they measure is
 * the server, not the Deno load workers it would share the cores with; they
 * fall back to the Deno workers, with a note, when it cannot be built.
 *
 * The generator reads one command a line on stdin and answers each with one
 * JSON line (a run answers twice: at its start, and with its result); see
 * the top of bench/loadgen.c.
 */

import { RAISE_FD_LIMIT, track } from "../common/children.ts";
import { Histogram, type HistogramData } from "../common/histogram.ts";
import {
  asObject,
  isObject,
  type JsonObject,
  numberField,
  numberFields,
  numberPairsField,
  stringField,
} from "../common/json.ts";
import { readLines } from "../common/lines.ts";
import { delay, nowMs, withTimeout } from "../common/time.ts";
import {
  type ConnectResult,
  type LoadClients,
  type LoadConnectOptions,
  LoadGroup,
  type TrafficHooks,
  type TrafficResult,
  type TrafficSpec,
} from "./group.ts";
import { buildC, type CBuild, removeC } from "../common/c_build.ts";

export type LoadGenBuild = CBuild;

/** Builds bench/loadgen.c (see common/c_build.ts). */
export function buildLoadGen(): Promise<LoadGenBuild> {
  return buildC("loadgen");
}

/** Removes what buildLoadGen() built. */
export const removeLoadGen: (build: LoadGenBuild) => Promise<void> = removeC;

/** The TrafficResult counts the generator reports under the same names. */
const RESULT_COUNTS = [
  "tEnd",
  "expected",
  "delivered",
  "gapLost",
  "tailMissing",
  "duplicates",
  "reordered",
  "garbled",
  "echoes",
  "foreign",
  "notices",
  "negativeLatencies",
  "receivers",
  "closedReceivers",
  "sent",
  "scheduled",
  "sendErrors",
  "bytesRead",
  "firstSend",
  "lastSend",
  "lastRecv",
  "maxSendLagMs",
  "loadCpuSeconds",
] as const;

const STOPPED_BY = ["done", "deadline", "stall"] as const;

function decodeHistogram(value: unknown): Histogram {
  const o = asObject(value, "hist");
  const data: HistogramData = {
    buckets: numberPairsField(o, "buckets"),
    ...numberFields(o, ["total", "max", "min", "sum"] as const),
  };
  const hist = new Histogram();
  hist.merge(data);
  return hist;
}

/** The generator's result line as a TrafficResult; `at` is the run's start (coordinator ms). */
function decodeResult(o: JsonObject, at: number): TrafficResult {
  const stoppedBy = STOPPED_BY.find((s) => s === stringField(o, "stoppedBy"));
  if (!stoppedBy) throw new Error(`loadgen: stoppedBy ${String(o.stoppedBy)}`);
  const counts = numberFields(o, RESULT_COUNTS);
  return {
    ...counts,
    t0: at,
    stoppedBy,
    // As LoadGroup merges them: no send at all is an Infinity first send.
    firstSend: counts.firstSend || Infinity,
    hist: decodeHistogram(o.hist),
    slowDroppedAtMs: [],
  };
}

/** Calls `onPoll` about every `ms` until `promise` settles; its value. */
async function pollUntil<T>(promise: Promise<T>, ms: number, onPoll?: () => void): Promise<T> {
  let settled = false;
  let wake = () => {};
  const done = promise.finally(() => {
    settled = true;
    wake();
  });
  done.catch(() => {}); // rejected: thrown below, not unhandled meanwhile
  while (!settled) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    if (!settled) onPoll?.();
  }
  return await done;
}

/** bench/loadgen.c running: the clients of one room, driven over stdin/stdout. */
export class CLoadGen implements LoadClients {
  readonly kind = "c";
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #encoder = new TextEncoder();
  /** Replies not yet taken, and callers waiting for one (in order). */
  readonly #replies: JsonObject[] = [];
  readonly #waiting: { resolve: (o: JsonObject) => void; reject: (e: Error) => void }[] = [];
  /** One command at a time: each waits for the one before. */
  #queue: Promise<unknown> = Promise.resolve();
  #exited = false;
  readonly #done: Promise<void>;

  private constructor(path: string) {
    // The fd limit raised as for the servers and the Deno workers; `exec`
    // keeps the pid the generator's own (for taskset and /proc).
    this.#child = new Deno.Command("bash", {
      args: ["-c", `${RAISE_FD_LIMIT}; exec "$@"`, "bench-loadgen", path],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    const untrack = track({ kill: () => this.#kill() });
    const lines = readLines(this.#child.stdout, (line) => this.#onLine(line));
    this.#done = Promise.all([lines, this.#child.status]).then(() => {
      this.#exited = true;
      untrack();
      for (const w of this.#waiting.splice(0)) w.reject(new Error("loadgen exited"));
    });
  }

  /** Starts the generator built at `path`, once it answers. */
  static async start(path: string): Promise<CLoadGen> {
    const gen = new CLoadGen(path);
    try {
      await gen.#call("hello");
    } catch (err) {
      await gen.close();
      throw err;
    }
    return gen;
  }

  get pids(): number[] {
    return [this.#child.pid];
  }

  #onLine(line: string): void {
    if (!line.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    if (!isObject(value)) {
      console.error(`[loadgen ${this.#child.pid}] ${line}`);
      return;
    }
    const waiter = this.#waiting.shift();
    if (waiter) waiter.resolve(value);
    else this.#replies.push(value);
  }

  /** The next reply line; an `error` reply rejects. */
  async #next(): Promise<JsonObject> {
    const queued = this.#replies.shift();
    const reply = queued ??
      (this.#exited
        ? Promise.reject(new Error("loadgen exited"))
        : new Promise<JsonObject>((resolve, reject) => this.#waiting.push({ resolve, reject })));
    const o = await reply;
    if (o.error !== undefined) throw new Error(`loadgen: ${String(o.error)}`);
    return o;
  }

  /** The next reply within `ms`; a generator that hangs longer is killed. */
  async #nextWithin(ms: number): Promise<JsonObject> {
    try {
      return await withTimeout(this.#next(), ms);
    } catch (err) {
      if (!this.#exited) this.#kill(); // its late reply would answer the wrong command
      throw err;
    }
  }

  async #write(line: string): Promise<void> {
    if (this.#exited) throw new Error("loadgen exited");
    await this.#writer.write(this.#encoder.encode(line + "\n"));
  }

  /** Runs `work` after every command before it (replies come in order). */
  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** One command, one reply within `ms`. */
  #call(command: string, ms = 10_000): Promise<JsonObject> {
    return this.#exclusive(async () => {
      await this.#write(command);
      return await this.#nextWithin(ms);
    });
  }

  /**
   * Opens `count` more clients to host:port, at most `concurrency` (8, as
   * LoadGroup: ncat's accept queue holds 10; see bench/loadgen.c) connecting
   * or waiting for their first line at once; resolves when every one is
   * ready, failed or closed, or at `timeoutMs`.
   */
  async connect(
    host: string,
    port: number,
    count: number,
    options: LoadConnectOptions = {},
  ): Promise<ConnectResult> {
    if (options.caCert !== undefined) throw new Error("bench/loadgen.c speaks plain TCP only");
    const timeoutMs = options.timeoutMs ?? 60_000;
    const args = [
      `host=${host}`,
      `port=${port}`,
      `count=${count}`,
      `timeout=${timeoutMs}`,
      `rbuf=${options.readBuffer ?? 16 * 1024}`,
      `inflight=${options.concurrency ?? 8}`,
      `ready=${options.ready ?? "line"}`,
    ];
    const o = await this.#call(`connect ${args.join(" ")}`, timeoutMs + 30_000);
    return {
      ...numberFields(o, ["requested", "ready", "failed", "open", "ms"] as const),
      firstError: stringField(o, "firstError"),
    };
  }

  /**
   * Runs one traffic pattern on the clients (the first `spec.senders` send):
   * it starts 200 ms from now, `hooks.onStart` is called at that instant and
   * `hooks.onPoll` about every 50 ms until the generator reports the run's end
   * (all delivered, its deadline, or a stall; it decides, as LoadGroup does).
   */
  traffic(spec: TrafficSpec, hooks: TrafficHooks = {}): Promise<TrafficResult> {
    return this.#exclusive(async () => {
      const at = nowMs() + 200;
      const args = [
        `at=${at.toFixed(3)}`,
        `senders=${spec.senders}`,
        `lines=${spec.lines}`,
        `bytes=${spec.bytes}`,
        `rate=${spec.rate}`,
        `batch=${spec.batch}`,
        `drain=${spec.drainMs}`,
        `max=${spec.maxMs}`,
        `stall=${spec.stallMs}`,
      ];
      await this.#write(`run ${args.join(" ")}`);
      const started = await this.#nextWithin(10_000);
      numberField(started, "expected");
      await delay(at - nowMs());
      hooks.onStart?.();
      // The generator stops by itself at maxMs; the margin only guards a hung one.
      const result = this.#nextWithin(spec.maxMs + 30_000);
      return decodeResult(await pollUntil(result, 50, hooks.onPoll), at);
    });
  }

  /** |generator clock - coordinator clock| in ms (best of 5 round trips). */
  async clockSkewMs(): Promise<number> {
    let best = { rtt: Infinity, offset: 0 };
    for (let i = 0; i < 5; i++) {
      const t1 = nowMs();
      const now = numberField(await this.#call("clock"), "now");
      const t2 = nowMs();
      if (t2 - t1 < best.rtt) best = { rtt: t2 - t1, offset: now - (t1 + t2) / 2 };
    }
    return Math.abs(best.offset);
  }

  #kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }

  /** Closes every client, then stdin (the generator exits); SIGKILL after 5 s. */
  async close(): Promise<void> {
    if (!this.#exited) await this.#call("close", 5000).catch(() => {});
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => this.#kill(), 5000);
    await this.#done;
    clearTimeout(timer);
  }
}

/** The load generator a scenario got, and a note for its record when it is not the C one. */
export interface StartedLoad {
  clients: LoadClients;
  note?: string;
}

/**
 * The C generator when it can be used, else `workers` Deno workers with a
 * note saying why: BENCH_LOADGEN=deno (to compare the two), `needsDeno` (e.g.
 * TLS, which the C generator does not speak), or a failed build or start.
 */
export async function startLoadClients(
  build: () => Promise<LoadGenBuild>,
  workers: number,
  needsDeno?: string,
): Promise<StartedLoad> {
  const deno = async (why: string): Promise<StartedLoad> => ({
    clients: await LoadGroup.start(workers),
    note: `load: Deno workers (${why})`,
  });
  if (Deno.env.get("BENCH_LOADGEN") === "deno") return await deno("BENCH_LOADGEN=deno");
  if (needsDeno) return await deno(needsDeno);
  const built = await build();
  if (!built.ok) return await deno(`no C load generator: ${built.reason}`);
  try {
    return { clients: await CLoadGen.start(built.path) };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return await deno(`the C load generator did not start: ${message}`);
  }
}
