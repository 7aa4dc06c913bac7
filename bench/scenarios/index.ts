/**
 * bench/scenarios/index.ts: every scenario the bench knows, in the order it
 * runs them. A new scenario is a new file in this folder and one line here.
 */

import { type Context, type Scenario } from "../scenario.ts";
import { clusterScenario } from "./cluster.ts";
import { flood5000, floodLimited } from "./flood.ts";
import { flood1k } from "./flood_big.ts";
import { idleScenario } from "./idle.ts";
import { paced100, paced1000 } from "./paced.ts";
import { paced1000Tls, paced100Tls } from "./paced_tls.ts";
import { slowReaderScenario } from "./slow_reader.ts";
import { startupScenario } from "./startup.ts";

const SCENARIOS: Record<string, (ctx: Context) => Scenario> = {
  "startup": startupScenario,
  "paced-1000": paced1000,
  "paced-100": paced100,
  "paced-1000-tls": paced1000Tls,
  "paced-100-tls": paced100Tls,
  "flood-5000": flood5000,
  "flood-limited": floodLimited,
  "flood-1k": flood1k,
  "idle": idleScenario,
  "slow-reader": slowReaderScenario,
  "cluster": clusterScenario,
};

/** The names `--scenario` accepts, in running order. */
export const SCENARIO_NAMES = Object.keys(SCENARIOS);

/** The scenarios `names` (full names, from SCENARIO_NAMES), built for this bench. */
export function buildScenarios(ctx: Context, names: string[]): Scenario[] {
  return names.map((name) => SCENARIOS[name](ctx));
}
