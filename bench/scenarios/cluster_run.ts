/**
 * bench/scenarios/cluster_run.ts: one column of the cluster scenario for one
 * traffic pattern: k chat_server.ts --redis instances in a fresh room on a
 * shared redis-server, the clients spread over them round robin, the roster
 * agreed, then the traffic, with every instance's and redis-server's CPU.
 */

import { cpuSeconds, settle } from "../common/proc.ts";
import { sum } from "../common/stats.ts";
import { LoadGroup, type TrafficResult, type TrafficSpec } from "../load/group.ts";
import { type ClusterRaw, type Context, type Metrics } from "../scenario.ts";
import { startChat } from "../servers/chat.ts";
import { describeDeath, type RunningServer } from "../servers/process.ts";
import { waitForRoster } from "./cluster_roster.ts";
import { deliverySpan, shortfall, trafficMetrics } from "./traffic.ts";

/** One column of the cluster scenario: `instances` chat_server.ts processes as one room. */
export interface ClusterVariant {
  /** Prefix of the metric keys in the run's record (`k2.p99Ms`). */
  prefix: string;
  label: string;
  instances: number;
}

export interface ClusterConfig {
  clients: number;
  spec: TrafficSpec;
  /** Redis room name; a fresh one each time: no roster, nick or guest number from before. */
  room: string;
}

/** What one column and pattern measured, and its raw figures for the --json output. */
export interface ClusterOutcome {
  metrics: Metrics;
  raw: ClusterRaw;
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
  const running = started.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
  for (const s of started) {
    if (s.status === "rejected") {
      await Promise.all(running.map((server) => server.stop()));
      throw s.reason;
    }
  }
  return running;
}

/** Every chat_server instance's CPU seconds, then redis-server's. */
function cpuOf(instances: RunningServer[], redis: RunningServer): number[] {
  return [...instances.map((s) => cpuSeconds(s.pid)), cpuSeconds(redis.pid)];
}

/**
 * k instances on `redis`, the clients spread over them round robin (so are
 * the senders, the first clients), one traffic pattern; then all stopped.
 */
export async function clusterOnce(
  ctx: Context,
  variant: ClusterVariant,
  redis: RunningServer,
  config: ClusterConfig,
): Promise<ClusterOutcome> {
  const url = `redis://${redis.host}:${redis.port}`;
  const instances = await startInstances(ctx, variant.instances, url, config.room);
  let group: LoadGroup | undefined;
  try {
    group = await LoadGroup.start(ctx.workers(2));
    const m = await connectAndAgree(instances, redis, group, config.clients);
    m.clockSkewMs = await group.clockSkewMs();
    let cpu0: number[] = [];
    const result = await group.traffic(config.spec, {
      onStart: () => (cpu0 = cpuOf(instances, redis)),
    });
    const cpu = cpuOf(instances, redis).map((v, i) => v - cpu0[i]);
    Object.assign(m, clusterMetrics(result, config.spec, cpu));
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

/**
 * Connects the clients round robin over the instances and waits until every
 * instance's roster counts them all and every process is quiet again;
 * throws when not all got in.
 */
async function connectAndAgree(
  instances: RunningServer[],
  redis: RunningServer,
  group: LoadGroup,
  clients: number,
): Promise<Metrics> {
  const m: Metrics = {};
  const cpuBeforeConnect = cpuOf(instances, redis);
  const connected = await group.connect(
    instances[0].host,
    instances.map((s) => s.port),
    clients,
    { readBuffer: 16 * 1024, timeoutMs: 120_000 },
  );
  m.connectS = connected.ms / 1000;
  m.held = connected.ready;
  if (connected.ready < clients) {
    const death = instances.map(describeDeath).find(Boolean) || describeDeath(redis);
    throw new Error(shortfall(connected, clients, death));
  }
  m.rosterS = await waitForRoster(instances, clients, 30_000);
  m.connectServerCpuS = sum(cpuOf(instances, redis)) - sum(cpuBeforeConnect);
  // The join (and probe) notices have crossed every instance once all are quiet.
  await Promise.all([...instances, redis].map((s) => settle(s.pid, 15_000)));
  return m;
}

/**
 * The traffic metrics with every instance plus redis-server as "the server",
 * then each one's CPU, and latency split by whether the line crossed Redis.
 * `cpu`: each instance's CPU seconds over the run's window, then redis-server's.
 */
function clusterMetrics(result: TrafficResult, spec: TrafficSpec, cpu: number[]): Metrics {
  const instanceCpu = sum(cpu.slice(0, -1));
  const redisCpu = cpu[cpu.length - 1];
  // No log bytes: per instance the server's stdout says little, and is not shown.
  const { serverLogMB: _notShown, ...traffic } = trafficMetrics(
    result,
    spec,
    instanceCpu + redisCpu,
    0,
  );
  const m: Metrics = { ...traffic };
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
  return m;
}
