/**
 * bench/scenarios/slow_reader.ts: slow-reader, one sender pushing megabytes
 * to ten readers, without and then with one more client that never reads:
 * whether the readers still get everything at the same speed, how much memory
 * the server spends on the client that does not read, and whether it gives
 * that memory back.
 */

import { cpuSeconds, rssKiB, settle } from "../common/proc.ts";
import { delay, nowMs } from "../common/time.ts";
import { LoadGroup, type TrafficResult, type TrafficSpec } from "../load/group.ts";
import { fmt } from "../report/format.ts";
import { addPrefixed, type Context, MB, newRecord, type Row, type Scenario } from "../scenario.ts";
import { type ServerKind, startServer } from "../servers/compared.ts";
import { describeDeath, type RunningServer } from "../servers/process.ts";
import { deliverySpan, loadGenSharePct, runWindowS } from "./traffic.ts";

/** RSS within this of where it was before the push has "returned". */
const RSS_RETURNED_KIB = 5 * 1024;
/** How long to wait for it. */
const RSS_RETURN_WAIT_MS = 60_000;
/** Pushes a fresh server relays before the measured one (see warmUp). */
const WARM_UP_PUSHES = 2;
const READERS = 10;
const LINE_BYTES = 1000;
/** chat_server's --max-queue: what it may queue for one client before dropping it. */
const MAX_QUEUE = 1024 * 1024;

type Variant = "without" | "with";

/** RSS growth during each warm-up push: `warmUp1GrowthMB`, ... */
type WarmUpMetrics = Record<`warmUp${number}GrowthMB`, number>;

/** How the readers fared in the measured push. */
type DeliveryMetrics = {
  deliveredPct: number;
  /** Intact lines' bytes per second. */
  MBps: number;
  /** All bytes received per second. */
  rawMBps: number;
  timeS: number;
  garbled: number;
  lost: number;
  missingAtDeadline: number;
  stoppedEarly: number;
};

/** The measured push: delivery, and the server's memory and CPU. */
type MeasuredPush = { rssReturnS: number } & DeliveryMetrics & {
  rssBeforeMB: number;
  rssColdGrowthMB: number;
  rssPeakGrowthMB: number;
  rssAfterGrowthMB: number;
  serverCores: number;
  loadGenSharePct: number;
  closedReceivers: number;
};

/** The client that never reads: dropped (1) or not (0), when, and what it could still read. */
type SlowClientMetrics = {
  slowDropped: number;
  slowDroppedAtS: number;
  slowReceivedMB: number;
};

/** The figures of one push on a fresh server (the slow client's only with one). */
type PushMetrics = WarmUpMetrics & MeasuredPush & Partial<SlowClientMetrics>;

export function slowReaderScenario(ctx: Context): Scenario {
  const megabytes = ctx.options.quick ? 10 : 20;
  const lines = Math.round((megabytes * 1e6) / LINE_BYTES);
  const spec: TrafficSpec = {
    senders: 1,
    lines,
    bytes: LINE_BYTES,
    rate: 0,
    batch: 16,
    drainMs: 0,
    maxMs: 40_000,
    stallMs: 3000,
  };
  return {
    name: "slow-reader",
    title: `slow-reader: 1 sender pushes ${megabytes} MB (${fmt.count(lines)} lines of ` +
      `${LINE_BYTES} B, flat out) to ${READERS} readers; run without, then with one more ` +
      `client that never reads (chat_server --max-queue ${MAX_QUEUE}); each on a fresh server ` +
      `after ${WARM_UP_PUSHES} warm-up pushes by clients that then leave; at most 40 s each`,
    servers: ctx.options.servers,
    runs: ctx.options.runs,
    rows: [...variantRows("without"), ...variantRows("with"), ...slowClientRows()],
    async run(server, index) {
      const record = newRecord(server, index);
      const without = await pushOnFreshServer(ctx, server, spec, false);
      const withSlow = await pushOnFreshServer(ctx, server, spec, true);
      addPrefixed(record, "without", without);
      addPrefixed(record, "with", withSlow);
      record.metrics["with.throughputRatio"] = withSlow.MBps / without.MBps;
      return record;
    },
  };
}

