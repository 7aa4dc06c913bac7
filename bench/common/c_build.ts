/**
 * bench/common/c_build.ts: building one of the bench's C programs
 * (loadgen.c, floor_relay.c) with `cc -O2` into a temporary directory, once
 * per bench, and removing it at the end; or why it could not be built.
 */

import { commandOutput } from "../servers/command.ts";
import { ROOT } from "./paths.ts";

/** A built program's path, or why there is none. */
export type CBuild = { ok: true; path: string } | { ok: false; reason: string };

/** Builds `bench/<name>.c` into a temporary directory; says why not (no compiler, an error). */
export async function buildC(name: string): Promise<CBuild> {
  const dir = await Deno.makeTempDir({ prefix: `${name}_` });
  const path = `${dir}/${name}`;
  const { code, text } = await commandOutput(
    "cc",
    ["-O2", "-o", path, `${ROOT}bench/${name}.c`],
    60_000,
  );
  if (code === 0) return { ok: true, path };
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const reason = code === -1
    ? "no C compiler (cc)"
    : `cc failed: ${text.trim().split("\n").slice(-1)[0]}`;
  return { ok: false, reason };
}

/** Removes what buildC() built. */
export async function removeC(build: CBuild): Promise<void> {
  if (!build.ok) return;
  await Deno.remove(build.path.slice(0, build.path.lastIndexOf("/")), { recursive: true })
    .catch(() => {});
}
