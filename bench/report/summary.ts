/**
 * bench/report/summary.ts: a scenario's runs boiled down per table row: each
 * server's median and min-max; chat_server's ratio to the row's best peer
 * (the best median among ncat, node and go: the lowest where lower is better,
 * the highest where higher is) and to the Deno.listen floor when it ran; and
 * whether chat_server's median meets the row's target.
 */

import { median, minMax } from "../common/stats.ts";
import { type Row, type RunRecord, type Scenario } from "../scenario.ts";
import { PEERS, type ServerKind } from "../servers/compared.ts";
import { fmt } from "./format.ts";

/** One server's figures for one row over its runs. */
export interface ServerSummary {
  median: number;
  min: number;
  max: number;
  /** Runs that took the figure. */
  n: number;
}

/** Which way a row's figure is better. */
export type Better = "lower" | "higher";

/** A Row that says its direction; rows that do not get betterOf()'s reading of key and format. */
export type DirectedRow = Row & { better?: Better };

/** One row of a scenario's summary: per server, then the ratios and the target's verdict. */
export type RowSummary = Partial<Record<ServerKind, ServerSummary>> & {
  /** The row's direction (rows with a ratio only). */
  better?: Better;
  /** The peer with the best median in this row. */
  bestPeer?: ServerKind;
  /** chat_server's median / the best peer's (none when that shows as 0, or either is negative). */
  ratio?: number;
  /** chat_server's median / the floor's (idle). */
  floorRatio?: number;
  target?: string;
  met?: boolean;
};

/** Row key -> its summary. */
export type Summary = Record<string, RowSummary>;

/** Figures where more is better: rates and throughputs by format, shares delivered and heads held by key. */
const HIGHER_FORMATS: ReadonlySet<Row["fmt"]> = new Set([fmt.rate, fmt.mbps]);
const HIGHER_KEYS = /(^|\.)(deliveredPct|held(@\d+)?|mostHeld|throughputRatio)$|DeliveredPct$/;

/**
 * A row's direction: its own `better`, else higher for rates, throughput,
 * delivered shares, clients held and throughput ratios; lower for everything
 * else (latency, CPU, memory, time, counts of faults).
 */
export function betterOf(row: Row): Better {
  const given = (row as DirectedRow).better;
  if (given) return given;
  return HIGHER_FORMATS.has(row.fmt) || HIGHER_KEYS.test(row.key) ? "higher" : "lower";
}

export function summarize(scenario: Scenario, runs: RunRecord[]): Summary {
  const summary: Summary = {};
  for (const row of scenario.rows) summary[row.key] = summarizeRow(scenario, row, runs);
  return summary;
}

function summarizeRow(scenario: Scenario, row: Row, runs: RunRecord[]): RowSummary {
  const entry: RowSummary = {};
  for (const server of scenario.servers) {
    const values = runs.filter((r) => r.server === server).map((r) => r.metrics[row.key])
      .filter((v) => v !== undefined && Number.isFinite(v));
    if (values.length === 0) continue;
    const [min, max] = minMax(values);
    entry[server] = { median: median(values), min, max, n: values.length };
  }
  if (!row.noRatio && entry.chat) addRatios(row, entry, entry.chat.median);
  if (row.target && scenario.servers.includes("chat")) {
    entry.target = row.target.text;
    entry.met = entry.chat ? row.target.ok(entry.chat.median) : false;
    if (row.target.vsBestPeer && !entry.bestPeer) entry.target += " (no peer ran)";
    if (row.target.vsBestPeer) entry.met &&= isAheadOfBest(entry);
  }
  return entry;
}

/** chat_server's median at or ahead of the best peer's; true when no peer ran. */
function isAheadOfBest(entry: RowSummary): boolean {
  if (!entry.bestPeer || !entry.chat) return true;
  const peer = entry[entry.bestPeer]!.median;
  return entry.better === "higher" ? entry.chat.median >= peer : entry.chat.median <= peer;
}

/**
 * chat / of, for figures that can be divided: none when either is negative
 * (a growth that was a shrink) or `of` shows as nothing in the table (0 MB,
 * 0.00 s), where the ratio would only say how small the noise was.
 */
function ratioOf(row: Row, chat: number, of: number): number | undefined {
  if (!(chat >= 0 && of > 0) || row.fmt(of) === row.fmt(0)) return undefined;
  return chat / of;
}

/** The best peer of the row and chat_server's ratio to it; to the floor too when it ran. */
function addRatios(row: Row, entry: RowSummary, chat: number): void {
  const better = betterOf(row);
  let best: ServerKind | undefined;
  for (const peer of PEERS) {
    const s = entry[peer];
    if (!s) continue;
    const bestMedian = best === undefined ? undefined : entry[best]!.median;
    if (
      bestMedian === undefined ||
      (better === "lower" ? s.median < bestMedian : s.median > bestMedian)
    ) best = peer;
  }
  if (best) {
    entry.better = better;
    entry.bestPeer = best;
    entry.ratio = ratioOf(row, chat, entry[best]!.median);
  }
  if (entry.floor) {
    entry.better = better;
    entry.floorRatio = ratioOf(row, chat, entry.floor.median);
  }
}
