/**
 * bench/servers/deno_floor.ts: bench/peers/deno_floor.ts, the idle-memory
 * floor of a Deno server: an accept loop and one pending 128-byte read per
 * connection. It relays nothing, so it stands beside chat_server.ts in the
 * idle scenario only.
 */

import { type RunningServer, startAnnounced } from "./process.ts";

const SCRIPT = "bench/peers/deno_floor.ts";

/** deno run -N bench/peers/deno_floor.ts (port 0); waits for its readiness line. */
export async function startDenoFloor(): Promise<RunningServer> {
  const args = ["run", "-N", SCRIPT];
  return await startAnnounced(
    "floor",
    "deno_floor",
    Deno.execPath(),
    args,
    `deno ${args.join(" ")}`,
  );
}
