/**
 * bench/servers/redis.ts: the redis-server that the cluster scenario's
 * chat_server.ts --redis instances share: a throwaway one per run, on a free
 * loopback port, writing nothing to disk. Never installed by the bench.
 */

import { type Availability, commandOutput } from "./command.ts";
import { type RunningServer, startOnFreePort } from "./process.ts";

/** redis-server with no persistence, only warnings logged; waits until its port is in LISTEN. */
export async function startRedis(): Promise<RunningServer> {
  return await startOnFreePort(
    "redis",
    "redis-server",
    (port) => [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--loglevel",
      "warning",
    ],
    (args) => `redis-server ${args.map((a) => a || "''").join(" ")}`,
  );
}

/** redis-server's version, or why the cluster scenario cannot run. */
export async function probeRedis(): Promise<Availability> {
  const { code, text } = await commandOutput("redis-server", ["--version"], 5000);
  const match = /v=(\S+)/.exec(text);
  if (code === 0 && match) return { ok: true, version: match[1] };
  return {
    ok: false,
    reason: code === -1
      ? "redis-server is not installed"
      : `redis-server --version: ${text.trim()}`,
  };
}
