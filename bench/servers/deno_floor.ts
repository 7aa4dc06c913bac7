/**
 * bench/servers/deno_floor.ts: bench/peers/deno_floor.ts, the idle-memory
 * floor of a Deno server: an accept loop and one pending 128-byte read per
 * connection. It relays nothing, so it stands beside chat_server.ts in the
 * idle scenario only. With `--notice` (the "floor+1" column) it also tells
 * every client one line once the connects have stopped, as a room tells its
 * members who joined: what a single later write to each client costs. With
 * `--relay` it is paced-100's Deno floor relay (see the script).
 */

import { type RunningServer, startAnnounced } from "./process.ts";

const SCRIPT = "bench/peers/deno_floor.ts";

/** What the floor does beyond holding its clients: nothing, one notice, or relay. */
export type DenoFloorMode = "hold" | "notice" | "relay";

/** deno run -N bench/peers/deno_floor.ts [--notice|--relay] (port 0); waits for its readiness line. */
export async function startDenoFloor(mode: DenoFloorMode): Promise<RunningServer> {
  const args = ["run", "-N", SCRIPT, ...(mode === "hold" ? [] : [`--${mode}`])];
  return await startAnnounced(
    mode === "notice" ? "floor1" : "floor",
    "deno_floor",
    Deno.execPath(),
    args,
    `deno ${args.join(" ")}`,
  );
}
