/**
 * bench/scenarios/paced.ts: paced-1000 and paced-100, senders at a fixed rate
 * to every other client: what a delivery costs and how late it arrives when
 * the server keeps up. paced-100 also repeats its traffic pinned and through
 * the C and Deno floor relays (latency_checks.ts).
 */

import { fmt } from "../report/format.ts";
import { aheadOfBestPeer, type Context, type Scenario } from "../scenario.ts";
import { latencyCheckRows } from "./latency_checks.ts";
import { pacedTraffic, type Targets, trafficRows } from "./traffic.ts";
import { trafficRun } from "./traffic_run.ts";

interface PacedShape {
  name: string;
  clients: number;
  senders: number;
  /** Lines per second per sender. */
  rate: number;
  seconds: number;
  targets: Targets;
  latencyChecks?: boolean;
}

const EXACT = (v: number) => v === 0;

/** The load of paced-1000 and paced-100 (and of their TLS twins, paced_tls.ts). */
export const PACED_LOAD = {
  "paced-1000": { clients: 1000, senders: 10, rate: 50 },
  "paced-100": { clients: 100, senders: 10, rate: 100 },
} as const;

export function paced1000(ctx: Context): Scenario {
  return pacedScenario(ctx, {
    name: "paced-1000",
    ...PACED_LOAD["paced-1000"],
    seconds: ctx.options.quick ? 3 : 5,
    targets: {
      deliveredPct: { text: "100%", ok: (v) => v >= 100 },
      lost: { text: "0", ok: EXACT },
      missingAtDeadline: { text: "0", ok: EXACT },
      reordered: { text: "0", ok: EXACT },
      duplicates: { text: "0", ok: EXACT },
      p99Ms: aheadOfBestPeer("<= 40 ms, <= best", (v) => v <= 40),
      cpuUsPerDelivery: aheadOfBestPeer("<= 1.5 us, <= best", (v) => v <= 1.5),
    },
  });
}

export function paced100(ctx: Context): Scenario {
  return pacedScenario(ctx, {
    name: "paced-100",
    ...PACED_LOAD["paced-100"],
    seconds: ctx.options.quick ? 3 : 5,
    targets: { p99Ms: aheadOfBestPeer() },
    latencyChecks: true,
  });
}

function pacedScenario(ctx: Context, shape: PacedShape): Scenario {
  const { name, clients, senders, rate, seconds, latencyChecks = false } = shape;
  const spec = pacedTraffic(senders, rate, seconds);
  const offered = senders * rate * (clients - 1);
  return {
    name,
    title: `${name}: ${fmt.count(clients)} clients, ${senders} senders x ${rate} lines/s x ` +
      `${seconds} s, 64-byte lines (${fmt.rate(offered).replace("/s", "")} deliveries/s ` +
      `offered), then at most 3 s to drain` +
      (latencyChecks
        ? "; then the same again with the server pinned to CPU 0, the load on 1; and " +
          "(chat_server's runs) through two relays that do nothing else: bench/floor_relay.c " +
          "in C, and bench/peers/deno_floor.ts --relay on Deno.listen"
        : ""),
    servers: ctx.options.servers,
    runs: ctx.options.runs,
    rows: trafficRows(shape.targets, latencyChecks ? latencyCheckRows() : []),
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
