/**
 * bench/servers/deno_floor.ts: bench/peers/deno_floor.ts, the idle-memory
 * floor of a Deno server: an accept loop and one pending 128-byte read per
 * connection. It relays nothing, so it stands beside chat_server.ts in the
 * idle scenario only. With `--notice` (the "floor+1" column) it also tells
 * every client one line once the connects have stopped, as a room tells its
 * members who joined: what a single later write to each client costs.
 */

import { type RunningServer, startAnnounced } from "./process.ts";

const SCRIPT = "bench/peers/deno_floor.ts";

/** deno run -N bench/peers/deno_floor.ts [--notice] (port 0); waits for its readiness line. */
export async function startDenoFloor(notice: boolean): Promise<RunningServer> {
  const args = ["run", "-N", SCRIPT, ...(notice ? ["--notice"] : [])];
  return await startAnnounced(
    notice ? "floor1" : "floor",
    "deno_floor",
    Deno.execPath(),
    args,
    `deno ${args.join(" ")}`,
  );
}
