/**
 * bench/load.ts: the load generator on its own, for line-based chat rooms
 * (chat_server.ts, `ncat -l --chat`, anything that relays each line to every
 * other client). The bench drives the same generator (load/group.ts) itself.
 *
 *   deno run -A bench/load.ts --port P[,P2...] [--host 127.0.0.1] [--clients N] [--senders S]
 *        [--lines M] [--bytes B] [--rate R | --flat] [--workers W] [--slow K] [--json]
 *
 * The N clients are spread over W worker processes (load/worker.ts) so the
 * generator is not the bottleneck; each worker reports its own CPU so readers
 * can judge whether it was. The first S clients are senders: each sends M
 * lines of B bytes, paced at R lines/s or flat out; every client checks loss,
 * duplicates, order and latency (load/worker.ts says how). The K slow clients
 * connect last and never read. With several ports (instances of one room,
 * e.g. chat_server.ts --redis), client i goes to port i mod P.
 */

import { parseArgs } from "node:util";
import {
  type ConnectResult,
  LoadGroup,
  type TrafficResult,
  type TrafficSpec,
} from "./load/group.ts";

const USAGE = `usage: deno run -A bench/load.ts --port P[,P2...] [--host 127.0.0.1]
       [--clients N] [--senders S] [--lines M] [--bytes B] [--rate R | --flat] [--batch K]
       [--workers W] [--slow K] [--drain-ms MS] [--max-ms MS] [--json]

Opens N clients to a chat room on loopback (--port P1,P2,...: spread round
robin over instances of one room); the first S send M lines of B bytes
each, at R lines/s per sender (or --flat: flat out); every client checks loss,
duplicates, order and latency. Prints a summary (or JSON with --json).`;

function parseCli(args: string[]) {
  return parseArgs({
    args,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string" },
      clients: { type: "string", default: "100" },
      senders: { type: "string", default: "10" },
      lines: { type: "string", default: "500" },
      bytes: { type: "string", default: "64" },
      rate: { type: "string", default: "100" },
      flat: { type: "boolean", default: false },
      batch: { type: "string", default: "32" },
      workers: { type: "string", default: "2" },
      slow: { type: "string", default: "0" },
      "drain-ms": { type: "string", default: "3000" },
      "max-ms": { type: "string", default: "60000" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
}

type CliValues = ReturnType<typeof parseCli>;

function trafficSpec(values: CliValues): TrafficSpec {
  return {
    senders: Number(values.senders),
    lines: Number(values.lines),
    bytes: Number(values.bytes),
    rate: values.flat ? 0 : Number(values.rate),
    batch: Number(values.batch),
    drainMs: Number(values["drain-ms"]),
    maxMs: Number(values["max-ms"]),
    stallMs: 3000,
  };
}

/** The run's figures as printed with --json: the raw result, then the derived ones. */
function summarize(connected: ConnectResult, result: TrafficResult) {
  const seconds = (result.lastRecv - result.firstSend) / 1000;
  return {
    connectMs: Math.round(connected.ms),
    ...result,
    hist: undefined,
    deliveredPerSecond: Math.round(result.delivered / seconds),
    p50Ms: result.hist.percentile(50) / 1000,
    p99Ms: result.hist.percentile(99) / 1000,
    maxMs: result.hist.max / 1000,
    loadCpuShare: result.loadCpuSeconds / ((result.tEnd - result.t0) / 1000) /
      navigator.hardwareConcurrency,
  };
}

function printSummary(
  connected: ConnectResult,
  wanted: number,
  result: TrafficResult,
  summary: ReturnType<typeof summarize>,
): void {
  console.log(
    `connected ${connected.ready}/${wanted} in ${summary.connectMs} ms; ` +
      `delivered ${result.delivered}/${result.expected} (${result.stoppedBy}); ` +
      `lost ${result.gapLost}, missing at deadline ${result.tailMissing}, ` +
      `dup ${result.duplicates}, reordered ${result.reordered}, garbled ${result.garbled}`,
  );
  console.log(
    `${summary.deliveredPerSecond} deliveries/s; latency p50 ${summary.p50Ms} ms, ` +
      `p99 ${summary.p99Ms} ms, max ${summary.maxMs} ms; ` +
      `load generator CPU ${(summary.loadCpuShare * 100).toFixed(0)}% of all cores`,
  );
}

async function cliMain(args: string[]): Promise<number> {
  const values = parseCli(args);
  if (values.help || !values.port) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  if (!["127.0.0.1", "localhost", "::1"].includes(values.host)) {
    console.error("error: load.ts only targets loopback (127.0.0.1, ::1)");
    return 2;
  }
  const group = await LoadGroup.start(Number(values.workers));
  try {
    const slow = Number(values.slow);
    const wanted = Number(values.clients) + slow;
    // --port 8080,8081: instances of one room, clients spread round robin.
    const ports = values.port.split(",").map(Number);
    const connected = await group.connect(values.host, ports, wanted, { slow });
    if (connected.ready < wanted) {
      console.error(
        `warning: only ${connected.ready} of ${wanted} clients ready` +
          (connected.firstError ? ` (${connected.firstError})` : ""),
      );
    }
    const result = await group.traffic(trafficSpec(values));
    const summary = summarize(connected, result);
    if (values.json) console.log(JSON.stringify(summary, null, 2));
    else printSummary(connected, wanted, result, summary);
  } finally {
    await group.close();
  }
  return 0;
}

if (import.meta.main) {
  cliMain(Deno.args).then((code) => Deno.exit(code), (err) => {
    console.error(`error: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  });
}
