/**
 * bench/servers/floor_relay.ts: bench/floor_relay.c, the cheapest room a
 * server can be (one thread, epoll, every read written to every other client),
 * built with `cc -O2` once per bench and run as paced-100's floor.
 */

import { ROOT } from "../common/paths.ts";
import { commandOutput } from "./command.ts";
import { type RunningServer, startAnnounced } from "./process.ts";

export type FloorRelayBuild = { ok: true; path: string } | { ok: false; reason: string };

/** Builds bench/floor_relay.c into a temporary directory; says why not without a C compiler. */
export async function buildFloorRelay(): Promise<FloorRelayBuild> {
  const dir = await Deno.makeTempDir({ prefix: "floor_relay_" });
  const path = `${dir}/floor_relay`;
  const { code, text } = await commandOutput(
    "cc",
    ["-O2", "-o", path, `${ROOT}bench/floor_relay.c`],
    60_000,
  );
  if (code === 0) return { ok: true, path };
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const reason = code === -1
    ? "no C compiler (cc)"
    : `cc failed: ${text.trim().split("\n").slice(-1)[0]}`;
  return { ok: false, reason };
}

/** Removes what buildFloorRelay() built. */
export async function removeFloorRelay(build: FloorRelayBuild): Promise<void> {
  if (!build.ok) return;
  await Deno.remove(build.path.slice(0, build.path.lastIndexOf("/")), { recursive: true })
    .catch(() => {});
}

/** The floor relay built by buildFloorRelay(); waits for its readiness line. */
export async function startFloorRelay(path: string): Promise<RunningServer> {
  return await startAnnounced("floor", "floor_relay", path, [], "bench/floor_relay.c (cc -O2)");
}
