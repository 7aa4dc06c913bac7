/**
 * bench/scenarios/cluster.ts: cluster, one room spread over 1, 2 and 3
 * chat_server.ts --redis instances sharing one redis-server; paced, then flat
 * out. chat_server only (ncat cannot share a room between processes), one
 * column per instance count.
 */

import { type TrafficSpec } from "../load/group.ts";
import { fmt } from "../report/format.ts";
import {
  addPrefixed,
  type ClusterRaw,
  type Context,
  CPUS,
  newRecord,
  type Row,
  type RunRecord,
  type Scenario,
} from "../scenario.ts";
import { type ServerKind } from "../servers/compared.ts";
import { describeDeath, type RunningServer } from "../servers/process.ts";
import { startRedis } from "../servers/redis.ts";
import { clusterOnce, type ClusterVariant } from "./cluster_run.ts";
import { floodTraffic, pacedTraffic } from "./traffic.ts";

const CLUSTER_VARIANTS: ClusterVariant[] = [1, 2, 3].map((k) => ({
  prefix: `k${k}`,
  label: `${k} instance${k === 1 ? "" : "s"}`,
  instances: k,
}));

const SENDERS = 10;
const RATE = 50;
const FLOOD_LINES = 1000;

/** The paced rows of one column (keys without the column's prefix). */
const PACED_ROWS: Row[] = [
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

/** The flat-out rows of one column (`flood.` keys). */
const FLOOD_ROWS: Row[] = [
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

/** Every row of every column, keys prefixed with the column's (`k2.p99Ms`); no ratios. */
function clusterRows(): Row[] {
  return CLUSTER_VARIANTS.flatMap((v) =>
    [...PACED_ROWS, ...FLOOD_ROWS].map((row) => ({
      ...row,
      key: `${v.prefix}.${row.key}`,
      noRatio: true,
    }))
  );
}

/** One run's progress line: per column, paced rate, delivered, p99, CPU; flat-out rate. */
function summarizeCluster(record: RunRecord): string {
  return CLUSTER_VARIANTS.filter((v) => record.metrics[`${v.prefix}.deliveredPerS`] !== undefined)
    .map((v) => {
      const m = (key: string) => record.metrics[`${v.prefix}.${key}`];
      return `${v.instances}: ${fmt.rate(m("deliveredPerS"))}, ` +
        `${fmt.pct(m("deliveredPct"))}, p99 ${fmt.ms(m("p99Ms"))}, ` +
        `servers ${fmt.cores(m("serverCores"))}; flat out ${fmt.rate(m("flood.deliveredPerS"))}`;
    }).join("; ");
}

export function clusterScenario(ctx: Context): Scenario {
  const clients = ctx.options.quick ? 150 : 600;
  const seconds = ctx.options.quick ? 3 : 5;
  // Paced, every column delivers what is offered (if it can): the latency
  // and CPU it costs. Flat out shows what the instances can deliver at all;
  // 10 x 1000 lines of 64 B is 640 KB per receiver, under chat_server's
  // default --max-queue (1 MiB), so a receiver that lags is not dropped.
  // (20 MB more did get lagging receivers dropped: a policy, not capacity.)
  const patterns: ClusterPattern[] = [
    { mode: "paced", spec: pacedTraffic(SENDERS, RATE, seconds) },
    { mode: "flood", spec: floodTraffic(SENDERS, FLOOD_LINES, 30_000) },
  ];
  return {
    name: "cluster",
    title: `cluster: ${fmt.count(clients)} clients spread round robin over 1, 2 and 3 ` +
      `chat_server.ts --redis instances (one redis-server, a fresh room each); ${SENDERS} ` +
      `senders x ${RATE} lines/s x ${seconds} s, 64-byte lines, at most 3 s to drain; then ` +
      `(fresh instances) ${SENDERS} senders x ${fmt.count(FLOOD_LINES)} lines flat out, ` +
      `at most 30 s`,
    servers: ["chat"],
    runs: ctx.options.runs,
    rows: clusterRows(),
    columns: CLUSTER_VARIANTS.map((v) => ({ prefix: v.prefix, label: v.label })),
    notes: [
      "no ncat column: ncat --chat cannot share a room between processes",
      `every process runs on this machine's ${CPUS} cores: the instances, redis-server and ` +
      "the load generator compete for them",
    ],
    summarize: summarizeCluster,
    run: (server, index) => clusterRun(ctx, server, index, clients, patterns),
  };
}

interface ClusterPattern {
  mode: "paced" | "flood";
  spec: TrafficSpec;
}

async function clusterRun(
  ctx: Context,
  server: ServerKind,
  index: number,
  clients: number,
  patterns: ClusterPattern[],
): Promise<RunRecord> {
  const raw: Record<string, ClusterRaw> = {};
  const record: RunRecord = { ...newRecord(server, index), raw };
  // Alternate the order (1, 2, 3 then 3, 2, 1) so drift in the machine's load
  // does not always favour the same column.
  const order = index % 2 === 1 ? CLUSTER_VARIANTS : [...CLUSTER_VARIANTS].reverse();
  const redis = await startRedis();
  try {
    for (const variant of order) {
      for (const pattern of patterns) {
        await clusterColumn(ctx, record, raw, redis, variant, pattern, clients);
        if (!redis.alive()) throw new Error(`redis-server died: ${describeDeath(redis)}`);
      }
    }
  } finally {
    await redis.stop();
  }
  return record;
}

/** One column and pattern into the record; a failure is a note, the other columns still run. */
async function clusterColumn(
  ctx: Context,
  record: RunRecord,
  raw: Record<string, ClusterRaw>,
  redis: RunningServer,
  variant: ClusterVariant,
  { mode, spec }: ClusterPattern,
  clients: number,
): Promise<void> {
  const prefix = mode === "paced" ? variant.prefix : `${variant.prefix}.flood`;
  const what = `${variant.label}, ${mode === "paced" ? "paced" : "flat out"}`;
  const room = `bench-${variant.instances}-${record.run}${mode === "flood" ? "-flood" : ""}`;
  try {
    // Bounded inside: connect 120 s, roster 30 s, settle 15 s, traffic its maxMs.
    const outcome = await clusterOnce(ctx, variant, redis, { clients, spec, room });
    addPrefixed(record, prefix, outcome.metrics);
    raw[prefix] = outcome.raw;
    if (outcome.raw.stoppedBy !== "done") {
      record.notes.push(`${what}: stopped by ${outcome.raw.stoppedBy}`);
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    record.notes.push(`${what} failed: ${message}`);
  }
}
