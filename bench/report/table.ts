/**
 * bench/report/table.ts: a scenario's table on stdout, in Markdown: one
 * column per server (median (min-max)), then the row's best peer and
 * chat_server's ratio to it (and to the Deno.listen floor when it ran), the
 * target and `met` / `MISSED`; or, for a one-server scenario with variants
 * (cluster), one column per variant. Columns are headed by short names, which
 * the line above the table spells out. Notes follow the table.
 */

import { type ScenarioOutcome } from "../results.ts";
import { type Column, type Row, type Scenario } from "../scenario.ts";
import {
  isServerKind,
  PEERS,
  SERVER_COLUMN,
  SERVER_LABEL,
  type ServerKind,
} from "../servers/compared.ts";
import { fmt } from "./format.ts";
import { type ServerSummary } from "./summary.ts";

export function printTable(scenario: Scenario, outcome: ScenarioOutcome, quick: boolean): void {
  if (scenario.columns) printColumnTable(scenario, scenario.columns, outcome);
  else printServerTable(scenario, outcome, quick);
}

/**
 * `median (min-max)`, the unit written once when all three share it (`1.20 ms
 * (1.10-1.40)`); the median alone when there is one run or the range formats flat.
 */
function cellText(row: Row, s: ServerSummary): string {
  const [med, min, max] = [row.fmt(s.median), row.fmt(s.min), row.fmt(s.max)];
  if (s.n === 1 || min === max) return med;
  const parts = [med, min, max].map((text) => /^(-?[\d.,]+)(\D.*)?$/.exec(text));
  const unit = parts[0]?.[2] ?? "";
  if (parts.every((p) => p && (p[2] ?? "") === unit)) {
    return `${med} (${parts[1]![1]}-${parts[2]![1]})`;
  }
  return `${med} (${min}-${max})`;
}

/** The table's lines: header, separator, body; every column padded to its widest cell. */
function markdownTable(header: string[], body: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    "| " + cells.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |";
  return [
    line(header),
    "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|",
    ...body.map(line),
  ];
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function verdict(met: boolean | undefined): string {
  return met ? "met" : "MISSED";
}

function printServerTable(scenario: Scenario, outcome: ScenarioOutcome, quick: boolean): void {
  const servers = scenario.servers;
  const chat = servers.includes("chat");
  const compared = chat && servers.some((s) => PEERS.includes(s));
  const floor = chat && servers.includes("floor");
  const cell = (row: Row, server: ServerKind) => {
    const s = outcome.summary[row.key]?.[server];
    if (!s) return outcome.skipped[server] ? "n/a" : "-";
    return cellText(row, s);
  };
  const ratio = (v: number | undefined) => (v === undefined ? "" : fmt.ratio(v));
  const header = [
    "metric",
    ...servers.map((s) => SERVER_COLUMN[s]),
    ...(compared ? ["best peer", "chat/best"] : []),
    ...(floor ? ["chat/floor"] : []),
    ...(chat ? ["target", ""] : []),
  ];
  const body = scenario.rows
    .filter((row) => servers.some((s) => outcome.summary[row.key]?.[s]))
    .map((row) => {
      const entry = outcome.summary[row.key];
      const status = entry.target === undefined ? "" : verdict(entry.met);
      return [
        row.label,
        ...servers.map((s) => cell(row, s)),
        ...(compared
          ? [entry.bestPeer ? SERVER_COLUMN[entry.bestPeer] : "", ratio(entry.ratio)]
          : []),
        ...(floor ? [ratio(entry.floorRatio)] : []),
        ...(chat ? [entry.target ?? "", status] : []),
      ];
    });
  const counts = servers.map((s) => outcome.runs.filter((r) => r.server === s && !r.error).length);
  const runsText = counts.every((n) => n === counts[0])
    ? `${plural(counts[0], "run")}${servers.length > 1 ? " each" : ""}`
    : servers.map((s, i) => `${SERVER_COLUMN[s]} ${plural(counts[i], "run")}`).join(", ");
  const legend = servers.map((s) => `${SERVER_COLUMN[s]} = ${SERVER_LABEL[s]}`).join(", ");
  console.log(`\n### ${outcome.title}`);
  // With --quick, met / MISSED judge the quick sizes.
  const sizes = quick && chat ? "; targets judged on the quick sizes" : "";
  console.log(
    `(median (min-max) of ${runsText}; ${legend}${sizes}; ${outcome.seconds.toFixed(0)} s)`,
  );
  if (compared) {
    console.log(
      `(best peer: per row, the best median of ${
        servers.filter((s) => PEERS.includes(s)).join(", ")
      }: the lowest, or the highest for rates and shares delivered; chat/best: chat's ` +
        `median over its${floor ? "; chat/floor: over the floor's" : ""})`,
    );
  }
  for (const line of markdownTable(header, body)) console.log(line);
  printServerNotes(scenario, outcome);
}

function printServerNotes(scenario: Scenario, outcome: ScenarioOutcome): void {
  // In the order the servers were given up on.
  for (const [server, reason] of Object.entries(outcome.skipped)) {
    if (isServerKind(server)) console.log(`note: ${SERVER_LABEL[server]}: ${reason}`);
  }
  for (const record of outcome.runs) {
    if (record.error) {
      console.log(`note: ${SERVER_LABEL[record.server]} run ${record.run} failed: ${record.error}`);
    }
  }
  // The same note from several runs is printed once; the fd limit is for the JSON only.
  const notes = new Set(
    outcome.runs.flatMap((r) =>
      r.notes.filter((n) => !n.startsWith("server fd limit")).map((n) =>
        `${SERVER_LABEL[r.server]}: ${n}`
      )
    ),
  );
  for (const note of notes) console.log(`note: ${note}`);
  for (const note of scenario.notes ?? []) console.log(`note: ${note}`);
}

/** A table with one column per variant (e.g. 1, 2, 3 instances) of the one server. */
function printColumnTable(scenario: Scenario, columns: Column[], outcome: ScenarioOutcome): void {
  const server = scenario.servers[0];
  // Rows that differ only in their column prefix share a line.
  const byRest = new Map<string, Row>();
  for (const row of scenario.rows) {
    const rest = row.key.slice(row.key.indexOf(".") + 1);
    if (!byRest.has(rest)) byRest.set(rest, row);
  }
  const cell = (row: Row, key: string) => {
    const s = outcome.summary[key]?.[server];
    return s ? cellText(row, s) : "-";
  };
  const header = ["metric", ...columns.map((c) => c.label)];
  const body = [...byRest].map(([rest, row]) => [
    row.label,
    ...columns.map((c) => cell(row, `${c.prefix}.${rest}`)),
  ]).filter((cells) => cells.slice(1).some((c) => c !== "-"));
  const n = outcome.runs.filter((r) => !r.error).length;
  console.log(`\n### ${outcome.title}`);
  console.log(
    `(${SERVER_LABEL[server]}: median (min-max) of ${plural(n, "run")}; ` +
      `${outcome.seconds.toFixed(0)} s)`,
  );
  for (const line of markdownTable(header, body)) console.log(line);
  for (const record of outcome.runs) {
    if (record.error) console.log(`note: run ${record.run} failed: ${record.error}`);
    for (const note of record.notes) console.log(`note: run ${record.run}: ${note}`);
  }
  for (const note of scenario.notes ?? []) console.log(`note: ${note}`);
}
