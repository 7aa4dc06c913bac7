/**
 * bench/scenarios/cluster_roster.ts: waiting until the instances of a
 * chat_server.ts --redis room agree on who is in it, by asking each `/who`
 * through a probe client of its own.
 */

import { readLines } from "../common/lines.ts";
import { delay, nowMs } from "../common/time.ts";
import { type RunningServer } from "../servers/process.ts";

/** The head count in `/who`'s reply and in the welcome: `* online (N): ...`. */
const ONLINE = /^\* online \((\d+)\)/;

/** A raw client of one instance, for asking it `/who` (how many it knows of). */
class Probe {
  readonly #conn: Deno.TcpConn;
  readonly #lines: string[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    readLines(conn.readable, (line) => {
      this.#lines.push(line);
      this.#wake?.();
    }).then(() => {
      this.#closed = true;
      this.#wake?.();
    });
  }

  static async open(host: string, port: number): Promise<Probe> {
    return new Probe(await Deno.connect({ hostname: host, port }));
  }

  /** The next line matching `pattern` (others are skipped), or null at `deadline` or EOF. */
  async next(pattern: RegExp, deadline: number): Promise<RegExpExecArray | null> {
    while (true) {
      const line = this.#lines.shift();
      if (line !== undefined) {
        const match = pattern.exec(line);
        if (match) return match;
        continue;
      }
      if (this.#closed || nowMs() >= deadline) return null;
      await this.#waitForLine(deadline);
    }
  }

  #waitForLine(deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, Math.max(0, deadline - nowMs()));
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  /** The room's head count as this instance sees it, or NaN. */
  async count(deadline: number): Promise<number> {
    await this.#conn.write(new TextEncoder().encode("/who\n")).catch(() => {});
    const match = await this.next(ONLINE, deadline);
    return match ? Number(match[1]) : NaN;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * Waits until every instance counts all `clients` plus the probes in its
 * `/who` (the roster crossed Redis everywhere): one probe client per
 * instance asks every 200 ms. Returns the seconds it took, or throws with
 * the counts seen at the deadline.
 */
export async function waitForRoster(
  instances: RunningServer[],
  clients: number,
  timeoutMs: number,
): Promise<number> {
  const started = nowMs();
  const deadline = started + timeoutMs;
  const probes: Probe[] = [];
  try {
    for (const instance of instances) {
      const probe = await Probe.open(instance.host, instance.port);
      probes.push(probe);
      // Its welcome carries a head count too: skip it, so a reply is a reply.
      await probe.next(ONLINE, deadline);
    }
    const wanted = clients + probes.length;
    let counts: number[] = [];
    while (nowMs() < deadline) {
      counts = await Promise.all(probes.map((p) => p.count(deadline)));
      if (counts.every((n) => n === wanted)) return (nowMs() - started) / 1000;
      await delay(200);
    }
    throw new Error(
      `instances still disagree after ${timeoutMs / 1000} s: /who counts ` +
        `${counts.join(", ")} (want ${wanted}: ${clients} clients + ${probes.length} probes)`,
    );
  } finally {
    for (const probe of probes) probe.close();
  }
}
