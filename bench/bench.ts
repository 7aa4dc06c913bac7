// bench/bench.ts: `deno task bench`, chat_server.ts measured side by side
// with `ncat -l --chat -m 20000` in the same run (issue 5).
//
//   deno task bench [--quick] [--scenario NAME]... [--runs N] [--server chat|ncat|both]
//                   [--json FILE] [--workers W] [--chat-script FILE] [--deno-flag FLAG]...
//
// Scenarios (`--scenario` takes a name or a unique prefix; repeatable):
//   startup      spawn to readiness line of `deno run -A chat_server.ts --port 0` (chat only)
//   paced-1000   1,000 clients, 10 senders x 50 lines/s for 5 s (500k deliveries/s offered)
//   paced-100    100 clients, 10 senders x 100 lines/s for 5 s: latency at light load;
//                then again with the server and the load pinned to separate cores,
//                and through bench/floor_relay.c (a C relay, the floor; needs cc)
//   flood-5000   5,000 clients, 10 senders x 200 lines flat out: deliveries/s
//   idle         idle clients in steps to 10,000: clients held, server RSS per client
//                just after connecting, and at 10,000 after 40 s held idle
//   slow-reader  1 sender pushes 20 MB to 10 readers, without and with a client that never reads
//   cluster      600 clients over 1, 2, 3 chat_server.ts --redis instances sharing one
//                redis-server: paced, then flat out (chat only; skipped without redis-server)
//
// Each scenario runs both servers alternately (chat, ncat, ncat, chat, ...),
// `--runs` times (default 3), and prints the median, min-max, the ratio
// chat_server / ncat, and whether chat_server meets the issue's target.
// Every run is bounded in time; a server that cannot hold a scenario's
// clients is not re-run for that scenario. Progress goes to stderr, tables to
// stdout. Loopback only. The load generator (bench/load.ts) runs in worker
// processes and its CPU share is reported: on a 2-core machine it competes
// with the server, so read the figures with that share in mind.

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { LoadGroup, type TrafficResult, type TrafficSpec, withTimeout } from "./load.ts";
import {
  buildFloorRelay,
  ensureNcat,
  probeRedis,
  ROOT,
  type RunningServer,
  SERVER_LABEL,
  type ServerKind,
  startChat,
  startFloorRelay,
  startRedis,
  startServer,
} from "./servers.ts";
import {
  cleanupOnSignal,
  cpuSeconds,
  delay,
  fdLimit,
  type Json,
  killAllTracked,
  median,
  minMax,
  nowMs,
  readLines,
  rssKiB,
} from "./shared.ts";

const USAGE = `usage: deno task bench [options]   (or: deno run -A bench/bench.ts [options])

  --quick              1 run each, smaller sizes (about 5 minutes)
  --scenario NAME      run only this scenario (repeatable; a unique prefix is enough):
                       startup, paced-1000, paced-100, flood-5000, idle, slow-reader,
                       cluster (skipped when redis-server is missing)
  --runs N             runs per server per scenario (default 3; --quick: 1)
  --server WHICH       chat, ncat or both (default both)
  --json FILE          also write every raw figure as JSON to FILE
  --workers W          load generator worker processes (default: 1 for paced-100,
                       2 for the others; on 2 cores more workers only add contention)
  --chat-script FILE   the chat server to measure (default chat_server.ts)
  --deno-flag FLAG     extra flag for the chat server's deno run (repeatable), e.g. --cpu-prof
  -h, --help           this help`;

const CPUS = navigator.hardwareConcurrency;
const MB = 1024 * 1024;
/** Slow reader: RSS within this of where it was before the push has "returned". */
const RSS_RETURNED_KIB = 5 * 1024;
/** Slow reader: how long to wait for it. */
const RSS_RETURN_WAIT_MS = 60_000;
/** Slow reader: pushes a fresh server relays before the measured one; see slowScenario. */
const WARM_UP_PUSHES = 2;
/** Idle: how long the empty and the full server are held before their RSS is taken. */
const IDLE_HOLD_MS = 40_000;

// ------------------------------------------------------------- options ---

interface Options {
  quick: boolean;
  runs: number;
  servers: ServerKind[];
  scenarios: string[];
  json?: string;
  /** Load generator workers; undefined: each scenario's default (1 or 2). */
  workers?: number;
  chatScript: string;
  denoFlags: string[];
}

const SCENARIO_NAMES = [
  "startup",
  "paced-1000",
  "paced-100",
  "flood-5000",
  "idle",
  "slow-reader",
  "cluster",
];

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      scenario: { type: "string", multiple: true },
      runs: { type: "string" },
      server: { type: "string", default: "both" },
      json: { type: "string" },
      workers: { type: "string" },
      "chat-script": { type: "string", default: "chat_server.ts" },
      "deno-flag": { type: "string", multiple: true },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return undefined;
  }
  const scenarios = (values.scenario ?? SCENARIO_NAMES).map((name) => {
    const matches = SCENARIO_NAMES.includes(name)
      ? [name]
      : SCENARIO_NAMES.filter((s) => s.startsWith(name));
    if (matches.length !== 1) {
      throw new Error(`--scenario ${name}: expected one of ${SCENARIO_NAMES.join(", ")}`);
    }
    return matches[0];
  });
  const servers: ServerKind[] = values.server === "both"
    ? ["chat", "ncat"]
    : values.server === "chat" || values.server === "ncat"
    ? [values.server]
    : (() => {
      throw new Error(`--server ${values.server}: expected chat, ncat or both`);
    })();
  const runs = Number(values.runs ?? (values.quick ? 1 : 3));
  const workers = values.workers === undefined ? undefined : Number(values.workers);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error("--runs: 1 to 20");
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1 || workers > 16)) {
    throw new Error("--workers: 1 to 16");
  }
  return {
    quick: values.quick,
    runs,
    servers,
    scenarios: SCENARIO_NAMES.filter((s) => scenarios.includes(s)),
    json: values.json,
    workers,
    chatScript: values["chat-script"],
    denoFlags: values["deno-flag"] ?? [],
  };
}

// ------------------------------------------------------------- records ---

/** One run of one server in one scenario. */
interface RunRecord {
  server: ServerKind;
  run: number;
  metrics: Record<string, number>;
  notes: string[];
  /** The server could not hold the scenario's clients: not re-run. */
  capacityFailure?: string;
  /** Anything else that went wrong (the run's figures are missing). */
  error?: string;
  raw?: Json;
}

interface Target {
  text: string;
  ok: (v: number) => boolean;
}

interface Row {
  key: string;
  label: string;
  fmt: (v: number) => string;
  target?: Target;
  /** No chat/ncat ratio for this row (counts that are usually 0, flags). */
  noRatio?: boolean;
}

interface Scenario {
  name: string;
  title: string;
  servers: ServerKind[];
  rows: Row[];
  /** Runs per server (startup uses its own sample count). */
  runs: number;
  run(server: ServerKind, index: number): Promise<RunRecord>;
  /** Printed under the table. */
  notes?: string[];
  /**
   * One column per variant instead of per server (one server only): the rows'
   * keys start with `prefix.`, rows with the same rest share a line.
   */
  columns?: { prefix: string; label: string }[];
  /** The progress line of one run, when the default one does not fit. */
  summarize?(record: RunRecord): string;
}

interface Context {
  options: Options;
  /** Workers for a scenario: --workers, else the scenario's default. */
  workers(byDefault: number): number;
  chat: { script: string; denoFlags: string[] };
  /** bench/floor_relay.c built (once, on first use), or why it could not be. */
  floorRelay(): Promise<{ ok: true; path: string } | { ok: false; reason: string }>;
}

// ---------------------------------------------------------- formatting ---

