/**
 * bench/common/ports.ts: loopback ports for servers that cannot report the
 * port they bound (ncat, redis-server): pick a free one, then watch
 * /proc/net/tcp for it to be in LISTEN without connecting to it (a probe
 * connection would be a client the server counts).
 */

import { delay } from "./time.ts";

/** Waits until 127.0.0.1:port (or any address) is in LISTEN, without connecting. */
export async function waitForListen(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const pattern = new RegExp(`:${hex} [0-9A-F]{8,32}:0000 0A `);
  while (Date.now() < deadline) {
    for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      const text = await Deno.readTextFile(table).catch(() => "");
      if (pattern.test(text)) return true;
    }
    await delay(10);
  }
  return false;
}

/** A port that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}
