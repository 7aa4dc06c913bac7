/**
 * bench/scenarios/traffic.ts: what a traffic run measures, shared by the
 * paced, flood and cluster scenarios: the metrics taken from one
 * TrafficResult, the table rows that show them, and the paced traffic shape.
 */

import { type ConnectResult, type TrafficResult, type TrafficSpec } from "../load/group.ts";
import { fmt } from "../report/format.ts";
import { CPUS, MB, type Row, type Target } from "../scenario.ts";

/** The figures of one traffic run (see bench/README.md, Definitions). */
export type TrafficMetrics = {
  delivered: number;
  expected: number;
  deliveredPct: number;
  deliveredPerS: number;
  lost: number;
  missingAtDeadline: number;
  reordered: number;
  duplicates: number;
  garbled: number;
  /** A sender's own line sent back to it (neither server should). */
  echoes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  serverCpuS: number;
  serverCores: number;
  cpuUsPerDelivery: number;
  loadGenCpuS: number;
  loadGenSharePct: number;
  windowS: number;
  serverLogMB: number;
  maxSendLagMs: number;
  negativeLatencies: number;
  closedReceivers: number;
  /** 1 when the run ended by its deadline or a stall, not with every line delivered. */
  stoppedEarly: number;
};

/** The connect phase, before the traffic. */
export type ConnectMetrics = {
  connectS: number;
  connectServerCpuS: number;
};

/**
 * Seconds from the first send to the last delivery; but when the run ended
 * (deadline or stall) with the senders still blocked, i.e. the room froze, to
 * the end of the run, so a frozen room is not credited with the speed of its
 * first burst.
 */
export function deliverySpan(result: TrafficResult): number {
  const frozen = result.stoppedBy !== "done" && result.sent < result.scheduled;
  const end = frozen ? result.tEnd : result.lastRecv;
  return (end - result.firstSend) / 1000;
}

/** The window the server's CPU is taken over: the run's start to its end, in seconds. */
export function runWindowS(result: TrafficResult): number {
  return (result.tEnd - result.t0) / 1000;
}

/** The load generator's CPU over the run's window, as a share of all cores (%). */
export function loadGenSharePct(result: TrafficResult): number {
  return (result.loadCpuSeconds / runWindowS(result) / CPUS) * 100;
}

/** The metrics of one run, given the server's CPU seconds and log bytes over its window. */
export function trafficMetrics(
  result: TrafficResult,
  spec: TrafficSpec,
  serverCpu: number,
  serverLogBytes: number,
): TrafficMetrics {
  const window = runWindowS(result);
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
    loadGenSharePct: loadGenSharePct(result),
    windowS: window,
    serverLogMB: serverLogBytes / MB,
    maxSendLagMs: result.maxSendLagMs,
    negativeLatencies: result.negativeLatencies,
    closedReceivers: result.closedReceivers,
    stoppedEarly: result.stoppedBy === "done" ? 0 : 1,
  };
}

/** Why fewer than `wanted` clients got in: `held N of M clients`, then the death or error. */
export function shortfall(connected: ConnectResult, wanted: number, death: string): string {
  return `held ${connected.ready} of ${wanted} clients` +
    (death ? `; ${death}` : connected.firstError ? ` (${connected.firstError})` : "");
}

/** `senders` each sending 64-byte lines at `rate` a second for `seconds`, then 3 s to drain. */
export function pacedTraffic(senders: number, rate: number, seconds: number): TrafficSpec {
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

/** `senders` x `lines` 64-byte lines flat out, bounded by `maxMs`. */
export function floodTraffic(senders: number, lines: number, maxMs: number): TrafficSpec {
  return {
    senders,
    lines,
    bytes: 64,
    rate: 0,
    batch: 20,
    drainMs: 0,
    maxMs,
    stallMs: 5000,
  };
}

export type TrafficRowKey = keyof TrafficMetrics | keyof ConnectMetrics;

/** The targets, by metric. */
export type Targets = Partial<Record<TrafficRowKey, Target>>;

/** The table of a paced or flood scenario: delivery, latency, CPU, then `extra` rows. */
export function trafficRows(targets: Targets = {}, extra: Row[] = []): Row[] {
  const rows: (Row & { key: TrafficRowKey })[] = [
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
  ];
  for (const row of rows) {
    const target = targets[row.key];
    if (target) row.target = target;
  }
  return [...rows, ...extra];
}
