/**
 * bench/servers/floor_relay.ts: bench/floor_relay.c, the cheapest room a
 * server can be (one thread, epoll, every read written to every other client),
 * built with `cc -O2` once per bench and run as paced-100's floor.
 */

import { buildC, type CBuild, removeC } from "../common/c_build.ts";
import { type RunningServer, startAnnounced } from "./process.ts";

export type FloorRelayBuild = CBuild;

/** Builds bench/floor_relay.c (see common/c_build.ts). */
export function buildFloorRelay(): Promise<FloorRelayBuild> {
  return buildC("floor_relay");
}

/** Removes what buildFloorRelay() built. */
export const removeFloorRelay: (build: FloorRelayBuild) => Promise<void> = removeC;

/** The floor relay built by buildFloorRelay(); waits for its readiness line. */
export async function startFloorRelay(path: string): Promise<RunningServer> {
  return await startAnnounced("floor", "floor_relay", path, [], "bench/floor_relay.c (cc -O2)");
}
