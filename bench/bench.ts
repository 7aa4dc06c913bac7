/**
 * bench/bench.ts: `deno task bench`, chat_server.ts measured side by side
 * with its peers (ncat --chat, a Node relay, a Go server in the Go book's
 * chat shape) in the same run. The entry point:
 * flags (options.ts), which scenarios (scenarios/index.ts), the run loop,
 * and the tables (report/table.ts). See bench/README.md for what each
 * scenario does and what each figure means.
 *
 *   deno task bench [--quick] [--scenario NAME]... [--runs N] [--server chat,ncat,node,go|all|both]
 *                   [--json FILE] [--workers W] [--chat-script FILE] [--deno-flag FLAG]...
 *
 * Each scenario runs its servers alternately (chat, ncat, node, go, then in
 * reverse),
 * `--runs` times, then prints its table. Every run is bounded in time; a
 * server that cannot hold a scenario's clients is not re-run for that
 * scenario. Progress goes to stderr, tables to stdout. Loopback only.
 */

import { cleanupOnSignal, killAllTracked } from "./common/children.ts";
import { nowMs, withTimeout } from "./common/time.ts";
import { environment, headerLine } from "./environment.ts";
import { buildLoadGen, type LoadGenBuild, removeLoadGen } from "./load/c_load.ts";
import { type Options, parseOptions, USAGE } from "./options.ts";
import { progress, summarizeRun } from "./report/progress.ts";
import { summarize } from "./report/summary.ts";
import { printTable } from "./report/table.ts";
import { type ScenarioOutcome, writeJson } from "./results.ts";
import { type Context, type RunRecord, type Scenario } from "./scenario.ts";
import { buildScenarios, SCENARIO_NAMES } from "./scenarios/index.ts";
import { type Availability } from "./servers/command.ts";
import { ensureServer, PEERS, SERVER_LABEL, type ServerKind } from "./servers/compared.ts";
import { buildFloorRelay, type FloorRelayBuild, removeFloorRelay } from "./servers/floor_relay.ts";
import { probeRedis } from "./servers/redis.ts";

/** The longest one run of one server may take before it counts as failed. */
const RUN_TIMEOUT_MS = 15 * 60_000;

async function main(args: string[]): Promise<number> {
  let options: Options | undefined;
  try {
    options = parseOptions(args, SCENARIO_NAMES);
  } catch (err) {
    // A usage error: one line saying what is wrong, then the whole synopsis.
    console.error(`error: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (!options) return 0;
  const removeSignals = cleanupOnSignal();
  let floorRelay: Promise<FloorRelayBuild> | undefined;
  let loadGen: Promise<LoadGenBuild> | undefined;
  const ctx: Context = {
    options,
    workers: (byDefault) => options.workers ?? byDefault,
    chat: { script: options.chatScript, denoFlags: options.denoFlags },
    floorRelay: () => (floorRelay ??= buildFloorRelay()),
    loadGen: () => (loadGen ??= buildLoadGen()),
  };
  SERVER_LABEL.chat = options.chatScript.split("/").pop()!;
  const started = nowMs();
  try {
    const peers = await dropMissingPeers(options);
    if (options.servers.length === 0) throw new Error("no server left to measure");
    const redis = await dropClusterIfNoRedis(options);
    const env = await environment(options, peers, redis);
    console.log(headerLine(options, env));
    const outcomes: ScenarioOutcome[] = [];
    for (const scenario of buildScenarios(ctx, options.scenarios)) {
      outcomes.push(await runScenario(scenario, options.quick));
      if (options.json) await writeJson(options.json, env, outcomes, started);
    }
    const total = (nowMs() - started) / 1000;
    console.log(
      `\nTotal time ${total.toFixed(0)} s; load average now ` +
        Deno.loadavg().map((v) => v.toFixed(2)).join(" "),
    );
    if (options.json) {
      await writeJson(options.json, env, outcomes, started);
      console.log(`raw figures: ${options.json}`);
    }
    return 0;
  } finally {
    killAllTracked();
    removeSignals();
    const built = await floorRelay;
    if (built) await removeFloorRelay(built);
    const generator = await loadGen;
    if (generator) await removeLoadGen(generator);
  }
}

/**
 * The peers to be measured (ncat, node, go), each installed or built if need
 * be (servers/compared.ts ensureServer); without one, its column goes.
 */
async function dropMissingPeers(
  options: Options,
): Promise<Partial<Record<ServerKind, Availability>>> {
  const found: Partial<Record<ServerKind, Availability>> = {};
  for (const peer of PEERS.filter((s) => options.servers.includes(s))) {
    const availability = found[peer] = await ensureServer(peer, progress);
    if (!availability.ok) {
      console.log(`note: the ${peer} column is skipped: ${availability.reason}`);
      options.servers = options.servers.filter((s) => s !== peer);
    }
  }
  return found;
}

/** redis-server, when the cluster scenario is to run; without it, the scenario goes. */
async function dropClusterIfNoRedis(options: Options): Promise<Availability | undefined> {
  if (!options.scenarios.includes("cluster")) return undefined;
  const redis = await probeRedis();
  if (!redis.ok) {
    console.log(`note: the cluster scenario is skipped: ${redis.reason}`);
    options.scenarios = options.scenarios.filter((s) => s !== "cluster");
  }
  return redis;
}

/** Runs a scenario's runs, alternating the servers' order, then prints its table. */
async function runScenario(scenario: Scenario, quick: boolean): Promise<ScenarioOutcome> {
  const started = nowMs();
  const runs: RunRecord[] = [];
  const skipped: Partial<Record<ServerKind, string>> = {};
  progress(`\n== ${scenario.title}`);
  for (let i = 0; i < scenario.runs; i++) {
    // chat, ncat, then ncat, chat: neither always runs on the machine the other just warmed.
    const order = i % 2 === 0 ? scenario.servers : [...scenario.servers].reverse();
    for (const server of order) {
      if (skipped[server]) continue;
      const t = nowMs();
      const record = await runOnce(scenario, server, i + 1);
      runs.push(record);
      const took = ((nowMs() - t) / 1000).toFixed(1);
      progress(
        `  run ${i + 1}/${scenario.runs} ${SERVER_LABEL[server]} (${took} s): ` +
          summarizeRun(scenario, record),
      );
      if (record.capacityFailure) {
        skipped[server] = `run ${i + 1}: ${record.capacityFailure}; not re-run`;
      }
    }
  }
  const outcome: ScenarioOutcome = {
    name: scenario.name,
    title: scenario.title,
    runs,
    skipped,
    summary: summarize(scenario, runs),
    seconds: (nowMs() - started) / 1000,
  };
  printTable(scenario, outcome, quick);
  return outcome;
}

/** One run; a failure becomes a record with its error, after killing what the run left. */
async function runOnce(scenario: Scenario, server: ServerKind, run: number): Promise<RunRecord> {
  try {
    return await withTimeout(scenario.run(server, run), RUN_TIMEOUT_MS);
  } catch (err) {
    killAllTracked(); // whatever the failed run left behind
    return {
      server,
      run,
      metrics: {},
      notes: [],
      error: err instanceof Error ? err.message : String(err),
    };
  }
}

if (import.meta.main) {
  main(Deno.args).then((code) => Deno.exit(code), (err) => {
    killAllTracked();
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  });
}
