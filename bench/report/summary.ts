/**
 * bench/report/summary.ts: a scenario's runs boiled down per table row: each
 * server's median and min-max, the ratio chat_server / ncat, and whether
 * chat_server's median meets the row's target.
 */

import { median, minMax } from "../common/stats.ts";
import { type Row, type RunRecord, type Scenario } from "../scenario.ts";
import { type ServerKind } from "../servers/compared.ts";

/** One server's figures for one row over its runs. */
export interface ServerSummary {
  median: number;
  min: number;
  max: number;
  /** Runs that took the figure. */
  n: number;
}

/** One row of a scenario's summary: per server, then the ratio and the target's verdict. */
export type RowSummary = Partial<Record<ServerKind, ServerSummary>> & {
  ratio?: number;
  target?: string;
  met?: boolean;
};

/** Row key -> its summary. */
export type Summary = Record<string, RowSummary>;

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
  if (!row.noRatio && entry.chat && entry.ncat && entry.ncat.median !== 0) {
    entry.ratio = entry.chat.median / entry.ncat.median;
  }
  if (row.target && scenario.servers.includes("chat")) {
    entry.target = row.target.text;
    entry.met = entry.chat ? row.target.ok(entry.chat.median) : false;
  }
  return entry;
}
