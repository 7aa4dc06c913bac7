/**
 * bench/scenarios/latency_checks.ts: paced-100's repeats of its traffic,
 * shown beside the judged figures and not judged themselves. Pinned: the same
 * server and clients once more with the server on CPU 0 and the load on CPU 1,
 * the latency the server gives when it does not share a core with its load.
 * Floors: the same traffic on fresh clients through a server that does
 * nothing but relay, one write per receiver per read: bench/floor_relay.c,
 * what this machine and load generator give; and bench/peers/deno_floor.ts
 * --relay, what a Deno.listen server gives (an async op per write).
 */

import { settle } from "../common/proc.ts";
import { startLoadClients } from "../load/c_load.ts";
import { type LoadClients, type TrafficResult, type TrafficSpec } from "../load/group.ts";
import { fmt } from "../report/format.ts";
import { type Context, CPUS, type Row, type RunRecord } from "../scenario.ts";
import { startDenoFloor } from "../servers/deno_floor.ts";
import { startFloorRelay } from "../servers/floor_relay.ts";
import { type RunningServer } from "../servers/process.ts";

/** How a traffic scenario connects its clients; the floor run connects the same way. */
export interface ClientSetup {
  clients: number;
  /** Deno load workers by default (--workers overrides), when not the C generator. */
  workers: number;
  readBuffer: number;
  connectTimeoutMs: number;
  /** When a client counts as connected (see LoadConnectOptions): "line" by default. */
  ready?: "line" | "connected";
}

/** A repeat of the traffic: its delivered share, p50 and p99, under `prefix`. */
export function repeatMetrics(record: RunRecord, prefix: string, result: TrafficResult): void {
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

/** The repeats' rows, as paced-100 shows them. */
export function latencyCheckRows(): Row[] {
  return [
    ...repeatRows("pinned", "pinned"),
    ...repeatRows("floor", "floor (C relay)"),
    ...repeatRows("denoFloor", "floor (Deno.listen relay)"),
  ];
}

/** The floor relays: in C, and in Deno. */
export type FloorKind = "c" | "deno";

/** Starts a floor relay; a string says why it could not. */
async function startFloor(ctx: Context, floor: FloorKind): Promise<RunningServer | string> {
  const started = async () => {
    if (floor === "deno") return await startDenoFloor("relay");
    const built = await ctx.floorRelay();
    return built.ok ? await startFloorRelay(built.path) : built.reason;
  };
  return await started().catch((err) => String(err?.message ?? err));
}

/**
 * The traffic through a floor relay, on fresh clients of the same kind of
 * load generator as the run's own (so the floor is comparable); a string says
 * why not.
 */
export async function floorTraffic(
  ctx: Context,
  floor: FloorKind,
  setup: ClientSetup,
  spec: TrafficSpec,
  kind: LoadClients["kind"],
): Promise<TrafficResult | string> {
  const relay = await startFloor(ctx, floor);
  if (typeof relay === "string") return relay;
  let load: LoadClients | undefined;
  try {
    const sameAsRun = kind === "deno" ? "as in the run itself" : undefined;
    load = (await startLoadClients(ctx.loadGen, ctx.workers(setup.workers), sameAsRun)).clients;
    const connected = await load.connect(relay.host, relay.port, setup.clients, {
      readBuffer: setup.readBuffer,
      timeoutMs: setup.connectTimeoutMs,
    });
    if (connected.ready < setup.clients) {
      return `held ${connected.ready} of ${setup.clients} clients`;
    }
    await settle(relay.pid, 5000);
    return await load.traffic(spec);
  } finally {
    await relay.stop();
    await load?.close();
  }
}

/** Sets the CPUs a process's threads may run on (`taskset -a -p -c`); false when it fails. */
async function pin(pid: number, cpus: string): Promise<boolean> {
  try {
    const args = ["-a", "-p", "-c", cpus, String(pid)];
    const { success } = await new Deno.Command("taskset", {
      args,
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * Runs `spec` again with the server's threads on CPU 0 and the load
 * generator's processes (the C one, or every Deno worker) on CPU 1, then lets
 * them run anywhere again. A string says why it could not.
 */
export async function pinnedTraffic(
  serverPid: number,
  load: LoadClients,
  spec: TrafficSpec,
): Promise<TrafficResult | string> {
  if (CPUS < 2) return "needs 2 CPUs";
  const workers = load.pids;
  const all = `0-${CPUS - 1}`;
  try {
    if (!(await pin(serverPid, "0"))) return "taskset failed (util-linux installed?)";
    for (const pid of workers) {
      if (!(await pin(pid, "1"))) return "taskset failed on the load generator";
    }
    await settle(serverPid, 5000);
    return await load.traffic(spec);
  } finally {
    await pin(serverPid, all);
    for (const pid of workers) await pin(pid, all);
  }
}
