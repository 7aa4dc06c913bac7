/**
 * The demo's steps drawn as a textbook's two-column timeline: the client on
 * the left, the server on the right, each segment an arrow between them and,
 * in between, the states each end is in, each marked with how it is known
 * ("observed" only if /proc showed it during that step).
 *
 * @module
 */

import { paint } from "../utils.ts";
import { type End, ENDS, expectedOf, isSegment, type PictureRow, type Segment } from "./picture.ts";
import type { TimerKind } from "./proc_net_tcp.ts";
import { STATE_COLOURS, type StateName } from "./tcp_states.ts";

/**
 * How a drawn state is known. "observed": /proc showed it during the step.
 * "too fast to observe": /proc did not, but showed a later state of the same
 * end that the kernel cannot reach without passing through this one.
 * "not observed": neither. "no socket": CLOSED, the kernel has no such socket.
 */
export type Seen = "observed" | "too fast to observe" | "not observed" | "no socket";

/** A state in the timeline, with how it is known. */
export interface DrawnState {
  /** The state, by the notes' name. */
  state: StateName;
  /** How it is known: observed in /proc, or not. */
  seen: Seen;
  /** An observed TIME_WAIT: the seconds its 2MSL timer had left, as /proc said. */
  secondsLeft?: number;
}

/** An end's timer in the kernel, from its last entry in /proc during the step. */
export interface EndTimer {
  /** The state the end was in when the timer was read. */
  state: StateName;
  /** The kernel's timer for it: "timewait" (2MSL), "retransmit", "keepalive", "probe". */
  timer: TimerKind | null;
  /** Seconds left until it fires, to 1/100 s; null without a timer. */
  timerSeconds: number | null;
  /** Unanswered retransmissions or zero-window probes so far. */
  retransmits: number;
}

/** One row of the drawn timeline (states.ts --demo), as data. */
export type TimelineRow =
  /** A segment on the wire, with its direction. */
  | { kind: "segment"; from: End; to: End; segment: string }
  /** The textbook's states at this point, each marked with how it is known. */
  | { kind: "states"; client?: DrawnState; server?: DrawnState }
  /** What /proc showed that the textbook picture of this step does not have. */
  | { kind: "instead"; client?: DrawnState; server?: DrawnState }
  /** TIME_WAIT's timer: the end holds the connection for 2MSL, then it is CLOSED. */
  | {
    kind: "timer";
    ends: End[];
    timer: string;
    then: string;
    /** The seconds each end's 2MSL timer had left, as /proc said. */
    secondsLeft: Partial<Record<End, number>>;
  };

/** One step of the demo, as data (states.ts --demo --json), and what drawTimeline draws. */
export interface DemoStep {
  /** A short stable name ("handshake", "fin-wait-1"): what tests and --json readers use. */
  id: string;
  /** The scene the step belongs to: one connection's story, or a trick to catch a state. */
  scene: string;
  /** What the step does, in a line. */
  title: string;
  /** The segments the step exchanges, as the textbook draws them. */
  segments: Segment[];
  /** The states the textbook predicts for each end, in order. */
  expected: Record<End, StateName[]>;
  /** The states /proc showed for each end during the step, in the order first seen. */
  observed: Record<End, StateName[]>;
  /** `HOST:PORT` of each end's socket (null when it has none). */
  addresses: Record<End, string | null>;
  /** Each end's kernel timer, from its last /proc entry in the step (null: no entry). */
  timers: Record<End, EndTimer | null>;
  /** The error a call of the step really got (`ECONNRESET`, `ECONNREFUSED`), or null. */
  error: string | null;
  /** The end whose call got `error`. */
  errorEnd: End | null;
  /** Why the step was not staged (no FFI here), or null: it was. */
  skipped: string | null;
  /** What the step shows, explained; may quote what its calls returned and /proc showed. */
  note: string;
  /** The step as the drawn timeline shows it: segments and marked states, in order. */
  timeline: TimelineRow[];
}

/**
 * A state a connection may skip on its way to a later one in the same
 * picture: CLOSING happens only when the two FINs cross; otherwise
 * FIN_WAIT_2 leads to TIME_WAIT. Seeing TIME_WAIT proves nothing about it.
 */
const SKIPPABLE: StateName[] = ["CLOSING"];

