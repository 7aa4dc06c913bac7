/**
 * bench/servers/node_relay.ts: bench/peers/node_relay.mjs, a room in about
 * 20 lines of Node `net` (each read's whole lines written to every other
 * client, one write each, no queues), run with `node` when there is one.
 */

import { type Availability, commandOutput } from "./command.ts";
import { type RunningServer, startAnnounced } from "./process.ts";

const SCRIPT = "bench/peers/node_relay.mjs";

/** node's version, or why the Node column is skipped (never installed by the bench). */
export async function probeNode(): Promise<Availability> {
  const { code, text } = await commandOutput("node", ["--version"], 5000);
  if (code === 0 && /^v\d/.test(text.trim())) return { ok: true, version: text.trim() };
  return {
    ok: false,
    reason: code === -1 ? "node is not installed" : `node --version: ${text.trim()}`,
  };
}

/** node bench/peers/node_relay.mjs (port 0); waits for its readiness line. */
export async function startNodeRelay(): Promise<RunningServer> {
  return await startAnnounced("node", "node_relay", "node", [SCRIPT], `node ${SCRIPT}`);
}
