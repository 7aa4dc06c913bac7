/**
 * One step of states.ts --demo: the row that describes it (what it does,
 * the textbook picture of what should happen, which sockets to look at),
 * and running it: its calls, then /proc polled until both ends settle, the
 * result as data (a DemoStep, what --json prints and the timeline draws,
 * with each end's kernel timer and the error a call got). A row that needs
 * libc where FFI is unavailable is skipped, saying why. Also the small
 * helpers the rows share: both ends of the current connection, an error's
 * code, queue sizes for notes.
 *
 * @module
 */

import type { Lab } from "./lab.ts";
import { type End, expectedOf, isSegment, type PictureRow } from "./picture.ts";
import { connectionEnd, type Observation, observe, type WatchedEnd } from "./probes.ts";
import { findConnection, type TcpSocket } from "./proc_net_tcp.ts";
import { byLifecycle, type StateName } from "./tcp_states.ts";
import { type DemoStep, type EndTimer, timelineOf } from "./timeline.ts";

/**
 * What a step's calls returned: byte counts (null: read() met the peer's
 * FIN), and under the key `error` the code of the error a call got
 * (`ECONNRESET`), which becomes DemoStep.error.
 */
export type Facts = Record<string, number | string | null>;

/** What a step's note may quote: what its calls returned, and what /proc showed. */
export interface Outcome {
  /** The sockets the step used. */
  lab: Lab;
  /** What the step's calls returned. */
  facts: Facts;
  /** The last snapshot of the kernel's table read during the step. */
  sockets: TcpSocket[];
  /** Each end's states as /proc showed them during the step, in the order first seen. */
  observed: Record<End, StateName[]>;
}

/** One row of the demo: what it does, what the textbook says happens, what to look for. */
export interface Step {
  /** A short stable name, DemoStep.id. */
  id: string;
  /** The scene it belongs to, DemoStep.scene. */
  scene: string;
  /** What the step does, in a line. */
  title: string;
  /** The step's calls, made before /proc is read; returns numbers its note quotes. */
  act?: (lab: Lab) => Facts | void | Promise<Facts | void>;
  /** The textbook picture: the segments sent, and the states each end should reach. */
  picture: readonly PictureRow[];
  /** Which socket stands for each end in /proc. None: only explained, nothing staged. */
  watch?: (lab: Lab) => Record<End, WatchedEnd>;
  /** States at which polling stops, per end (default: the last the picture expects). */
  until?: Partial<Record<End, StateName[]>>;
  /** What the step does through libc (FFI); without libc it is skipped, and says why. */
  needsLibc?: string;
  /** The end whose call's error the step's `error` fact is. */
  errorAt?: End;
  /** The step's explanation, which may quote its facts and what /proc showed. */
  note: (outcome: Outcome) => string;
  /** Run once /proc has been read (and the step printed): closes what the step left. */
  cleanUp?: (lab: Lab) => void | Promise<void>;
}

const NOTHING_SEEN: Observation = {
  observed: { client: [], server: [] },
  sockets: [],
  last: { client: null, server: null },
};

/**
 * Runs one row: its calls, then /proc until both ends settle. Returns the
 * step as data. A row that needs libc where there is none is not run: its
 * note says why, and nothing is marked observed.
 */
export async function runStep(step: Step, lab: Lab): Promise<DemoStep> {
  const skipped = step.needsLibc && typeof lab.libc === "string"
    ? `${step.needsLibc} needs libc: ${lab.libc}`
    : null;
  const facts = skipped ? {} : (await step.act?.(lab)) ?? {};
  const expected = expectedOf(step.picture);
  const ends = skipped ? undefined : step.watch?.(lab);
  const { observed, sockets, last } = ends
    ? await observe(ends, {
      client: step.until?.client ?? [expected.client.at(-1)!],
      server: step.until?.server ?? [expected.server.at(-1)!],
    })
    : NOTHING_SEEN;
  const timers = { client: timerOf(last.client), server: timerOf(last.server) };
  const error = typeof facts.error === "string" ? facts.error : null;
  return {
    id: step.id,
    scene: step.scene,
    title: step.title,
    segments: step.picture.filter(isSegment),
    expected,
    observed,
    addresses: { client: ends?.client.address ?? null, server: ends?.server.address ?? null },
    timers,
    error,
    errorEnd: error ? step.errorAt ?? null : null,
    skipped,
    note: skipped
      ? `Skipped, so nothing here is observed: ${skipped}.`
      : step.note({ lab, facts, sockets, observed }),
    timeline: timelineOf(step.picture, observed, timers),
  };
}

/** An end's timer, from its last entry in /proc; null when it had none. */
function timerOf(socket: TcpSocket | null): EndTimer | null {
  if (!socket) return null;
  const { state, timer, timerSeconds, retransmits } = socket;
  return { state, timer, timerSeconds, retransmits };
}

/** The code of the error `call` throws (`ECONNRESET`), or null when it succeeds. */
export async function errorOf(call: () => Promise<unknown>): Promise<string | null> {
  try {
    await call();
    return null;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" ? code : (err as Error).name;
  }
}

const MIB = 1024 * 1024;

/** A readable size: 3919467 -> "3.7 MiB"; "?" when unknown. */
export function mib(bytes: number | string | null | undefined): string {
  return typeof bytes === "number" ? `${(bytes / MIB).toFixed(1)} MiB` : "?";
}

/** How much one end of `conn` has queued, as /proc showed it. */
export function queueOf(
  sockets: TcpSocket[],
  conn: Deno.TcpConn,
  queue: "sendQueue" | "recvQueue",
): string {
  return mib(findConnection(sockets, conn.localAddr, conn.remoteAddr)?.[queue]);
}

/** Both ends of the lab's current connection, as the steps about it watch them. */
export function bothEnds(lab: Lab): Record<End, WatchedEnd> {
  return { client: connectionEnd(lab.pair.client), server: connectionEnd(lab.pair.server) };
}

/** Every state /proc showed in any step, and the expected ones it never showed. */
export function summarize(steps: DemoStep[]): { observed: StateName[]; notObserved: StateName[] } {
  const all = (key: "expected" | "observed") =>
    byLifecycle(steps.flatMap((step) => [...step[key].client, ...step[key].server]));
  // CLOSED is no entry at all: /proc never "shows" it.
  const observed = all("observed").filter((s) => s !== "CLOSED");
  return {
    observed,
    notObserved: all("expected").filter((s) => s !== "CLOSED" && !observed.includes(s)),
  };
}
