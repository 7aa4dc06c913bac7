/**
 * bench/report/progress.ts: the one-line summary of each run that goes to
 * stderr while a scenario runs, so a long bench shows how it is going.
 */

import { type RunRecord, type Scenario } from "../scenario.ts";
import { fmt } from "./format.ts";

export function progress(message: string): void {
  console.error(message);
}

/** The scenario's own line, else traffic figures, else its judged rows; then problems and notes. */
export function summarizeRun(scenario: Scenario, record: RunRecord): string {
  if (record.error) return `ERROR ${record.error}`;
  const parts: string[] = [];
  if (scenario.summarize) parts.push(scenario.summarize(record));
  else if (record.metrics.deliveredPerS !== undefined) parts.push(trafficLine(record));
  else parts.push(...judgedFigures(scenario, record));
  if (record.capacityFailure) parts.push(`CAPACITY: ${record.capacityFailure}`);
  parts.push(...record.notes);
  return parts.join("; ") || "ok";
}

function trafficLine({ metrics: m }: RunRecord): string {
  return `${fmt.rate(m.deliveredPerS)}, ${fmt.pct(m.deliveredPct)} delivered, ` +
    `p99 ${fmt.ms(m.p99Ms)}, server ${fmt.us(m.cpuUsPerDelivery)}/delivery, ` +
    `load generator ${fmt.pct(m.loadGenSharePct)} of CPUs`;
}

function judgedFigures(scenario: Scenario, record: RunRecord): string[] {
  return scenario.rows.flatMap((row) => {
    const v = record.metrics[row.key];
    return row.target && v !== undefined && Number.isFinite(v)
      ? [`${row.label} ${row.fmt(v)}`]
      : [];
  });
}