const fmt = {
  rate: (v: number) =>
    !Number.isFinite(v)
      ? "-"
      : v >= 1e6
      ? `${(v / 1e6).toFixed(2)}M/s`
      : v >= 1e3
      ? `${(v / 1e3).toFixed(v >= 1e5 ? 0 : 1)}k/s`
      : `${v.toFixed(0)}/s`,
  ms: (v: number) =>
    !Number.isFinite(v)
      ? "-"
      : v >= 100
      ? `${v.toFixed(0)} ms`
      : v >= 10
      ? `${v.toFixed(1)} ms`
      : `${v.toFixed(2)} ms`,
  s: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(v >= 10 ? 1 : 2)} s`),
  us: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(2)} us`),
  pct: (v: number) =>
    !Number.isFinite(v) ? "-" : v >= 99.995 && v < 100 ? "99.99%" : `${+v.toFixed(2)}%`,
  count: (v: number) => (!Number.isFinite(v) ? "-" : Math.round(v).toLocaleString("en-US")),
  mb: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(1)} MB`),
  kb: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(1)} KB`),
  mbps: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(1)} MB/s`),
  cores: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(2)} cores`),
  ratio: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(2)}`),
  yesNo: (v: number) => (!Number.isFinite(v) ? "-" : v >= 0.5 ? "yes" : "no"),
};

function progress(message: string): void {
  console.error(message);
}

// -------------------------------------------------------------- helpers ---

/** Waits until the server's CPU use drops below 10% of a core (at most `maxMs`). */
async function settle(pid: number, maxMs: number): Promise<number> {
  const started = nowMs();
  let last = cpuSeconds(pid);
  while (nowMs() - started < maxMs) {
    await delay(300);
    const now = cpuSeconds(pid);
    if (!Number.isFinite(now)) break;
    if (now - last <= 0.03) break;
    last = now;
  }
  return nowMs() - started;
}

function describeDeath(server: RunningServer): string {
  const code = server.exitCode();
  if (code === undefined) return "";
  // Without the wrapper's own "bench-server: line 9: PID Aborted ..." line.
  const stderr = server.stderrTail().replace(/bench-server: line \d+:.*/g, "").trim()
    .split("\n").slice(-2).join(" / ");
  return `server exited with code ${code}${stderr ? ` (${stderr})` : ""}`;
}

/**
 * Seconds from the first send to the last delivery; but when the run ended
 * (deadline or stall) with the senders still blocked, i.e. the room froze, to
 * the end of the run, so a frozen room is not credited with the speed of its
 * first burst.
 */
function deliverySpan(result: TrafficResult): number {
  const frozen = result.stoppedBy !== "done" && result.sent < result.scheduled;
  const end = frozen ? result.tEnd : result.lastRecv;
  return (end - result.firstSend) / 1000;
}

/** Metrics shared by the paced and flood scenarios. */
function trafficMetrics(
  result: TrafficResult,
  spec: TrafficSpec,
  serverCpu: number,
  serverLogBytes: number,
): Record<string, number> {
  const window = (result.tEnd - result.t0) / 1000;
  const scheduled = spec.rate > 0 ? spec.lines / spec.rate : 0;
  const span = result.delivered > 0 ? Math.max(scheduled, deliverySpan(result)) : NaN;
  return {
    delivered: result.delivered,
    expected: result.expected,
    deliveredPct: (result.delivered / result.expected) * 100,
    deliveredPerS: result.delivered / span,
    lost: result.gapLost,
    missingAtDeadline: result.tailMissing,
    reordered: result.reordered,
    duplicates: result.duplicates,
    garbled: result.garbled,
    echoes: result.echoes,
    p50Ms: result.hist.percentile(50) / 1000,
    p99Ms: result.hist.percentile(99) / 1000,
    maxMs: result.hist.max / 1000,
    serverCpuS: serverCpu,
    serverCores: serverCpu / window,
    cpuUsPerDelivery: (serverCpu / result.delivered) * 1e6,
    loadGenCpuS: result.loadCpuSeconds,
    loadGenSharePct: (result.loadCpuSeconds / window / CPUS) * 100,
    windowS: window,
    serverLogMB: serverLogBytes / MB,
    maxSendLagMs: result.maxSendLagMs,
    negativeLatencies: result.negativeLatencies,
    closedReceivers: result.closedReceivers,
    stoppedEarly: result.stoppedBy === "done" ? 0 : 1,
  };
}

// ------------------------------------------------------ traffic scenarios ---

interface TrafficScenarioConfig {
  clients: number;
  workers: number;
  spec: TrafficSpec;
  readBuffer: number;
  connectTimeoutMs: number;
  /**
   * Then the same traffic again with the server on one core and the load
   * generator on the other: the latency the server gives when it does not
   * share a core with its load. And after chat_server's run, the same traffic
   * through bench/floor_relay.c: what this machine and load generator give
   * with a server that does nothing but relay. Both shown, not judged.
   */
  latencyChecks?: boolean;
}

async function trafficRun(
  ctx: Context,
  server: ServerKind,
  index: number,
  config: TrafficScenarioConfig,
): Promise<RunRecord> {
  const record: RunRecord = { server, run: index, metrics: {}, notes: [] };
  const room = await startServer(server, ctx.chat);
  let group: LoadGroup | undefined;
  try {
    group = await LoadGroup.start(ctx.workers(config.workers));
    record.metrics.loadWorkers = group.workers.length;
    const cpuBeforeConnect = cpuSeconds(room.pid);
    const connected = await group.connect(room.host, room.port, config.clients, {
      readBuffer: config.readBuffer,
      timeoutMs: config.connectTimeoutMs,
    });
    record.metrics.connectS = connected.ms / 1000;
    record.metrics.connectServerCpuS = cpuSeconds(room.pid) - cpuBeforeConnect;
    record.metrics.held = connected.ready;
    if (connected.ready < config.clients) {
      const death = describeDeath(room);
      record.capacityFailure = `held ${connected.ready} of ${config.clients} clients` +
        (death ? `; ${death}` : connected.firstError ? ` (${connected.firstError})` : "");
      return record;
    }
    await settle(room.pid, 15_000);
    record.metrics.clockSkewMs = await group.clockSkewMs();
    record.metrics.rssBeforeMB = rssKiB(room.pid) / 1024;
    let cpu0 = 0;
    let log0 = 0;
    let peakRss = 0;
    const result = await group.traffic(config.spec, {
      onStart: () => {
        cpu0 = cpuSeconds(room.pid);
        log0 = room.output.bytes;
      },
      onPoll: () => {
        peakRss = Math.max(peakRss, rssKiB(room.pid) || 0);
      },
    });
    const serverCpu = cpuSeconds(room.pid) - cpu0;
    Object.assign(
      record.metrics,
      trafficMetrics(result, config.spec, serverCpu, room.output.bytes - log0),
    );
    record.metrics.rssPeakMB = peakRss / 1024;
    if (result.stoppedBy !== "done") record.notes.push(`stopped by ${result.stoppedBy}`);
    record.raw = { stoppedBy: result.stoppedBy, histogram: result.hist.toJSON() };
    if (config.latencyChecks && room.alive()) {
      const pinned = await pinnedTraffic(room.pid, group, config.spec);
      if (typeof pinned === "string") record.notes.push(`no pinned repeat: ${pinned}`);
      else repeatMetrics(record, "pinned", pinned);
    }
    const death = describeDeath(room);
    if (death) record.notes.push(death);
  } finally {
    await room.stop();
    await group?.close();
  }
  if (config.latencyChecks && server === "chat") {
    const floor = await floorTraffic(ctx, config);
    if (typeof floor === "string") record.notes.push(`no floor run: ${floor}`);
    else repeatMetrics(record, "floor", floor);
  }
  return record;
}

/** A repeat of the traffic: its delivered share, p50 and p99, under `prefix`. */
function repeatMetrics(record: RunRecord, prefix: string, result: TrafficResult): void {
  record.metrics[`${prefix}DeliveredPct`] = (result.delivered / result.expected) * 100;
  record.metrics[`${prefix}P50Ms`] = result.hist.percentile(50) / 1000;
  record.metrics[`${prefix}P99Ms`] = result.hist.percentile(99) / 1000;
}

/** The rows of repeatMetrics(`prefix`), labelled `label`. */
function repeatRows(prefix: string, label: string): Row[] {
  return [
    { key: `${prefix}DeliveredPct`, label: `${label}: delivered`, fmt: fmt.pct },
    { key: `${prefix}P50Ms`, label: `${label}: latency p50`, fmt: fmt.ms },
    { key: `${prefix}P99Ms`, label: `${label}: latency p99 (shown, not judged)`, fmt: fmt.ms },
  ];
}

/** The scenario's traffic through the floor relay, on fresh clients; a string says why not. */
async function floorTraffic(
  ctx: Context,
  config: TrafficScenarioConfig,
): Promise<TrafficResult | string> {
  const built = await ctx.floorRelay();
  if (!built.ok) return built.reason;
  const relay = await startFloorRelay(built.path).catch((err) => String(err?.message ?? err));
  if (typeof relay === "string") return relay;
  let group: LoadGroup | undefined;
  try {
    group = await LoadGroup.start(ctx.workers(config.workers));
    const connected = await group.connect(relay.host, relay.port, config.clients, {
      readBuffer: config.readBuffer,
      timeoutMs: config.connectTimeoutMs,
    });
    if (connected.ready < config.clients) {
      return `held ${connected.ready} of ${config.clients} clients`;
    }
    await settle(relay.pid, 5000);
    return await group.traffic(config.spec);
  } finally {
    await relay.stop();
    await group?.close();
  }
}

/**
 * Runs `spec` again with the server's threads on CPU 0 and every load worker's
 * on CPU 1 (`taskset`), then lets them run anywhere again. A string says why
 * it could not.
 */
async function pinnedTraffic(
  serverPid: number,
  group: LoadGroup,
  spec: TrafficSpec,
): Promise<TrafficResult | string> {
  if (CPUS < 2) return "needs 2 CPUs";
  const pin = async (pid: number, cpus: string): Promise<boolean> => {
    try {
      const args = ["-a", "-p", "-c", cpus, String(pid)];
      const { success } = await new Deno.Command("taskset", {
        args,
        stdout: "null",
        stderr: "null",
      })
        .output();
      return success;
    } catch {
      return false;
    }
  };
  const workers = group.workers.map((w) => w.pid);
  const all = `0-${CPUS - 1}`;
  try {
    if (!(await pin(serverPid, "0"))) return "taskset failed (util-linux installed?)";
    for (const pid of workers) if (!(await pin(pid, "1"))) return "taskset failed on a load worker";
    await settle(serverPid, 5000);
    return await group.traffic(spec);
  } finally {
    await pin(serverPid, all);
    for (const pid of workers) await pin(pid, all);
  }
}

function trafficRows(
  targets: Partial<Record<string, Target>> = {},
  extra: Row[] = [],
): Row[] {
  const rows: Row[] = [
    { key: "deliveredPerS", label: "delivered/s", fmt: fmt.rate },
    { key: "deliveredPct", label: "delivered (of expected)", fmt: fmt.pct },
    { key: "lost", label: "lost (a later line arrived)", fmt: fmt.count, noRatio: true },
    {
      key: "missingAtDeadline",
      label: "missing at the deadline",
      fmt: fmt.count,
      noRatio: true,
    },
    { key: "reordered", label: "reordered", fmt: fmt.count, noRatio: true },
    { key: "duplicates", label: "duplicated", fmt: fmt.count, noRatio: true },
    { key: "garbled", label: "garbled payloads", fmt: fmt.count, noRatio: true },
    { key: "p50Ms", label: "latency p50", fmt: fmt.ms },
    { key: "p99Ms", label: "latency p99", fmt: fmt.ms },
    { key: "maxMs", label: "latency max", fmt: fmt.ms },
    { key: "cpuUsPerDelivery", label: "server CPU per delivery", fmt: fmt.us },
    { key: "serverCores", label: "server CPU", fmt: fmt.cores },
    { key: "loadGenSharePct", label: "load generator CPU (% of all cores)", fmt: fmt.pct },
    { key: "maxSendLagMs", label: "load generator: worst send lag", fmt: fmt.ms, noRatio: true },
    { key: "serverLogMB", label: "server stdout (console log)", fmt: fmt.mb },
    { key: "connectS", label: "connect phase", fmt: fmt.s },
    { key: "connectServerCpuS", label: "server CPU in connect phase", fmt: fmt.s },
    ...extra,
  ];
  for (const row of rows) {
    const target = targets[row.key];
    if (target) row.target = target;
  }
  return rows;
}

/** `senders` each sending 64-byte lines at `rate` a second for `seconds`, then 3 s to drain. */
function pacedTraffic(senders: number, rate: number, seconds: number): TrafficSpec {
  return {
    senders,
    lines: Math.round(rate * seconds),
    bytes: 64,
    rate,
    batch: 64,
    drainMs: 3000,
    maxMs: seconds * 1000 + 3000,
    stallMs: 3000,
  };
}

function pacedScenario(
  ctx: Context,
  name: string,
  clients: number,
  senders: number,
  rate: number,
  seconds: number,
  targets: Partial<Record<string, Target>>,
  latencyChecks = false,
): Scenario {
  const spec = pacedTraffic(senders, rate, seconds);
  const offered = senders * rate * (clients - 1);
  return {
    name,
    title: `${name}: ${fmt.count(clients)} clients, ${senders} senders x ${rate} lines/s x ` +
      `${seconds} s, 64-byte lines (${fmt.rate(offered).replace("/s", "")} deliveries/s ` +
      `offered), then at most 3 s to drain` +
      (latencyChecks
        ? "; then the same again with the server pinned to CPU 0, the load on 1; and " +
          "(chat_server's runs) through bench/floor_relay.c, a C relay that does nothing else"
        : ""),
    servers: ctx.options.servers,
    runs: ctx.options.runs,
    rows: trafficRows(
      targets,
      latencyChecks
        ? [...repeatRows("pinned", "pinned"), ...repeatRows("floor", "floor (C relay)")]
        : [],
    ),
    run: (server, index) =>
      trafficRun(ctx, server, index, {
        clients,
        workers: clients <= 100 ? 1 : 2,
        spec,
        readBuffer: 16 * 1024,
        connectTimeoutMs: 120_000,
        latencyChecks,
      }),
  };
}

function floodScenario(ctx: Context, clients: number, lines: number): Scenario {
  const senders = 10;
  const spec: TrafficSpec = {
    senders,
    lines,
    bytes: 64,
    rate: 0,
    batch: 20,
    drainMs: 0,
    maxMs: 60_000,
    stallMs: 5000,
  };
  return {
    name: "flood-5000",
    title: `flood-5000: ${fmt.count(clients)} clients, ${senders} senders x ${lines} ` +
      `64-byte lines flat out (${fmt.count(senders * lines * (clients - 1))} deliveries), ` +
      `at most 60 s`,
    servers: ctx.options.servers,
    runs: ctx.options.runs,
    rows: trafficRows({
      deliveredPerS: { text: ">= 4.34M/s (Node net, issue)", ok: (v) => v >= 4.34e6 },
    }),
    run: (server, index) =>
      trafficRun(ctx, server, index, {
        clients,
        workers: 2,
        spec,
        readBuffer: 16 * 1024,
        connectTimeoutMs: 180_000,
      }),
  };
}

// --------------------------------------------------------------- startup ---

async function startupOnce(command: string[]): Promise<number> {
  const started = performance.now();
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  let elapsed = NaN;
  const decoder = new TextDecoder();
  let text = "";
  try {
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (/listening on \S+\n/.test(text)) {
        elapsed = performance.now() - started;
        break;
      }
    }
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await child.status;
    clearTimeout(timer);
  }
  return elapsed;
}

function startupScenario(ctx: Context): Scenario {
  const samples = ctx.options.quick ? 3 : 5;
  const chat = [
    Deno.execPath(),
    "run",
    "-A",
    ...ctx.chat.denoFlags,
    ctx.chat.script,
    "--port",
    "0",
  ];
  const floor = [
    Deno.execPath(),
    "eval",
    "const l = Deno.listen({ hostname: '127.0.0.1', port: 0 }); " +
    "console.log(`listening on 127.0.0.1:${l.addr.port}`); l.close();",
  ];
  let warmed = false;
  return {
    name: "startup",
    title: `startup: spawn to "listening on" of \`deno run -A ${ctx.chat.script} --port 0\`, ` +
      `warm cache, median of ${samples} (after 1 warm-up)`,
    servers: ["chat"],
    runs: samples,
    rows: [
      {
        key: "readyMs",
        label: `deno run -A ${ctx.chat.script} --port 0`,
        fmt: fmt.ms,
        target: { text: "<= 150 ms", ok: (v) => v <= 150 },
        noRatio: true,
      },
      {
        key: "floorMs",
        label: "floor: deno eval listen + print",
        fmt: fmt.ms,
        noRatio: true,
      },
    ],
    async run(server, index) {
      if (!warmed) {
        warmed = true;
        await startupOnce(chat);
        await startupOnce(floor);
      }
      const readyMs = await startupOnce(chat);
      const floorMs = await startupOnce(floor);
      return { server, run: index, metrics: { readyMs, floorMs }, notes: [] };
    },
  };
}

