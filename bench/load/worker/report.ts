/**
 * bench/load/worker/report.ts: what a worker tells the coordinator about a
 * run: progress while it runs, the full counts and histograms at its end, and
 * what the slow clients could still read (whether the server dropped them).
 */

import { cpuSeconds } from "../../common/proc.ts";
import { nowMs } from "../../common/time.ts";
import {
  type DrainReply,
  type DrainRequest,
  type ReportReply,
  type SlowDrain,
  type StatsReply,
} from "../protocol.ts";
import { closeClient, W } from "./state.ts";

export function stats(): StatsReply {
  const sent = W.senders.reduce((sum, s) => sum + s.written, 0);
  pollSlow();
  return {
    unique: W.unique,
    expected: W.expected,
    sent,
    sendersDone: W.senders.every((s) => s.done),
    lastRecv: W.lastRecv,
    closed: W.clients.filter((c) => c.inRun && c.closed).length,
  };
}

/**
 * Notes when the server dropped a slow client. The client side cannot tell:
 * the server's FIN waits behind the data the client never read, so the client
 * socket stays ESTABLISHED. The server side of the connection can: once the
 * server closed it, it is FIN_WAIT1/2, CLOSING or TIME_WAIT (or gone).
 */
function pollSlow(): void {
  const slow = W.clients.filter((c) => c.slow && !W.slowDroppedAt.has(c.id));
  if (slow.length === 0) return;
  let table = "";
  try {
    table = Deno.readTextFileSync("/proc/net/tcp") + Deno.readTextFileSync("/proc/net/tcp6");
  } catch {
    return;
  }
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");
  for (const c of slow) {
    const client = hex(c.localPort);
    const server = hex(c.serverPort);
    const row = new RegExp(`:${server} [0-9A-F]+:${client} ([0-9A-F]{2}) `).exec(table);
    if (!row || row[1] !== "01") W.slowDroppedAt.set(c.id, nowMs());
  }
}

export function report(): ReportReply {
  const run = W.run;
  let gapLost = 0;
  let tailMissing = 0;
  let closedReceivers = 0;
  let receivers = 0;
  if (run) {
    for (const c of W.clients) {
      if (!c.inRun) continue;
      receivers++;
      if (c.closed) closedReceivers++;
      for (let s = 0; s < run.senders; s++) {
        if (s === c.senderIndex) continue;
        const count = c.counts ? c.counts[s] : 0;
        const max = c.maxSeq ? c.maxSeq[s] : -1;
        gapLost += max + 1 - count;
        tailMissing += run.lines - 1 - max;
      }
    }
  }
  pollSlow();
  return {
    receivers,
    expected: W.expected,
    unique: W.unique,
    gapLost,
    tailMissing,
    duplicates: W.duplicates,
    reordered: W.reordered,
    garbled: W.garbled,
    echoes: W.echoes,
    foreign: W.foreign,
    notices: W.notices,
    longLines: W.longLines,
    negativeLatencies: W.negative,
    bytes: W.bytes,
    closedReceivers,
    firstRecv: W.firstRecv,
    lastRecv: W.lastRecv,
    firstSend: W.firstSend,
    lastSend: W.lastSend,
    sent: W.senders.reduce((sum, s) => sum + s.written, 0),
    sendErrors: W.sendErrors,
    maxSendLagMs: W.maxSendLagMs,
    cpuSeconds: cpuSeconds("self") - W.cpuAtRun,
    hist: W.hist.toJSON(),
    histSame: W.run?.senderPorts ? W.histSame.toJSON() : null,
    histCross: W.run?.senderPorts ? W.histCross.toJSON() : null,
    slowDroppedAt: [...W.slowDroppedAt.values()],
  };
}

/** Reads what the slow clients never read, until EOF or `timeoutMs`. */
export async function drainSlow(msg: DrainRequest): Promise<DrainReply> {
  const buffer = new Uint8Array(256 * 1024);
  const slow = W.clients.filter((c) => c.slow && !c.closed);
  const results: SlowDrain[] = [];
  for (const c of slow) {
    let bytes = 0;
    let eof = false;
    let idle = setTimeout(() => closeClient(c), msg.timeoutMs);
    try {
      while (true) {
        const n = await c.conn.read(buffer);
        if (n === null) {
          eof = true;
          break;
        }
        bytes += n;
        clearTimeout(idle);
        idle = setTimeout(() => closeClient(c), msg.idleMs);
      }
    } catch {
      // Closed by our timeout (not dropped), or reset.
    }
    clearTimeout(idle);
    closeClient(c);
    results.push({ bytes, eof });
  }
  return { slow: results };
}