/**
 * The step's picture as timeline rows, each state marked with how it is
 * known from `observed` (what /proc showed in this step, and nothing else);
 * states /proc showed that the picture lacks are added as "instead" rows,
 * and an observed TIME_WAIT gets its 2MSL timer, with the seconds left that
 * `timers` (the ends' last /proc entries) give.
 */
export function timelineOf(
  picture: readonly PictureRow[],
  observed: Record<End, StateName[]>,
  timers: Record<End, EndTimer | null> = { client: null, server: null },
): TimelineRow[] {
  const left = secondsLeft(timers);
  const expected = expectedOf(picture);
  const seen = (end: End, state: StateName): Seen => {
    if (state === "CLOSED") return observed[end].includes("CLOSED") ? "no socket" : "not observed";
    if (observed[end].includes(state)) return "observed";
    const later = expected[end].slice(expected[end].indexOf(state) + 1);
    return !SKIPPABLE.includes(state) && later.some((s) => observed[end].includes(s))
      ? "too fast to observe"
      : "not observed";
  };
  const rows: TimelineRow[] = picture.map((row) => {
    if (isSegment(row)) return { kind: "segment", ...row };
    const drawn: TimelineRow = { kind: "states" };
    for (const end of ENDS) {
      const state = row[end];
      if (!state) continue;
      drawn[end] = { state, seen: seen(end, state) };
      if (state === "TIME_WAIT" && drawn[end].seen === "observed" && left[end] !== undefined) {
        drawn[end].secondsLeft = left[end];
      }
    }
    return drawn;
  });
  return [...rows, ...insteadRows(expected, observed), ...timerRows(expected, observed, left)];
}

/** The seconds each end's 2MSL timer had left, for the ends /proc showed in TIME_WAIT. */
function secondsLeft(timers: Record<End, EndTimer | null>): Partial<Record<End, number>> {
  const left: Partial<Record<End, number>> = {};
  for (const end of ENDS) {
    const timer = timers[end];
    if (timer?.timer === "timewait" && timer.timerSeconds !== null) {
      left[end] = timer.timerSeconds;
    }
  }
  return left;
}

/** What /proc showed that the picture does not have, side by side, one row per state. */
function insteadRows(
  expected: Record<End, StateName[]>,
  observed: Record<End, StateName[]>,
): TimelineRow[] {
  const extra = {
    client: observed.client.filter((s) => !expected.client.includes(s)),
    server: observed.server.filter((s) => !expected.server.includes(s)),
  };
  const rows: TimelineRow[] = [];
  for (let i = 0; i < Math.max(extra.client.length, extra.server.length); i++) {
    const drawn: TimelineRow = { kind: "instead" };
    for (const end of ENDS) {
      const state = extra[end][i];
      if (state) drawn[end] = { state, seen: state === "CLOSED" ? "no socket" : "observed" };
    }
    rows.push(drawn);
  }
  return rows;
}

/** The 2MSL timer, only for an end /proc really showed in the TIME_WAIT the picture ends in. */
function timerRows(
  expected: Record<End, StateName[]>,
  observed: Record<End, StateName[]>,
  secondsLeft: Partial<Record<End, number>>,
): TimelineRow[] {
  const timed = ENDS.filter((end) =>
    expected[end].at(-1) === "TIME_WAIT" && observed[end].includes("TIME_WAIT")
  );
  if (!timed.length) return [];
  const left: Partial<Record<End, number>> = {};
  for (const end of timed) if (secondsLeft[end] !== undefined) left[end] = secondsLeft[end];
  return [{
    kind: "timer",
    ends: timed,
    timer: "2MSL timer (60 s on Linux)",
    then: "CLOSED (not waited for)",
    secondsLeft: left,
  }];
}

/** `59.8 s left`: a timer's seconds as the demo shows them. */
export function formatLeft(seconds: number): string {
  return `${seconds.toFixed(1)} s left`;
}

const GUTTER = "    "; // room for the step number
const COLUMN = 38; // the server's column starts here
const ARROW = COLUMN - 6; // an arrow fits between "  |  " and "   |"

const SEEN_COLOURS: Record<Seen, "green" | "yellow" | "gray"> = {
  observed: "green",
  "too fast to observe": "yellow",
  "not observed": "yellow",
  "no socket": "gray",
};