// ------------------------------------------------------------------ idle ---

function idleScenario(ctx: Context, steps: number[]): Scenario {
  const last = steps[steps.length - 1];
  const rows: Row[] = [
    { key: "rssEmptyMB", label: "RSS, empty server", fmt: fmt.mb },
  ];
  for (const step of steps) {
    const isLast = step === last;
    rows.push(
      {
        key: `held@${step}`,
        label: `${fmt.count(step)}: clients held`,
        fmt: fmt.count,
        target: isLast ? { text: `= ${fmt.count(step)}`, ok: (v) => v >= step } : undefined,
      },
      { key: `rssMB@${step}`, label: `${fmt.count(step)}: server RSS`, fmt: fmt.mb },
      {
        key: `kbPerClient@${step}`,
        label: `${fmt.count(step)}: RSS per client above empty, just after connecting`,
        fmt: fmt.kb,
      },
      { key: `connectS@${step}`, label: `${fmt.count(step)}: time to connect step`, fmt: fmt.s },
    );
  }
  rows.push({
    key: `kbPerClientHeld@${last}`,
    label: `${fmt.count(last)}: RSS per client above empty, held idle ${IDLE_HOLD_MS / 1000} s`,
    fmt: fmt.kb,
    target: { text: "<= 10 KB", ok: (v) => v <= 10 },
  });
  rows.push({
    key: "mostHeld",
    label: "most clients held at once",
    fmt: fmt.count,
  }, {
    key: "loadGenRssMB",
    label: "load generator RSS at the last step held (all workers)",
    fmt: fmt.mb,
    noRatio: true,
  });
  return {
    name: "idle",
    title: `idle: idle clients connected in steps ${steps.map(fmt.count).join(", ")}; ` +
      `server RSS per step after it settles`,
    servers: ctx.options.servers,
    runs: ctx.options.runs,
    rows,
    async run(server, index) {
      const record: RunRecord = { server, run: index, metrics: {}, notes: [] };
      const room = await startServer(server, ctx.chat);
      let group: LoadGroup | undefined;
      try {
        record.notes.push(`server fd limit ${fdLimit(room.pid)}`);
        group = await LoadGroup.start(ctx.workers(2));
        await settle(room.pid, 5000);
        // V8 returns young-generation pages a quiet server no longer needs
        // some 30 s after its last full collection, to the empty server as to
        // the full one: both are measured after the same idle hold.
        await delay(IDLE_HOLD_MS);
        const empty = rssKiB(room.pid);
        record.metrics.rssEmptyMB = empty / 1024;
        let heldBefore = 0;
        for (const step of steps) {
          if (step === 0) continue;
          const connected = await group.connect(room.host, room.port, step - group.clients, {
            readBuffer: 4096,
            timeoutMs: 240_000,
          });
          record.metrics[`connectS@${step}`] = connected.ms / 1000;
          const alive = room.alive();
          const open = alive ? connected.open : 0;
          record.metrics[`held@${step}`] = open;
          // Before a crash: the clients of earlier steps plus those that got in now.
          const most = alive ? open : heldBefore + connected.ready;
          record.metrics.mostHeld = Math.max(record.metrics.mostHeld ?? 0, most);
          if (open < step) {
            const death = describeDeath(room);
            record.capacityFailure = `held ${open} of ${step} clients` +
              (alive ? "" : ` (${most} before it died)`) +
              (death ? `; ${death}` : connected.firstError ? ` (${connected.firstError})` : "");
            break;
          }
          heldBefore = open;
          await settle(room.pid, 20_000);
          await delay(500);
          const rss = rssKiB(room.pid);
          record.metrics[`rssMB@${step}`] = rss / 1024;
          record.metrics[`kbPerClient@${step}`] = (rss - empty) / step;
          record.metrics.loadGenRssMB = group.workers
            .reduce((sum, w) => sum + (rssKiB(w.pid) || 0), 0) / 1024;
          if (step === last) {
            await delay(IDLE_HOLD_MS);
            if (!room.alive()) {
              record.capacityFailure = `died holding ${step} clients; ${describeDeath(room)}`;
              break;
            }
            record.metrics[`kbPerClientHeld@${step}`] = (rssKiB(room.pid) - empty) / step;
          }
        }
      } finally {
        await room.stop();
        await group?.close();
      }
      return record;
    },
  };
}

