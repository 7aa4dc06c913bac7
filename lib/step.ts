/**
 * One step of states.ts --demo: the row that describes it (what it does,
 * the textbook picture of what should happen, which sockets to look at),
 * and running it: its calls, then /proc polled until both ends settle, the
 * result as data (a DemoStep, what --json prints and the timeline draws).
 *
 * @module
 */

import type { Lab } from "./lab.ts";
import { type End, expectedOf, isSegment, type PictureRow } from "./picture.ts";
import { observe, type WatchedEnd } from "./probes.ts";
import type { TcpSocket } from "./proc_net_tcp.ts";
import { byLifecycle, type StateName } from "./tcp_states.ts";
import { type DemoStep, timelineOf } from "./timeline.ts";

/** Numbers a step's calls returned (byte counts; null: read() met the peer's FIN). */
export type Facts = Record<string, number | null>;

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
  /** The step's explanation, which may quote its facts and what /proc showed. */
  note: (outcome: Outcome) => string;
  /** Run once /proc has been read (and the step printed): closes what the step left. */
  cleanUp?: (lab: Lab) => void | Promise<void>;
}

/** Runs one row: its calls, then /proc until both ends settle. Returns the step as data. */
export async function runStep(step: Step, lab: Lab): Promise<DemoStep> {
  const facts = (await step.act?.(lab)) ?? {};
  const expected = expectedOf(step.picture);
  const ends = step.watch?.(lab);
  const { observed, sockets } = ends
    ? await observe(ends, {
      client: step.until?.client ?? [expected.client.at(-1)!],
      server: step.until?.server ?? [expected.server.at(-1)!],
    })
    : { observed: { client: [], server: [] }, sockets: [] };
  return {
    id: step.id,
    scene: step.scene,
    title: step.title,
    segments: step.picture.filter(isSegment),
    expected,
    observed,
    addresses: { client: ends?.client.address ?? null, server: ends?.server.address ?? null },
    note: step.note({ lab, facts, sockets, observed }),
    timeline: timelineOf(step.picture, observed),
  };
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
