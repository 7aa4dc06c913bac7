// bench/shared.ts: small pieces the benchmark coordinator (bench.ts), the load
// generator (load.ts) and its workers share: a mergeable latency histogram,
// /proc readers (CPU, RSS, fd limits), child-process spawning with a raised
// fd limit, JSON-line RPC over a child's stdio, and cleanup on Ctrl+C.

// ----------------------------------------------------------------- time ---

/** Wall-clock microseconds, high resolution, comparable across processes. */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Wall-clock milliseconds (fractional). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

// ------------------------------------------------------------ histogram ---

// Log-linear buckets over integer microseconds: exact below 128 us, then 64
// sub-buckets per power of two (at most 1.6% wide), up to 2^31 us (35 min).
// Merging is adding counts, so each worker keeps one and the coordinator
// sums them: bounded memory whatever the number of samples.
const LINEAR = 128;
const SUB = 64;
export const HISTOGRAM_BUCKETS = LINEAR + (31 - 7) * SUB;

export function bucketOf(micros: number): number {
  if (micros < LINEAR) return micros < 0 ? 0 : Math.floor(micros);
  const v = micros >= 2 ** 31 ? 2 ** 31 - 1 : Math.floor(micros);
  const e = 31 - Math.clz32(v); // floor(log2 v), >= 7
  const shift = e - 6;
  return LINEAR + (e - 7) * SUB + ((v >>> shift) - SUB);
}

/** The middle of a bucket, in microseconds. */
export function bucketValue(index: number): number {
  if (index < LINEAR) return index;
  const e = Math.floor((index - LINEAR) / SUB) + 7;
  const m = ((index - LINEAR) % SUB) + SUB;
  const shift = e - 6;
  return m * 2 ** shift + 2 ** shift / 2;
}

export class Histogram {
  counts = new Float64Array(HISTOGRAM_BUCKETS);
  total = 0;
  max = 0;
  min = Infinity;
  sum = 0;

  record(micros: number): void {
    this.counts[bucketOf(micros)]++;
    this.total++;
    this.sum += micros;
    if (micros > this.max) this.max = micros;
    if (micros < this.min) this.min = micros;
  }

  /** p in [0, 100]; microseconds (bucket middle; exact below 128 us). */
  percentile(p: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(bucketValue(i), this.max);
    }
    return this.max;
  }

  toJSON(): HistogramData {
    const buckets: [number, number][] = [];
    this.counts.forEach((count, i) => {
      if (count) buckets.push([i, count]);
    });
    return {
      buckets,
      total: this.total,
      max: this.max,
      min: this.total ? this.min : 0,
      sum: this.sum,
    };
  }

  merge(data: HistogramData): void {
    for (const [i, count] of data.buckets) this.counts[i] += count;
    this.total += data.total;
    this.sum += data.sum;
    if (data.total) {
      this.max = Math.max(this.max, data.max);
      this.min = Math.min(this.min, data.min);
    }
  }
}

export interface HistogramData {
  buckets: [number, number][];
  total: number;
  max: number;
  min: number;
  sum: number;
}

// ------------------------------------------------------------------ /proc ---

let clockTicks: number | undefined;

/** Clock ticks per second for /proc/PID/stat (`getconf CLK_TCK`, read once). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      const out = new Deno.Command("getconf", { args: ["CLK_TCK"], stderr: "null" }).outputSync();
      clockTicks = Number(new TextDecoder().decode(out.stdout).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** user + system CPU seconds of a process (all its threads); NaN if gone. */
export function cpuSeconds(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / clkTck();
  } catch {
    return NaN;
  }
}

/** Resident set size in KiB (VmRSS), NaN if the process is gone. */
export function rssKiB(pid: number | "self"): number {
  return statusField(pid, "VmRSS");
}

/** Peak resident set size in KiB (VmHWM). */
export function peakRssKiB(pid: number | "self"): number {
  return statusField(pid, "VmHWM");
}

function statusField(pid: number | "self", name: string): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Soft "Max open files" of a process. */
export function fdLimit(pid: number | "self"): number {
  try {
    const limits = Deno.readTextFileSync(`/proc/${pid}/limits`);
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    return match ? (match[1] === "unlimited" ? Infinity : Number(match[1])) : NaN;
  } catch {
    return NaN;
  }
}

export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Waits until 127.0.0.1:port (or any address) is in LISTEN, without connecting. */
export async function waitForListen(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const pattern = new RegExp(`:${hex} [0-9A-F]{8,32}:0000 0A `);
  while (Date.now() < deadline) {
    for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      const text = await Deno.readTextFile(table).catch(() => "");
      if (pattern.test(text)) return true;
    }
    await delay(10);
  }
  return false;
}

