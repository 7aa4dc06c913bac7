/**
 * bench/scenarios/flood_big.ts: flood-1k, 20 clients that all send 1 KiB
 * lines flat out to each other: a room of a few people pasting big blocks,
 * where what counts is how the server reads (how much per read) and copies,
 * not how it fans out to thousands.
 */

import { fmt } from "../report/format.ts";
import { aheadOfBestPeer, type Context, type Scenario } from "../scenario.ts";
import { type TrafficSpec } from "../load/group.ts";
import { trafficRows } from "./traffic.ts";
import { trafficRun } from "./traffic_run.ts";

const CLIENTS = 20;
const LINE_BYTES = 1024;

/** Every client a sender: `lines` 1 KiB lines each, flat out, at most `maxMs`. */
function bigLineTraffic(lines: number, maxMs: number): TrafficSpec {
  return {
    senders: CLIENTS,
    lines,
    bytes: LINE_BYTES,
    rate: 0,
    batch: 16,
    drainMs: 0,
    maxMs,
    stallMs: 5000,
  };
}

export function flood1k(ctx: Context): Scenario {
  const lines = ctx.options.quick ? 10_000 : 25_000;
  const deliveries = CLIENTS * lines * (CLIENTS - 1);
  return {
    name: "flood-1k",
    title: `flood-1k: ${CLIENTS} clients, each sending ${fmt.count(lines)} 1 KiB lines flat ` +
      `out to the 19 others (${fmt.count(deliveries)} deliveries), at most 60 s`,
    servers: ctx.options.servers,
    runs: ctx.options.runs,
    rows: trafficRows({ deliveredPerS: aheadOfBestPeer(">= best peer") }),
    run: (server, index) =>
      trafficRun(ctx, server, index, {
        clients: CLIENTS,
        workers: 1,
        spec: bigLineTraffic(lines, 60_000),
        readBuffer: 64 * 1024,
        connectTimeoutMs: 30_000,
      }),
  };
}