/** Text as it takes room on screen, and as printed (with colour). */
interface Cell {
  plain: string;
  painted: string;
}

type Style = (format: Parameters<typeof paint>[0], text: string) => string;

/** `------- SYN ------->` or `<------ ACK -------`, the label centred. */
function arrow(row: Segment, style: Style): string {
  const label = style("bold", ` ${row.segment} `);
  const dashes = Math.max(4, ARROW - 1 - ` ${row.segment} `.length);
  const left = "-".repeat(Math.floor(dashes / 2));
  const right = "-".repeat(dashes - left.length);
  return row.from === "client" ? `${left}${label}${right}>` : `<${left}${label}${right}`;
}

/**
 * Draws demo steps as the two-column timeline of a textbook: the client on
 * the left, the server on the right, each segment an arrow between them and,
 * in between, the states each end is in, marked with how they are known
 * (DemoStep.timeline, which --json carries). Each step's first line starts
 * with its number in the demo. Only steps of `scenes` are drawn (default:
 * all); `colour: false` gives plain text even on a terminal.
 */
export function drawTimeline(
  steps: DemoStep[],
  options: { scenes?: string[]; colour?: boolean } = {},
): string[] {
  const style: Style = (format, text) => options.colour === false ? text : paint(format, text);
  const lines: string[] = [];
  // Whether an end has a socket at this point: its lifeline is drawn.
  const alive: Record<End, boolean> = { client: false, server: false };
  const lifeline = (end: End): Cell =>
    alive[end] ? { plain: "  |", painted: style("dim", "  |") } : { plain: "", painted: "" };
  let gutter = GUTTER;
  const push = (client: Cell, server: Cell) => {
    const gap = server.plain ? " ".repeat(Math.max(2, COLUMN - client.plain.length)) : "";
    lines.push((gutter + client.painted + gap + server.painted).trimEnd());
    gutter = GUTTER;
  };
  const stateCell = (drawn: DrawnState | undefined, end: End, prefix = ""): Cell => {
    if (!drawn) return lifeline(end);
    const left = drawn.secondsLeft === undefined ? "" : `, ${formatLeft(drawn.secondsLeft)}`;
    const mark = `(${drawn.seen}${left})`;
    return {
      plain: `${prefix}${drawn.state} ${mark}`,
      painted: `${prefix}${style(STATE_COLOURS[drawn.state], drawn.state)} ` +
        style(SEEN_COLOURS[drawn.seen], mark),
    };
  };
  const nothing: Cell = { plain: "", painted: "" };

  let scene: string | undefined;
  steps.forEach((step, index) => {
    if (options.scenes && !options.scenes.includes(step.scene)) return;
    if (step.scene !== scene) {
      scene = step.scene;
      alive.client = alive.server = false;
      lines.push("", `-- ${scene}`, "");
      lines.push(GUTTER + style("bold", "client".padEnd(COLUMN)) + style("bold", "server"));
    }
    gutter = `${String(index + 1).padStart(2)}  `;
    for (const row of step.timeline) {
      if (row.kind === "segment") {
        alive.client = alive.server = true;
        const line = `${style("dim", "  |")}  ${arrow(row, style)}   ${style("dim", "|")}`;
        push({ plain: "", painted: line }, nothing);
      } else if (row.kind === "timer") {
        const timerText = (end: End) => {
          const left = row.secondsLeft?.[end];
          return left === undefined ? row.timer : `2MSL timer: ${formatLeft(left)}`;
        };
        for (const mark of [":", "v"]) {
          const [client, server] = ENDS.map((end): Cell => {
            if (!row.ends.includes(end)) return lifeline(end);
            const text = mark === ":" ? timerText(end) : `then ${row.then}`;
            return {
              plain: `  ${mark}  ${text}`,
              painted: `${style("dim", `  ${mark}`)}  ${text}`,
            };
          });
          push(client, server);
        }
        for (const end of row.ends) alive[end] = false;
      } else {
        const prefix = row.kind === "instead" ? "instead: " : "";
        push(stateCell(row.client, "client", prefix), stateCell(row.server, "server", prefix));
        for (const end of ENDS) {
          const drawn = row[end];
          if (drawn) alive[end] = drawn.state !== "CLOSED";
        }
      }
    }
  });
  return lines;
}
