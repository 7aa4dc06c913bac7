/**
 * bench/scenarios/traffic_run.ts: one run of a paced or flood scenario on one
 * server: start it, connect the clients, let it settle, send the traffic while
 * sampling its CPU, RSS and log output, and (paced-100) the latency checks.
 * The clients are the C load generator's (bench/loadgen.c), or the Deno
 * workers' with a note: over TLS, with BENCH_LOADGEN=deno, or without cc.
 */

import { cpuSeconds, rssKiB, settle } from "../common/proc.ts";
import { startLoadClients } from "../load/c_load.ts";
import { type LoadClients, type TrafficSpec } from "../load/group.ts";
import { type Context, newRecord, type RunRecord } from "../scenario.ts";
import { type ServerKind, startServer } from "../servers/compared.ts";
import { describeDeath, type RunningServer } from "../servers/process.ts";
import { type ClientSetup, floorTraffic, pinnedTraffic, repeatMetrics } from "./latency_checks.ts";
import { shortfall, trafficMetrics } from "./traffic.ts";

export interface TrafficScenarioConfig extends ClientSetup {
  spec: TrafficSpec;
  /** Run chat_server with its default flood control (see servers/chat.ts). */
  floodControl?: boolean;
  /** paced-100: the pinned repeat, and after chat_server's run the floor relays' runs. */
  latencyChecks?: boolean;
  /** chat_server over TLS (the *-tls scenarios): its flags, and the certificate clients trust. */
  tls?: TlsSetup;
}

/** A certificate for chat_server's --tls-cert/--tls-key (see paced_tls.ts). */
export interface TlsSetup {
  /** `--tls-cert FILE --tls-key FILE`. */
  serverArgs: string[];
  /** The certificate, PEM, that clients trust. */
  caCert: string;
}

export async function trafficRun(
  ctx: Context,
  server: ServerKind,
  index: number,
  config: TrafficScenarioConfig,
): Promise<RunRecord> {
  const record = newRecord(server, index);
  const room = await startServer(server, {
    ...ctx.chat,
    floodControl: config.floodControl,
    args: config.tls?.serverArgs,
  });
  let load: LoadClients | undefined;
  try {
    const tls = config.tls ? "TLS: the C generator speaks plain TCP only" : undefined;
    const started = await startLoadClients(ctx.loadGen, ctx.workers(config.workers), tls);
    load = started.clients;
    if (started.note) record.notes.push(started.note);
    record.metrics.loadWorkers = load.pids.length;
    record.metrics.loadGenC = load.kind === "c" ? 1 : 0;
    if (!(await connectClients(record, room, load, config, config.tls?.caCert))) return record;
    await settle(room.pid, 15_000);
    record.metrics.clockSkewMs = await load.clockSkewMs();
    await measureTraffic(record, room, load, config.spec);
    if (config.latencyChecks && room.alive()) {
      const pinned = await pinnedTraffic(room.pid, load, config.spec);
      if (typeof pinned === "string") record.notes.push(`no pinned repeat: ${pinned}`);
      else repeatMetrics(record, "pinned", pinned);
    }
    const death = describeDeath(room);
    if (death) record.notes.push(death);
  } finally {
    await room.stop();
    await load?.close();
  }
  // After the server is gone, so the floor relays do not share the machine with it.
  if (config.latencyChecks && server === "chat" && load) {
    for (const [kind, prefix] of [["c", "floor"], ["deno", "denoFloor"]] as const) {
      const floor = await floorTraffic(ctx, kind, config, config.spec, load.kind);
      if (typeof floor === "string") record.notes.push(`no ${kind} floor run: ${floor}`);
      else repeatMetrics(record, prefix, floor);
    }
  }
  return record;
}

/** Connects the clients; false (with the record's capacityFailure set) when not all got in. */
async function connectClients(
  record: RunRecord,
  room: RunningServer,
  load: LoadClients,
  setup: ClientSetup,
  caCert: string | undefined,
): Promise<boolean> {
  const cpuBeforeConnect = cpuSeconds(room.pid);
  const connected = await load.connect(room.host, room.port, setup.clients, {
    readBuffer: setup.readBuffer,
    timeoutMs: setup.connectTimeoutMs,
    ready: setup.ready,
    caCert,
  });
  record.metrics.connectS = connected.ms / 1000;
  record.metrics.connectServerCpuS = cpuSeconds(room.pid) - cpuBeforeConnect;
  record.metrics.held = connected.ready;
  if (connected.ready >= setup.clients) return true;
  record.capacityFailure = shortfall(connected, setup.clients, describeDeath(room));
  return false;
}

/** Sends the traffic, taking the server's CPU and log bytes over its window and its peak RSS. */
async function measureTraffic(
  record: RunRecord,
  room: RunningServer,
  load: LoadClients,
  spec: TrafficSpec,
): Promise<void> {
  record.metrics.rssBeforeMB = rssKiB(room.pid) / 1024;
  let cpu0 = 0;
  let log0 = 0;
  let peakRss = 0;
  const result = await load.traffic(spec, {
    onStart: () => {
      cpu0 = cpuSeconds(room.pid);
      log0 = room.output.bytes;
    },
    onPoll: () => {
      peakRss = Math.max(peakRss, rssKiB(room.pid) || 0);
    },
  });
  const serverCpu = cpuSeconds(room.pid) - cpu0;
  Object.assign(record.metrics, trafficMetrics(result, spec, serverCpu, room.output.bytes - log0));
  record.metrics.rssPeakMB = peakRss / 1024;
  if (result.stoppedBy !== "done") record.notes.push(`stopped by ${result.stoppedBy}`);
  record.raw = { stoppedBy: result.stoppedBy, histogram: result.hist.toJSON() };
}
