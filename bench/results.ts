/**
 * bench/results.ts: the --json output, typed: the environment a bench ran in
 * and, per scenario, every run's record and the summary its table shows.
 * Rewritten after every scenario, so a bench stopped halfway keeps what it
 * measured. Each summary row holds every server's median and min-max, the
 * row's direction (`better`), its best peer (the best median of ncat, node and
 * go: the lowest, or the highest where higher is better) and chat_server's
 * ratio to it (`ratio`), and to the Deno.listen floor (`floorRatio`, idle).
 */

import { fileURLToPath } from "node:url";
import { nowMs } from "./common/time.ts";
import { type Options } from "./options.ts";
import { type Summary } from "./report/summary.ts";
import { type RunRecord } from "./scenario.ts";
import { type ServerKind } from "./servers/compared.ts";

/** Where and on what a bench ran (its header line says the same, shorter). */
export interface Environment {
  date: string;
  deno: string;
  v8: string;
  /** ncat's version, `skipped: <why>`, or `not asked` (not among --server). */
  ncat: string;
  /** node's version (the Node relay), the same way. */
  node: string;
  /** go's version (the Go book's chat shape, built with it), the same way. */
  go: string;
  /** redis-server's version, `skipped: <why>`, or `not asked` (no cluster scenario). */
  redis: string;
  cpus: number;
  cpuModel: string;
  loadavg: number[];
  memoryGiB: number;
  benchFdLimit: number;
  chatScript: string;
  /** The first 16 hex digits of the chat script's SHA-256, or `unreadable`. */
  chatScriptSha256: string;
  denoFlags: string[];
  options: Options;
}

/** One scenario as run: every run's record, the servers not re-run, and the table's summary. */
export interface ScenarioOutcome {
  name: string;
  title: string;
  runs: RunRecord[];
  /** Servers not re-run after a capacity failure, and why. */
  skipped: Partial<Record<ServerKind, string>>;
  summary: Summary;
  seconds: number;
}

/** The whole --json file. */
export interface BenchResults {
  environment: Environment;
  totalSeconds: number;
  scenarios: ScenarioOutcome[];
}

/** Writes the results so far to `file` (relative to the working directory). */
export async function writeJson(
  file: string,
  environment: Environment,
  scenarios: ScenarioOutcome[],
  started: number,
): Promise<void> {
  const path = fileURLToPath(new URL(file, `file://${Deno.cwd()}/`));
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true });
  const data: BenchResults = {
    environment,
    totalSeconds: (nowMs() - started) / 1000,
    scenarios,
  };
  await Deno.writeTextFile(path, JSON.stringify(data, null, 2) + "\n");
}