// ----------------------------------------------------------- slow reader ---

function slowScenario(ctx: Context, megabytes: number): Scenario {
  const readers = 10;
  const bytes = 1000;
  const lines = Math.round((megabytes * 1e6) / bytes);
  const maxQueue = 1024 * 1024;
  const spec: TrafficSpec = {
    senders: 1,
    lines,
    bytes,
    rate: 0,
    batch: 16,
    drainMs: 0,
    maxMs: 40_000,
    stallMs: 3000,
  };
  const rows: Row[] = [];
  for (const variant of ["without", "with"] as const) {
    const label = variant === "with" ? "with slow client" : "without";
    rows.push(
      {
        key: `${variant}.deliveredPct`,
        label: `${label}: delivered to readers`,
        fmt: fmt.pct,
        target: variant === "with" ? { text: "100%", ok: (v) => v >= 100 } : undefined,
      },
      { key: `${variant}.MBps`, label: `${label}: throughput (intact lines)`, fmt: fmt.mbps },
      { key: `${variant}.rawMBps`, label: `${label}: bytes received/s`, fmt: fmt.mbps },
      { key: `${variant}.timeS`, label: `${label}: time`, fmt: fmt.s },
      { key: `${variant}.garbled`, label: `${label}: garbled payloads`, fmt: fmt.count },
      {
        key: `${variant}.rssColdGrowthMB`,
        label: `${label}: server RSS peak growth from a fresh server`,
        fmt: fmt.mb,
      },
      ...Array.from({ length: WARM_UP_PUSHES }, (_, i) => ({
        key: `${variant}.warmUp${i + 1}GrowthMB`,
        label: `${label}: server RSS peak growth in warm-up push ${i + 1}`,
        fmt: fmt.mb,
      })),
      {
        key: `${variant}.rssPeakGrowthMB`,
        label: `${label}: server RSS peak growth after ${WARM_UP_PUSHES} warm-up pushes`,
        fmt: fmt.mb,
        target: variant === "with"
          ? {
            text: `<= ${maxQueue / MB} MB (--max-queue) + 5 MB`,
            ok: (v) => v <= maxQueue / MB + 5,
          }
          : undefined,
      },
      {
        key: `${variant}.rssAfterGrowthMB`,
        label: `${label}: server RSS after, above before`,
        fmt: fmt.mb,
        target: variant === "with" ? { text: "<= 5 MB (returns)", ok: (v) => v <= 5 } : undefined,
      },
      {
        key: `${variant}.rssReturnS`,
        label: `${label}: RSS back within 5 MB after (waited up to ${RSS_RETURN_WAIT_MS / 1000} s)`,
        fmt: fmt.s,
      },
      { key: `${variant}.serverCores`, label: `${label}: server CPU`, fmt: fmt.cores },
      {
        key: `${variant}.loadGenSharePct`,
        label: `${label}: load generator CPU (% of all cores)`,
        fmt: fmt.pct,
      },
    );
  }
  rows.push(
    {
      key: "with.throughputRatio",
      label: "throughput with / without (same round)",
      fmt: fmt.ratio,
      target: { text: ">= 0.90", ok: (v) => v >= 0.9 },
    },
    {
      key: "with.slowDropped",
      label: "slow client dropped by the server",
      fmt: fmt.yesNo,
      noRatio: true,
    },
    {
      key: "with.slowDroppedAtS",
      label: "slow client dropped after",
      fmt: fmt.s,
      noRatio: true,
    },
    {
      key: "with.slowReceivedMB",
      label: "bytes the slow client could still read",
      fmt: fmt.mb,
      noRatio: true,
    },
  );

  /** Connects the sender and the readers in a new load group. */
  const pushers = async (room: RunningServer): Promise<LoadGroup> => {
    const group = await LoadGroup.start(ctx.workers(2));
    const connected = await group.connect(room.host, room.port, 1 + readers, {
      readBuffer: 64 * 1024,
      timeoutMs: 30_000,
    });
    if (connected.ready < 1 + readers) {
      await group.close();
      throw new Error(`only ${connected.ready} of ${1 + readers} clients connected`);
    }
    return group;
  };

  const once = async (server: ServerKind, withSlow: boolean): Promise<Record<string, number>> => {
    const room = await startServer(server, {
      ...ctx.chat,
      args: ["--max-queue", String(maxQueue)],
    });
    const m: Record<string, number> = {};
    let group: LoadGroup | undefined;
    try {
      // The first pushes a server relays read in its executable's code and
      // grow V8's heap to working size, whatever the clients do: on five
      // servers pushed 5-7 times, the first push grew RSS by 12-19 MB, the
      // second by 4-6 MB, the third and later ones without a slow client by
      // 0-1.4 MB (in 15 of 16; one, just after a slow client's, by 6.9). Warm-up
      // pushes by clients that then leave, so that what is measured is what
      // a push and a slow client cost a server at working size.
      await settle(room.pid, 5000);
      const cold = rssKiB(room.pid);
      for (let i = 1; i <= WARM_UP_PUSHES; i++) {
        const warmUp = await pushers(room);
        await settle(room.pid, 5000);
        const start = rssKiB(room.pid);
        let top = start;
        await warmUp.traffic(spec, { onPoll: () => (top = Math.max(top, rssKiB(room.pid) || 0)) })
          .finally(() => warmUp.close());
        m[`warmUp${i}GrowthMB`] = (top - start) / 1024;
      }
      group = await pushers(room);
      if (withSlow) {
        await group.connect(room.host, room.port, 1, { slow: 1, timeoutMs: 10_000 });
      }
      await settle(room.pid, 5000);
      const before = rssKiB(room.pid);
      let peak = before;
      let cpu0 = 0;
      const result = await group.traffic(spec, {
        onStart: () => (cpu0 = cpuSeconds(room.pid)),
        onPoll: () => (peak = Math.max(peak, rssKiB(room.pid) || 0)),
      });
      const serverCpu = cpuSeconds(room.pid) - cpu0;
      const window = (result.tEnd - result.t0) / 1000;
      const span = result.delivered > 0 ? deliverySpan(result) : NaN;
      // Did memory come back? V8 returns freed heap pages at its own
      // memory-reducing collections, which start seconds after the last
      // full collection of a server gone quiet: wait for that, bounded.
      const doneAt = nowMs();
      let after = rssKiB(room.pid);
      while (after - before > RSS_RETURNED_KIB && nowMs() - doneAt < RSS_RETURN_WAIT_MS) {
        await delay(250);
        after = rssKiB(room.pid) || after;
        peak = Math.max(peak, after);
      }
      m.rssReturnS = after - before <= RSS_RETURNED_KIB ? (nowMs() - doneAt) / 1000 : NaN;
      m.deliveredPct = (result.delivered / result.expected) * 100;
      m.MBps = (result.delivered * bytes) / MB / span;
      m.rawMBps = result.bytesRead / MB / span;
      m.timeS = span;
      m.garbled = result.garbled;
      m.lost = result.gapLost;
      m.missingAtDeadline = result.tailMissing;
      m.stoppedEarly = result.stoppedBy === "done" ? 0 : 1;
      m.rssBeforeMB = before / 1024;
      m.rssColdGrowthMB = (peak - cold) / 1024;
      m.rssPeakGrowthMB = (peak - before) / 1024;
      m.rssAfterGrowthMB = (after - before) / 1024;
      m.serverCores = serverCpu / window;
      m.loadGenSharePct = (result.loadCpuSeconds / window / CPUS) * 100;
      m.closedReceivers = result.closedReceivers;
      if (withSlow) {
        const dropped = result.slowDroppedAtMs;
        const drained = await group.drainSlow(3000, 500);
        m.slowDropped = dropped.length > 0 || drained.some((d) => d.eof) ? 1 : 0;
        m.slowDroppedAtS = dropped.length ? dropped[0] / 1000 : NaN;
        m.slowReceivedMB = drained.reduce((sum, d) => sum + d.bytes, 0) / MB;
      }
      const death = describeDeath(room);
      if (death) throw new Error(death);
    } finally {
      await room.stop();
      await group?.close();
    }
    return m;
  };

  return {
    name: "slow-reader",
    title: `slow-reader: 1 sender pushes ${megabytes} MB (${fmt.count(lines)} lines of ` +
      `${bytes} B, flat out) to ${readers} readers; run without, then with one more client ` +
      `that never reads (chat_server --max-queue ${maxQueue}); each on a fresh server after ` +
      `${WARM_UP_PUSHES} warm-up pushes by clients that then leave; at most 40 s each`,
    servers: ctx.options.servers,
    runs: ctx.options.runs,
    rows,
    async run(server, index) {
      const record: RunRecord = { server, run: index, metrics: {}, notes: [] };
      const without = await once(server, false);
      const withSlow = await once(server, true);
      for (const [key, value] of Object.entries(without)) record.metrics[`without.${key}`] = value;
      for (const [key, value] of Object.entries(withSlow)) record.metrics[`with.${key}`] = value;
      record.metrics["with.throughputRatio"] = withSlow.MBps / without.MBps;
      return record;
    },
  };
}