/** A port that was free a moment ago (for ncat, which cannot report port 0). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

// --------------------------------------------------------------- spawning ---

/** The fd limit the bench asks for; the hard limit is used when it is lower. */
export const WANTED_FD_LIMIT = 65536;

/**
 * `bash -c` prologue raising the open-file limit (soft and hard) before the
 * real command runs; falls back to the current hard limit when raising the
 * hard limit is not permitted (e.g. no CAP_SYS_RESOURCE in a container).
 */
export const RAISE_FD_LIMIT =
  `ulimit -n ${WANTED_FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true`;

/** Every child the bench started, so Ctrl+C and errors can end them all. */
const children = new Set<{ kill(): void }>();

export function track(child: { kill(): void }): () => void {
  children.add(child);
  return () => children.delete(child);
}

/** Ends every tracked child (SIGKILL): servers and load workers. */
export function killAllTracked(): void {
  for (const child of [...children]) {
    try {
      child.kill();
    } catch {
      // Already gone.
    }
  }
  children.clear();
}

/**
 * On Ctrl+C or SIGTERM: kill every child this process started, then exit
 * 130/143. Returns a function removing the handlers.
 */
export function cleanupOnSignal(onSignal?: () => void): () => void {
  const handlers: [Deno.Signal, () => void][] = [];
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const handler = () => {
      onSignal?.();
      killAllTracked();
      console.error(`\n${signal}: stopped; servers and load workers killed`);
      Deno.exit(signal === "SIGINT" ? 130 : 143);
    };
    Deno.addSignalListener(signal, handler);
    handlers.push([signal, handler]);
  }
  return () => {
    for (const [signal, handler] of handlers) {
      try {
        Deno.removeSignalListener(signal, handler);
      } catch {
        // Already removed.
      }
    }
  };
}

// --------------------------------------------------------- JSON-line RPC ---

/** Splits a byte stream into text lines and hands each to `onLine`. */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of stream) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) !== -1) {
        onLine(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    }
  } catch {
    // The process went away: end of stream.
  }
  if (buffer) onLine(buffer);
}

// deno-lint-ignore no-explicit-any
export type Json = any;

/**
 * A child process spoken to with one JSON object per line: requests carry an
 * `id`, and the child answers each with the same `id`.
 */
export class RpcChild {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  #nextId = 1;
  #pending = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void }>();
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #encoder = new TextEncoder();
  #untrack: () => void;
  exited = false;
  readonly done: Promise<void>;

  constructor(command: string, args: string[], env?: Record<string, string>) {
    this.child = new Deno.Command(command, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env,
    }).spawn();
    this.pid = this.child.pid;
    this.#writer = this.child.stdin.getWriter();
    this.#untrack = track({ kill: () => this.kill() });
    const lines = readLines(this.child.stdout, (line) => this.#onLine(line));
    this.done = Promise.all([lines, this.child.status]).then(() => {
      this.exited = true;
      this.#untrack();
      for (const { reject } of this.#pending.values()) {
        reject(new Error(`load worker ${this.pid} exited`));
      }
      this.#pending.clear();
    });
  }

  #onLine(line: string): void {
    if (!line.trim()) return;
    let message: Json;
    try {
      message = JSON.parse(line);
    } catch {
      console.error(`[worker ${this.pid}] ${line}`);
      return;
    }
    const waiter = this.#pending.get(message.id);
    if (!waiter) return;
    this.#pending.delete(message.id);
    if (message.error) waiter.reject(new Error(`worker ${this.pid}: ${message.error}`));
    else waiter.resolve(message);
  }

  call(cmd: string, params: Record<string, Json> = {}): Promise<Json> {
    if (this.exited) return Promise.reject(new Error(`load worker ${this.pid} exited`));
    const id = this.#nextId++;
    const promise = new Promise<Json>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    this.#writer.write(this.#encoder.encode(JSON.stringify({ id, cmd, ...params }) + "\n"))
      .catch(() => {});
    return promise;
  }

  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }

  /** Closes stdin (the worker exits on EOF); SIGKILL after `timeoutMs`. */
  async close(timeoutMs = 5000): Promise<void> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => this.kill(), timeoutMs);
    await this.done;
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------ statistics ---

export function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function minMax(values: number[]): [number, number] {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return [NaN, NaN];
  return [Math.min(...finite), Math.max(...finite)];
}
