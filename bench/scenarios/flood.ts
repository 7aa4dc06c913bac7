/**
 * bench/scenarios/flood.ts: flood-5000, 10 senders flat out to thousands of
 * clients: how many deliveries a second the server gets through at all.
 */

import { fmt } from "../report/format.ts";
import { aheadOfBestPeer, type Context, type Scenario } from "../scenario.ts";
import { floodTraffic, trafficRows } from "./traffic.ts";
import { trafficRun } from "./traffic_run.ts";

export function flood5000(ctx: Context): Scenario {
  const clients = ctx.options.quick ? 2000 : 5000;
  const lines = ctx.options.quick ? 100 : 200;
  const senders = 10;
  const spec = floodTraffic(senders, lines, 60_000);
  return {
    name: "flood-5000",
    title: `flood-5000: ${fmt.count(clients)} clients, ${senders} senders x ${lines} ` +
      `64-byte lines flat out (${fmt.count(senders * lines * (clients - 1))} deliveries), ` +
      `at most 60 s`,
    servers: ctx.options.servers,
    runs: ctx.options.runs,
    rows: trafficRows({
      deliveredPerS: aheadOfBestPeer(">= best peer"),
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

/**
 * flood-limited: flood-5000's traffic through chat_server with its default
 * flood control (--max-rate 20): what that costs a flood. Shown, not judged,
 * and chat_server only (ncat has no flood control).
 */
export function floodLimited(ctx: Context): Scenario {
  const clients = ctx.options.quick ? 2000 : 5000;
  const lines = ctx.options.quick ? 100 : 200;
  const senders = 10;
  return {
    name: "flood-limited",
    title: `flood-limited: flood-5000's ${senders} senders x ${lines} lines to ` +
      `${fmt.count(clients)} clients, with chat_server's default --max-rate 20 (20 lines/s ` +
      `per sender after a burst of 40), at most 60 s`,
    servers: ctx.options.servers.filter((server) => server === "chat"),
    runs: ctx.options.runs,
    rows: trafficRows({}),
    run: (server, index) =>
      trafficRun(ctx, server, index, {
        clients,
        workers: 2,
        spec: floodTraffic(senders, lines, 60_000),
        readBuffer: 16 * 1024,
        connectTimeoutMs: 180_000,
        floodControl: true,
      }),
  };
}