function variantRows(variant: Variant): Row[] {
  const label = variant === "with" ? "with slow client" : "without";
  const judged = variant === "with";
  return [
    {
      key: `${variant}.deliveredPct`,
      label: `${label}: delivered to readers`,
      fmt: fmt.pct,
      target: judged ? { text: "100%", ok: (v) => v >= 100 } : undefined,
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
      target: judged
        ? {
          text: `<= ${MAX_QUEUE / MB} MB (--max-queue) + 5 MB`,
          ok: (v) => v <= MAX_QUEUE / MB + 5,
        }
        : undefined,
    },
    {
      key: `${variant}.rssAfterGrowthMB`,
      label: `${label}: server RSS after, above before`,
      fmt: fmt.mb,
      target: judged ? { text: "<= 5 MB (returns)", ok: (v) => v <= 5 } : undefined,
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
  ];
}

function slowClientRows(): Row[] {
  return [
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
  ];
}

/** Connects the sender and the readers in a new load group. */
async function pushers(ctx: Context, room: RunningServer): Promise<LoadGroup> {
  const group = await LoadGroup.start(ctx.workers(2));
  const connected = await group.connect(room.host, room.port, 1 + READERS, {
    readBuffer: 64 * 1024,
    timeoutMs: 30_000,
  });
  if (connected.ready < 1 + READERS) {
    await group.close();
    throw new Error(`only ${connected.ready} of ${1 + READERS} clients connected`);
  }
  return group;
}

/**
 * The first pushes a server relays read in its executable's code and grow
 * V8's heap to working size, whatever the clients do: on five servers pushed
 * 5-7 times, the first push grew RSS by 12-19 MB, the second by 4-6 MB, the
 * third and later ones without a slow client by 0-1.4 MB (in 15 of 16; one,
 * just after a slow client's, by 6.9). So: warm-up pushes by clients that then
 * leave, so that what is measured is what a push and a slow client cost a
 * server at working size. Records each warm-up push's RSS growth in `m`.
 */
async function warmUp(
  ctx: Context,
  room: RunningServer,
  spec: TrafficSpec,
): Promise<WarmUpMetrics> {
  const m: WarmUpMetrics = {};
  for (let i = 1; i <= WARM_UP_PUSHES; i++) {
    const group = await pushers(ctx, room);
    await settle(room.pid, 5000);
    const start = rssKiB(room.pid);
    let top = start;
    await group.traffic(spec, { onPoll: () => (top = Math.max(top, rssKiB(room.pid) || 0)) })
      .finally(() => group.close());
    m[`warmUp${i}GrowthMB`] = (top - start) / 1024;
  }
  return m;
}

/** One push on a fresh server, after the warm-up pushes, with or without a slow client. */
async function pushOnFreshServer(
  ctx: Context,
  server: ServerKind,
  spec: TrafficSpec,
  withSlow: boolean,
): Promise<PushMetrics> {
  const room = await startServer(server, {
    ...ctx.chat,
    args: ["--max-queue", String(MAX_QUEUE)],
  });
  let group: LoadGroup | undefined;
  try {
    await settle(room.pid, 5000);
    const cold = rssKiB(room.pid);
    const warmUps = await warmUp(ctx, room, spec);
    group = await pushers(ctx, room);
    if (withSlow) {
      await group.connect(room.host, room.port, 1, { slow: 1, timeoutMs: 10_000 });
    }
    await settle(room.pid, 5000);
    const { measured, result } = await measurePush(room, group, spec, cold);
    const slow = withSlow ? await measureSlowClient(group, result.slowDroppedAtMs) : {};
    const death = describeDeath(room);
    if (death) throw new Error(death);
    return { ...warmUps, ...measured, ...slow };
  } finally {
    await room.stop();
    await group?.close();
  }
}

/** The measured push: throughput, CPU, and RSS before, at its peak and once it came back. */
async function measurePush(
  room: RunningServer,
  group: LoadGroup,
  spec: TrafficSpec,
  coldKiB: number,
): Promise<{ measured: MeasuredPush; result: TrafficResult }> {
  const before = rssKiB(room.pid);
  let peak = before;
  let cpu0 = 0;
  const result = await group.traffic(spec, {
    onStart: () => (cpu0 = cpuSeconds(room.pid)),
    onPoll: () => (peak = Math.max(peak, rssKiB(room.pid) || 0)),
  });
  const serverCpu = cpuSeconds(room.pid) - cpu0;
  const span = result.delivered > 0 ? deliverySpan(result) : NaN;
  const back = await waitForRssReturn(room, before);
  peak = Math.max(peak, back.peakKiB);
  const measured: MeasuredPush = {
    rssReturnS: back.seconds,
    ...deliveryMetrics(result, span),
    rssBeforeMB: before / 1024,
    rssColdGrowthMB: (peak - coldKiB) / 1024,
    rssPeakGrowthMB: (peak - before) / 1024,
    rssAfterGrowthMB: (back.afterKiB - before) / 1024,
    serverCores: serverCpu / runWindowS(result),
    loadGenSharePct: loadGenSharePct(result),
    closedReceivers: result.closedReceivers,
  };
  return { measured, result };
}

function deliveryMetrics(result: TrafficResult, span: number): DeliveryMetrics {
  return {
    deliveredPct: (result.delivered / result.expected) * 100,
    MBps: (result.delivered * LINE_BYTES) / MB / span,
    rawMBps: result.bytesRead / MB / span,
    timeS: span,
    garbled: result.garbled,
    lost: result.gapLost,
    missingAtDeadline: result.tailMissing,
    stoppedEarly: result.stoppedBy === "done" ? 0 : 1,
  };
}

/**
 * Did memory come back? V8 returns freed heap pages at its own
 * memory-reducing collections, which start seconds after the last full
 * collection of a server gone quiet: wait for that, bounded. `seconds` is NaN
 * when it did not come back within RSS_RETURN_WAIT_MS.
 */
async function waitForRssReturn(
  room: RunningServer,
  beforeKiB: number,
): Promise<{ afterKiB: number; peakKiB: number; seconds: number }> {
  const doneAt = nowMs();
  let after = rssKiB(room.pid);
  let peak = 0;
  while (after - beforeKiB > RSS_RETURNED_KIB && nowMs() - doneAt < RSS_RETURN_WAIT_MS) {
    await delay(250);
    after = rssKiB(room.pid) || after;
    peak = Math.max(peak, after);
  }
  const returned = after - beforeKiB <= RSS_RETURNED_KIB;
  return { afterKiB: after, peakKiB: peak, seconds: returned ? (nowMs() - doneAt) / 1000 : NaN };
}

/**
 * Whether the server dropped the slow client (seen from the server's side of
 * the connection, or EOF once we read), when, and what it could still read.
 */
async function measureSlowClient(
  group: LoadGroup,
  dropped: number[],
): Promise<SlowClientMetrics> {
  const drained = await group.drainSlow(3000, 500);
  return {
    slowDropped: dropped.length > 0 || drained.some((d) => d.eof) ? 1 : 0,
    slowDroppedAtS: dropped.length ? dropped[0] / 1000 : NaN,
    slowReceivedMB: drained.reduce((sum, d) => sum + d.bytes, 0) / MB,
  };
}
