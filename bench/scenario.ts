/**
 * bench/scenario.ts: what a scenario is to the bench: the rows of its table
 * (metric key, label, format, the target), how to do one run of one
 * server, and the record a run returns. Each scenario is one file in
 * scenarios/, listed in scenarios/index.ts.
 */

import { type HistogramData } from "./common/histogram.ts";
import { type Options } from "./options.ts";
import { type ServerKind } from "./servers/compared.ts";
import { type FloorRelayBuild } from "./servers/floor_relay.ts";
import { type TrafficResult } from "./load/group.ts";
import { type LoadGenBuild } from "./load/c_load.ts";

/** A run's figures by metric key (the `--json` `metrics`); rows pick theirs by key. */
export type Metrics = Record<string, number>;

/** Raw data of a traffic run, beside its metrics in the --json output. */
export interface TrafficRaw {
  stoppedBy: TrafficResult["stoppedBy"];
  histogram: HistogramData;
}

/** Raw data of one cluster column and traffic pattern. */
export interface ClusterRaw extends TrafficRaw {
  /** The command line of each chat_server instance. */
  commands: string[];
  histogramSame?: HistogramData;
  histogramCross?: HistogramData;
}

/** Raw figures of a run: one traffic run, or cluster ones by metric prefix (`k2`, `k2.flood`). */
export type RawFigures = TrafficRaw | Record<string, ClusterRaw>;

/** One run of one server in one scenario. */
export interface RunRecord {
  server: ServerKind;
  run: number;
  metrics: Metrics;
  notes: string[];
  /** The server could not hold the scenario's clients: not re-run. */
  capacityFailure?: string;
  /** Anything else that went wrong (the run's figures are missing). */
  error?: string;
  raw?: RawFigures;
}

export function newRecord(server: ServerKind, run: number): RunRecord {
  return { server, run, metrics: {}, notes: [] };
}

/** Copies `metrics` into `record.metrics`, each key as `prefix.key`. */
export function addPrefixed(record: RunRecord, prefix: string, metrics: Metrics): void {
  for (const [key, value] of Object.entries(metrics)) record.metrics[`${prefix}.${key}`] = value;
}

/** One of the targets: its text in the table, and the test of chat_server's median. */
export interface Target {
  text: string;
  ok: (v: number) => boolean;
  /** Met only when chat_server's median is also at or ahead of the row's best peer. */
  vsBestPeer?: boolean;
}

/** The target "at or ahead of the best peer" (and `ok`, when given, on chat's own figure). */
export function aheadOfBestPeer(
  text = "<= best peer",
  ok: (v: number) => boolean = () => true,
): Target {
  return { text, ok, vsBestPeer: true };
}

/** One line of a scenario's table. */
export interface Row {
  key: string;
  label: string;
  fmt: (v: number) => string;
  target?: Target;
  /** No chat/ncat ratio for this row (counts that are usually 0, flags). */
  noRatio?: boolean;
}

/** A column of a one-server table (e.g. 1, 2, 3 instances): rows whose key starts `prefix.`. */
export interface Column {
  prefix: string;
  label: string;
}

export interface Scenario {
  name: string;
  title: string;
  servers: ServerKind[];
  rows: Row[];
  /** Runs per server (startup uses its own sample count). */
  runs: number;
  run(server: ServerKind, index: number): Promise<RunRecord>;
  /** Printed under the table. */
  notes?: string[];
  /**
   * One column per variant instead of per server (one server only): the rows'
   * keys start with `prefix.`, rows with the same rest share a line.
   */
  columns?: Column[];
  /** The progress line of one run, when the default one does not fit. */
  summarize?(record: RunRecord): string;
}

/** What every scenario is built with. */
export interface Context {
  options: Options;
  /** Workers for a scenario: --workers, else the scenario's default. */
  workers(byDefault: number): number;
  chat: { script: string; denoFlags: string[] };
  /** bench/floor_relay.c built (once, on first use), or why it could not be. */
  floorRelay(): Promise<FloorRelayBuild>;
  /** bench/loadgen.c, the C load generator, built (once, on first use), or why it could not be. */
  loadGen(): Promise<LoadGenBuild>;
}

/** The machine's CPU count: shares of "all cores" are of this. */
export const CPUS = navigator.hardwareConcurrency;

export const MB = 1024 * 1024;