// --------------------------------------------------------------- cluster ---

/** One column of the cluster scenario: `instances` chat_server.ts processes as one room. */
interface ClusterVariant {
  /** Prefix of the metric keys in the run's record (`k2.p99Ms`). */
  prefix: string;
  label: string;
  instances: number;
}

const CLUSTER_VARIANTS: ClusterVariant[] = [1, 2, 3].map((k) => ({
  prefix: `k${k}`,
  label: `${k} instance${k === 1 ? "" : "s"}`,
  instances: k,
}));

/** A raw client of one instance, for asking it `/who` (how many it knows of). */
class Probe {
  readonly #conn: Deno.TcpConn;
  readonly #lines: string[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    readLines(conn.readable, (line) => {
      this.#lines.push(line);
      this.#wake?.();
    }).then(() => {
      this.#closed = true;
      this.#wake?.();
    });
  }

  static async open(host: string, port: number): Promise<Probe> {
    return new Probe(await Deno.connect({ hostname: host, port }));
  }

  /** The next line matching `pattern` (others are skipped), or null at `deadline` or EOF. */
  async next(pattern: RegExp, deadline: number): Promise<RegExpExecArray | null> {
    while (true) {
      const line = this.#lines.shift();
      if (line !== undefined) {
        const match = pattern.exec(line);
        if (match) return match;
        continue;
      }
      if (this.#closed || nowMs() >= deadline) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - nowMs()));
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** The room's head count as this instance sees it (`* online (N): ...`), or NaN. */
  async count(deadline: number): Promise<number> {
    await this.#conn.write(new TextEncoder().encode("/who\n")).catch(() => {});
    const match = await this.next(ONLINE, deadline);
    return match ? Number(match[1]) : NaN;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

const ONLINE = /^\* online \((\d+)\)/;

/**
 * Waits until every instance counts all `clients` plus the probes in its
 * `/who` (the roster crossed Redis everywhere): one probe client per
 * instance asks every 200 ms. Returns the seconds it took, or throws with
 * the counts seen at the deadline.
 */
async function waitForRoster(
  instances: RunningServer[],
  clients: number,
  timeoutMs: number,
): Promise<number> {
  const started = nowMs();
  const deadline = started + timeoutMs;
  const probes: Probe[] = [];
  try {
    for (const instance of instances) {
      const probe = await Probe.open(instance.host, instance.port);
      probes.push(probe);
      // Its welcome carries a head count too: skip it, so a reply is a reply.
      await probe.next(ONLINE, deadline);
    }
    const wanted = clients + probes.length;
    let counts: number[] = [];
    while (nowMs() < deadline) {
      counts = await Promise.all(probes.map((p) => p.count(deadline)));
      if (counts.every((n) => n === wanted)) return (nowMs() - started) / 1000;
      await delay(200);
    }
    throw new Error(
      `instances still disagree after ${timeoutMs / 1000} s: /who counts ` +
        `${counts.join(", ")} (want ${wanted}: ${clients} clients + ${probes.length} probes)`,
    );
  } finally {
    for (const probe of probes) probe.close();
  }
}

/** Starts `count` chat_server.ts instances in one Redis room; all or none. */
async function startInstances(
  ctx: Context,
  count: number,
  redisUrl: string,
  room: string,
): Promise<RunningServer[]> {
  const started = await Promise.allSettled(
    Array.from(
      { length: count },
      () => startChat({ ...ctx.chat, args: ["--redis", redisUrl, "--room", room] }),
    ),
  );
  const failed = started.find((s) => s.status === "rejected");
  const running = started.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
  if (failed) {
    await Promise.all(running.map((s) => s.stop()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return running;
}

interface ClusterConfig {
  clients: number;
  spec: TrafficSpec;
  /** Redis room name; a fresh one each time: no roster, nick or guest number from before. */
  room: string;
}

/**
 * k instances on `redis`, the clients spread over them round robin (so are
 * the senders, the first clients), one traffic pattern; then all stopped.
 */
async function clusterOnce(
  ctx: Context,
  variant: ClusterVariant,
  redis: RunningServer,
  config: ClusterConfig,
): Promise<{ metrics: Record<string, number>; raw: Json }> {
  const url = `redis://${redis.host}:${redis.port}`;
  const instances = await startInstances(ctx, variant.instances, url, config.room);
  const pids = instances.map((s) => s.pid);
  const cpuOf = () => [...pids.map(cpuSeconds), cpuSeconds(redis.pid)];
  const m: Record<string, number> = {};
  let group: LoadGroup | undefined;
  try {
    group = await LoadGroup.start(ctx.workers(2));
    const cpuBeforeConnect = cpuOf();
    const connected = await group.connect(
      instances[0].host,
      instances.map((s) => s.port),
      config.clients,
      { readBuffer: 16 * 1024, timeoutMs: 120_000 },
    );
    m.connectS = connected.ms / 1000;
    m.held = connected.ready;
    if (connected.ready < config.clients) {
      const death = instances.map(describeDeath).find(Boolean) || describeDeath(redis);
      throw new Error(
        `held ${connected.ready} of ${config.clients} clients` +
          (death ? `; ${death}` : connected.firstError ? ` (${connected.firstError})` : ""),
      );
    }
    m.rosterS = await waitForRoster(instances, config.clients, 30_000);
    m.connectServerCpuS = sum(cpuOf()) - sum(cpuBeforeConnect);
    // The join (and probe) notices have crossed every instance once all are quiet.
    await Promise.all([...pids, redis.pid].map((pid) => settle(pid, 15_000)));
    m.clockSkewMs = await group.clockSkewMs();
    let cpu0: number[] = [];
    const result = await group.traffic(config.spec, { onStart: () => (cpu0 = cpuOf()) });
    const cpu = cpuOf().map((v, i) => v - cpu0[i]);
    const instanceCpu = sum(cpu.slice(0, -1));
    const redisCpu = cpu[cpu.length - 1];
    Object.assign(m, trafficMetrics(result, config.spec, instanceCpu + redisCpu, 0));
    delete m.serverLogMB; // per instance it says little; not shown
    m.lostOrMissing = m.lost + m.missingAtDeadline;
    m.spanS = result.delivered > 0 ? deliverySpan(result) : NaN;
    const window = m.windowS;
    cpu.slice(0, -1).forEach((seconds, i) => {
      m[`instance${i + 1}CpuS`] = seconds;
      m[`instance${i + 1}Cores`] = seconds / window;
    });
    m.instancesCores = instanceCpu / window;
    m.redisCpuS = redisCpu;
    m.redisCores = redisCpu / window;
    for (const [key, hist] of [["same", result.histSame], ["cross", result.histCross]] as const) {
      if (!hist || hist.total === 0) continue;
      m[`${key}P50Ms`] = hist.percentile(50) / 1000;
      m[`${key}P99Ms`] = hist.percentile(99) / 1000;
      m[`${key}Deliveries`] = hist.total;
    }
    const death = [...instances, redis].map(describeDeath).find(Boolean);
    if (death) throw new Error(death);
    return {
      metrics: m,
      raw: {
        stoppedBy: result.stoppedBy,
        commands: instances.map((s) => s.command),
        histogram: result.hist.toJSON(),
        histogramSame: result.histSame?.toJSON(),
        histogramCross: result.histCross?.toJSON(),
      },
    };
  } finally {
    await Promise.all(instances.map((s) => s.stop()));
    await group?.close();
  }
}

function sum(values: number[]): number {
  return values.reduce((total, v) => total + v, 0);
}

function clusterScenario(
  ctx: Context,
  clients: number,
  seconds: number,
  floodLines: number,
): Scenario {
  const senders = 10;
  const rate = 50;
  const paced = pacedTraffic(senders, rate, seconds);
  // Paced, every column delivers what is offered (if it can): the latency
  // and CPU it costs. Flat out shows what the instances can deliver at all;
  // 10 x 1000 lines of 64 B is 640 KB per receiver, under chat_server's
  // default --max-queue (1 MiB), so a receiver that lags is not dropped.
  // (20 MB more did get lagging receivers dropped: a policy, not capacity.)
  const flood: TrafficSpec = {
    senders,
    lines: floodLines,
    bytes: 64,
    rate: 0,
    batch: 20,
    drainMs: 0,
    maxMs: 30_000,
    stallMs: 5000,
  };
  const base: Row[] = [
    { key: "deliveredPerS", label: "delivered/s", fmt: fmt.rate },
    { key: "deliveredPct", label: "delivered (of expected)", fmt: fmt.pct },
    { key: "lost", label: "lost (a later line arrived)", fmt: fmt.count },
    { key: "missingAtDeadline", label: "missing at the deadline", fmt: fmt.count },
    { key: "reordered", label: "reordered", fmt: fmt.count },
    { key: "duplicates", label: "duplicated", fmt: fmt.count },
    { key: "garbled", label: "garbled payloads", fmt: fmt.count },
    { key: "p50Ms", label: "latency p50", fmt: fmt.ms },
    { key: "p99Ms", label: "latency p99", fmt: fmt.ms },
    { key: "maxMs", label: "latency max", fmt: fmt.ms },
    { key: "sameP99Ms", label: "latency p99, sender on the same instance", fmt: fmt.ms },
    { key: "crossP50Ms", label: "latency p50, sender on another instance", fmt: fmt.ms },
    { key: "crossP99Ms", label: "latency p99, sender on another instance", fmt: fmt.ms },
    ...[1, 2, 3].map((i) => ({
      key: `instance${i}Cores`,
      label: `chat_server instance ${i} CPU`,
      fmt: fmt.cores,
    })),
    { key: "redisCores", label: "redis-server CPU", fmt: fmt.cores },
    { key: "serverCores", label: "all server processes CPU", fmt: fmt.cores },
    { key: "cpuUsPerDelivery", label: "server CPU per delivery (all)", fmt: fmt.us },
    { key: "loadGenSharePct", label: "load generator CPU (% of all cores)", fmt: fmt.pct },
    { key: "maxSendLagMs", label: "load generator: worst send lag", fmt: fmt.ms },
    { key: "connectS", label: "connect phase", fmt: fmt.s },
    { key: "rosterS", label: "until every /who counts everyone", fmt: fmt.s },
    { key: "connectServerCpuS", label: "server CPU in connect phase (all)", fmt: fmt.s },
  ];
  const floodRows: Row[] = [
    { key: "deliveredPerS", label: "delivered/s", fmt: fmt.rate },
    { key: "deliveredPct", label: "delivered (of expected)", fmt: fmt.pct },
    { key: "lostOrMissing", label: "lost + missing at the deadline", fmt: fmt.count },
    { key: "reordered", label: "reordered", fmt: fmt.count },
    { key: "duplicates", label: "duplicated", fmt: fmt.count },
    { key: "spanS", label: "time (first send to last delivery)", fmt: fmt.s },
    { key: "p99Ms", label: "latency p99", fmt: fmt.ms },
    { key: "instancesCores", label: "chat_server instances CPU (sum)", fmt: fmt.cores },
    { key: "redisCores", label: "redis-server CPU", fmt: fmt.cores },
    { key: "cpuUsPerDelivery", label: "server CPU per delivery (all)", fmt: fmt.us },
    { key: "loadGenSharePct", label: "load generator CPU (% of all cores)", fmt: fmt.pct },
  ].map((row) => ({ ...row, key: `flood.${row.key}`, label: `flat out: ${row.label}` }));
  const rows = CLUSTER_VARIANTS.flatMap((v) =>
    [...base, ...floodRows].map((row) => ({ ...row, key: `${v.prefix}.${row.key}`, noRatio: true }))
  );
  return {
    name: "cluster",
    title: `cluster: ${fmt.count(clients)} clients spread round robin over 1, 2 and 3 ` +
      `chat_server.ts --redis instances (one redis-server, a fresh room each); ${senders} ` +
      `senders x ${rate} lines/s x ${seconds} s, 64-byte lines, at most 3 s to drain; then ` +
      `(fresh instances) ${senders} senders x ${
        fmt.count(floodLines)
      } lines flat out, at most 30 s`,
    servers: ["chat"],
    runs: ctx.options.runs,
    rows,
    columns: CLUSTER_VARIANTS.map((v) => ({ prefix: v.prefix, label: v.label })),
    notes: [
      "no ncat column: ncat --chat cannot share a room between processes",
      `every process runs on this machine's ${CPUS} cores: the instances, redis-server and ` +
      "the load generator compete for them",
    ],
    summarize: (record) =>
      CLUSTER_VARIANTS.filter((v) => record.metrics[`${v.prefix}.deliveredPerS`] !== undefined)
        .map((v) => {
          const m = (key: string) => record.metrics[`${v.prefix}.${key}`];
          return `${v.instances}: ${fmt.rate(m("deliveredPerS"))}, ` +
            `${fmt.pct(m("deliveredPct"))}, p99 ${fmt.ms(m("p99Ms"))}, ` +
            `servers ${fmt.cores(m("serverCores"))}; flat out ${
              fmt.rate(m("flood.deliveredPerS"))
            }`;
        }).join("; "),
    async run(server, index) {
      const record: RunRecord = { server, run: index, metrics: {}, notes: [], raw: {} };
      // Alternate the order (1, 2, 3 then 3, 2, 1) so drift in the machine's load
      // does not always favour the same column.
      const order = index % 2 === 1 ? CLUSTER_VARIANTS : [...CLUSTER_VARIANTS].reverse();
      const redis = await startRedis();
      try {
        for (const variant of order) {
          for (const [mode, spec] of [["paced", paced], ["flood", flood]] as const) {
            const prefix = mode === "paced" ? variant.prefix : `${variant.prefix}.flood`;
            const what = `${variant.label}, ${mode === "paced" ? "paced" : "flat out"}`;
            try {
              // Bounded inside: connect 120 s, roster 30 s, settle 15 s, traffic its maxMs.
              const { metrics, raw } = await clusterOnce(ctx, variant, redis, {
                clients,
                spec,
                room: `bench-${variant.instances}-${index}${mode === "flood" ? "-flood" : ""}`,
              });
              for (const [key, value] of Object.entries(metrics)) {
                record.metrics[`${prefix}.${key}`] = value;
              }
              record.raw[prefix] = raw;
              if (raw.stoppedBy !== "done") {
                record.notes.push(`${what}: stopped by ${raw.stoppedBy}`);
              }
            } catch (err) {
              const message = err instanceof Error ? err.message : String(err);
              record.notes.push(`${what} failed: ${message}`);
            }
            if (!redis.alive()) throw new Error(`redis-server died: ${describeDeath(redis)}`);
          }
        }
      } finally {
        await redis.stop();
      }
      return record;
    },
  };
}

// ------------------------------------------------------------- running ---

interface ScenarioOutcome {
  name: string;
  title: string;
  runs: RunRecord[];
  skipped: Partial<Record<ServerKind, string>>;
  summary: Record<
    string,
    Partial<Record<ServerKind, { median: number; min: number; max: number; n: number }>> & {
      ratio?: number;
      target?: string;
      met?: boolean;
    }
  >;
  seconds: number;
}

async function runScenario(scenario: Scenario, quick: boolean): Promise<ScenarioOutcome> {
  const started = nowMs();
  const runs: RunRecord[] = [];
  const skipped: Partial<Record<ServerKind, string>> = {};
  progress(`\n== ${scenario.title}`);
  for (let i = 0; i < scenario.runs; i++) {
    const order = i % 2 === 0 ? scenario.servers : [...scenario.servers].reverse();
    for (const server of order) {
      if (skipped[server]) continue;
      const t = nowMs();
      let record: RunRecord;
      try {
        record = await withTimeout(scenario.run(server, i + 1), 15 * 60_000);
      } catch (err) {
        record = {
          server,
          run: i + 1,
          metrics: {},
          notes: [],
          error: err instanceof Error ? err.message : String(err),
        };
        killAllTracked(); // whatever the failed run left behind
      }
      runs.push(record);
      const took = ((nowMs() - t) / 1000).toFixed(1);
      progress(
        `  run ${i + 1}/${scenario.runs} ${SERVER_LABEL[server]} (${took} s): ` +
          summarizeRun(scenario, record),
      );
      if (record.capacityFailure) {
        skipped[server] = `run ${i + 1}: ${record.capacityFailure}; not re-run`;
      }
    }
  }
  const summary: ScenarioOutcome["summary"] = {};
  for (const row of scenario.rows) {
    const entry: ScenarioOutcome["summary"][string] = {};
    for (const server of scenario.servers) {
      const values = runs.filter((r) => r.server === server).map((r) => r.metrics[row.key])
        .filter((v) => v !== undefined && Number.isFinite(v));
      if (values.length === 0) continue;
      const [min, max] = minMax(values);
      entry[server] = { median: median(values), min, max, n: values.length };
    }
    if (!row.noRatio && entry.chat && entry.ncat && entry.ncat.median !== 0) {
      entry.ratio = entry.chat.median / entry.ncat.median;
    }
    if (row.target && scenario.servers.includes("chat")) {
      entry.target = row.target.text;
      entry.met = entry.chat ? row.target.ok(entry.chat.median) : false;
    }
    summary[row.key] = entry;
  }
  const outcome: ScenarioOutcome = {
    name: scenario.name,
    title: scenario.title,
    runs,
    skipped,
    summary,
    seconds: (nowMs() - started) / 1000,
  };
  printTable(scenario, outcome, quick);
  return outcome;
}

function summarizeRun(scenario: Scenario, record: RunRecord): string {
  if (record.error) return `ERROR ${record.error}`;
  const m = record.metrics;
  const parts: string[] = [];
  if (scenario.summarize) {
    parts.push(scenario.summarize(record));
  } else if (m.deliveredPerS !== undefined) {
    parts.push(
      `${fmt.rate(m.deliveredPerS)}, ${fmt.pct(m.deliveredPct)} delivered, p99 ${
        fmt.ms(m.p99Ms)
      }, ` +
        `server ${fmt.us(m.cpuUsPerDelivery)}/delivery, load generator ${
          fmt.pct(m.loadGenSharePct)
        } of CPUs`,
    );
  } else {
    for (const row of scenario.rows) {
      const v = m[row.key];
      if (row.target && v !== undefined && Number.isFinite(v)) {
        parts.push(`${row.label} ${row.fmt(v)}`);
      }
    }
  }
  if (record.capacityFailure) parts.push(`CAPACITY: ${record.capacityFailure}`);
  parts.push(...record.notes);
  return parts.join("; ") || "ok";
}

function printTable(scenario: Scenario, outcome: ScenarioOutcome, quick: boolean): void {
  if (scenario.columns) return printColumnTable(scenario, scenario.columns, outcome);
  const servers = scenario.servers;
  const cell = (row: Row, server: ServerKind) => {
    const s = outcome.summary[row.key]?.[server];
    if (!s) return outcome.skipped[server] ? "n/a" : "-";
    if (s.n === 1 || row.fmt(s.min) === row.fmt(s.max)) return row.fmt(s.median);
    return `${row.fmt(s.median)} (${row.fmt(s.min)}-${row.fmt(s.max)})`;
  };
  const header = [
    "metric",
    ...servers.map((s) => SERVER_LABEL[s]),
    ...(servers.length === 2 ? ["chat/ncat"] : []),
    ...(servers.includes("chat") ? ["target (chat_server)", ""] : []),
  ];
  const body = scenario.rows
    .filter((row) => servers.some((s) => outcome.summary[row.key]?.[s]))
    .map((row) => {
      const entry = outcome.summary[row.key];
      const status = entry.target === undefined
        ? ""
        : entry.met
        ? (quick ? "met (quick)" : "met")
        : (quick ? "MISSED (quick)" : "MISSED");
      return [
        row.label,
        ...servers.map((s) => cell(row, s)),
        ...(servers.length === 2 ? [entry.ratio === undefined ? "" : fmt.ratio(entry.ratio)] : []),
        ...(servers.includes("chat") ? [entry.target ?? "", status] : []),
      ];
    });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    "| " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padEnd(widths[i]))).join(" | ") +
    " |";
  const runsText = servers.map((s) => {
    const n = outcome.runs.filter((r) => r.server === s && !r.error).length;
    return `${SERVER_LABEL[s]} ${n} run${n === 1 ? "" : "s"}`;
  }).join(", ");
  console.log(`\n### ${outcome.title}`);
  console.log(`(median (min-max) of ${runsText}; ${outcome.seconds.toFixed(0)} s)`);
  console.log(line(header));
  console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const row of body) console.log(line(row));
  for (const [server, reason] of Object.entries(outcome.skipped)) {
    console.log(`note: ${SERVER_LABEL[server as ServerKind]}: ${reason}`);
  }
  for (const record of outcome.runs) {
    if (record.error) {
      console.log(`note: ${SERVER_LABEL[record.server]} run ${record.run} failed: ${record.error}`);
    }
  }
  const notes = new Set(
    outcome.runs.flatMap((r) =>
      r.notes.filter((n) => !n.startsWith("server fd limit")).map((n) =>
        `${SERVER_LABEL[r.server]}: ${n}`
      )
    ),
  );
  for (const note of notes) console.log(`note: ${note}`);
  for (const note of scenario.notes ?? []) console.log(`note: ${note}`);
}

/** A table with one column per variant (e.g. 1, 2, 3 instances) of the one server. */
function printColumnTable(
  scenario: Scenario,
  columns: { prefix: string; label: string }[],
  outcome: ScenarioOutcome,
): void {
  const server = scenario.servers[0];
  const byRest = new Map<string, Row>();
  for (const row of scenario.rows) {
    const rest = row.key.slice(row.key.indexOf(".") + 1);
    if (!byRest.has(rest)) byRest.set(rest, row);
  }
  const cell = (row: Row, key: string) => {
    const s = outcome.summary[key]?.[server];
    if (!s) return "-";
    if (s.n === 1 || row.fmt(s.min) === row.fmt(s.max)) return row.fmt(s.median);
    return `${row.fmt(s.median)} (${row.fmt(s.min)}-${row.fmt(s.max)})`;
  };
  const header = ["metric", ...columns.map((c) => c.label)];
  const body = [...byRest].map(([rest, row]) => [
    row.label,
    ...columns.map((c) => cell(row, `${c.prefix}.${rest}`)),
  ]).filter((cells) => cells.slice(1).some((c) => c !== "-"));
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    "| " + cells.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |";
  const n = outcome.runs.filter((r) => !r.error).length;
  console.log(`\n### ${outcome.title}`);
  console.log(
    `(${SERVER_LABEL[server]}: median (min-max) of ${n} run${n === 1 ? "" : "s"}; ` +
      `${outcome.seconds.toFixed(0)} s)`,
  );
  console.log(line(header));
  console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const row of body) console.log(line(row));
  for (const record of outcome.runs) {
    if (record.error) console.log(`note: run ${record.run} failed: ${record.error}`);
    for (const note of record.notes) console.log(`note: run ${record.run}: ${note}`);
  }
  for (const note of scenario.notes ?? []) console.log(`note: ${note}`);
}

function buildScenarios(ctx: Context): Scenario[] {
  const quick = ctx.options.quick;
  const all: Record<string, () => Scenario> = {
    "startup": () => startupScenario(ctx),
    "paced-1000": () =>
      pacedScenario(ctx, "paced-1000", 1000, 10, 50, quick ? 3 : 5, {
        deliveredPct: { text: "100%", ok: (v) => v >= 100 },
        lost: { text: "0", ok: (v) => v === 0 },
        missingAtDeadline: { text: "0", ok: (v) => v === 0 },
        reordered: { text: "0", ok: (v) => v === 0 },
        duplicates: { text: "0", ok: (v) => v === 0 },
        p99Ms: { text: "<= 40 ms", ok: (v) => v <= 40 },
        cpuUsPerDelivery: { text: "<= 1.5 us", ok: (v) => v <= 1.5 },
      }),
    "paced-100": () =>
      pacedScenario(ctx, "paced-100", 100, 10, 100, quick ? 3 : 5, {
        p99Ms: { text: "<= 2 ms", ok: (v) => v <= 2 },
      }, true),
    "flood-5000": () => floodScenario(ctx, quick ? 2000 : 5000, quick ? 100 : 200),
    "idle": () => idleScenario(ctx, quick ? [0, 1000, 2500] : [0, 1000, 2500, 5000, 10_000]),
    "slow-reader": () => slowScenario(ctx, quick ? 10 : 20),
    "cluster": () => clusterScenario(ctx, quick ? 150 : 600, quick ? 3 : 5, 1000),
  };
  return ctx.options.scenarios.map((name) => all[name]());
}

async function environment(ctx: Context, ncat: Json): Promise<Json> {
  const cpuModel = (await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))
    .match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown";
  // Which version of the chat server was measured (it changes while being optimised).
  const script = await Deno.readFile(new URL(ctx.chat.script, `file://${ROOT}`)).catch(() => null);
  const chatScriptSha256 = script
    ? Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", script)))
      .map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16)
    : "unreadable";
  return {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    ncat: ncat.ok ? ncat.version : `skipped: ${ncat.reason}`,
    redis: (ctx as Json).redis === undefined
      ? "not asked"
      : (ctx as Json).redis.ok
      ? (ctx as Json).redis.version
      : `skipped: ${(ctx as Json).redis.reason}`,
    cpus: CPUS,
    cpuModel,
    loadavg: Deno.loadavg(),
    memoryGiB: +(Deno.systemMemoryInfo().total / 1024 ** 3).toFixed(1),
    benchFdLimit: fdLimit("self"),
    chatScript: ctx.chat.script,
    chatScriptSha256,
    denoFlags: ctx.chat.denoFlags,
    options: ctx.options,
  };
}

async function main(args: string[]): Promise<number> {
  const options = parseOptions(args);
  if (!options) return 0;
  const removeSignals = cleanupOnSignal();
  let floorRelay: ReturnType<typeof buildFloorRelay> | undefined;
  const ctx: Context = {
    options,
    workers: (byDefault) => options.workers ?? byDefault,
    chat: { script: options.chatScript, denoFlags: options.denoFlags },
    floorRelay: () => (floorRelay ??= buildFloorRelay()),
  };
  SERVER_LABEL.chat = options.chatScript.split("/").pop()!;
  const started = nowMs();
  try {
    if (options.servers.includes("ncat")) {
      const ncat = await ensureNcat(progress);
      if (!ncat.ok) {
        console.log(`note: the ncat column is skipped: ${ncat.reason}`);
        options.servers = options.servers.filter((s) => s !== "ncat");
      }
      (ctx as Json).ncat = ncat;
    }
    if (options.servers.length === 0) throw new Error("no server left to measure");
    if (options.scenarios.includes("cluster")) {
      const redis = await probeRedis();
      if (!redis.ok) {
        console.log(`note: the cluster scenario is skipped: ${redis.reason}`);
        options.scenarios = options.scenarios.filter((s) => s !== "cluster");
      }
      (ctx as Json).redis = redis;
    }
    const env = await environment(ctx, (ctx as Json).ncat ?? { ok: false, reason: "not asked" });
    const redis = options.scenarios.includes("cluster") ? `redis-server ${env.redis}, ` : "";
    console.log(
      `# deno task bench${options.quick ? " --quick" : ""}: ${env.date}, Deno ${env.deno}, ` +
        `ncat ${env.ncat}, ${redis}${env.cpus} CPUs (${env.cpuModel}), load average ` +
        `${env.loadavg.map((v: number) => v.toFixed(2)).join(" ")} at start, ` +
        `${options.workers ?? "1-2"} load workers, fd limit ${env.benchFdLimit}, ` +
        `${options.chatScript} sha256 ${env.chatScriptSha256}`,
    );
    const outcomes: ScenarioOutcome[] = [];
    for (const scenario of buildScenarios(ctx)) {
      outcomes.push(await runScenario(scenario, options.quick));
      if (options.json) await writeJson(options.json, env, outcomes, started);
    }
    const total = (nowMs() - started) / 1000;
    console.log(
      `\nTotal time ${total.toFixed(0)} s; load average now ` +
        Deno.loadavg().map((v) => v.toFixed(2)).join(" "),
    );
    if (options.json) {
      await writeJson(options.json, env, outcomes, started);
      console.log(`raw figures: ${options.json}`);
    }
    return 0;
  } finally {
    killAllTracked();
    removeSignals();
    const built = await floorRelay;
    if (built?.ok) {
      await Deno.remove(built.path.slice(0, built.path.lastIndexOf("/")), { recursive: true })
        .catch(() => {});
    }
  }
}

async function writeJson(
  file: string,
  env: Json,
  outcomes: ScenarioOutcome[],
  started: number,
): Promise<void> {
  const path = fileURLToPath(new URL(file, `file://${Deno.cwd()}/`));
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true });
  const data = {
    environment: env,
    totalSeconds: (nowMs() - started) / 1000,
    scenarios: outcomes,
  };
  await Deno.writeTextFile(path, JSON.stringify(data, null, 2) + "\n");
}

if (import.meta.main) {
  main(Deno.args).then((code) => Deno.exit(code), (err) => {
    killAllTracked();
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  });
}
