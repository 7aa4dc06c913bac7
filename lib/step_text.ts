/**
 * One demo step as text: its number and title, its segments as arrows, and
 * for each end its address, the states /proc showed (with the textbook's
 * when they differ) and the kernel's timer on the last one, the error a call
 * got, then its note, wrapped.
 *
 * @module
 */

import { paint } from "../utils.ts";
import { type End, ENDS } from "./picture.ts";
import { formatTimer } from "./state_table.ts";
import { STATE_COLOURS } from "./tcp_states.ts";
import { type DemoStep, formatLeft } from "./timeline.ts";

/** The lines of step number `index`, headed by its scene when it differs from `previous`'s. */
export function formatStep(step: DemoStep, index: number, previous?: DemoStep): string[] {
  const lines: string[] = [];
  if (step.scene !== previous?.scene) lines.push(`\n== ${step.scene}`);
  lines.push(`\n${String(index).padStart(2)}. ${step.title}`);
  for (const { from, segment } of step.segments) {
    const label = ` ${segment} `;
    const body = label + "-".repeat(Math.max(2, 30 - label.length));
    lines.push(
      from === "client" ? `      client ---${body}> server` : `      client <--${body}- server`,
    );
  }
  const width = Math.max(...ENDS.map((end) => (step.addresses[end] ?? "-").length));
  for (const end of ENDS) {
    const seen = step.observed[end];
    const states = seen.length
      ? seen.map((s) => paint(STATE_COLOURS[s], s)).join(" -> ") + timerText(step, end)
      : paint("yellow", step.skipped ? "skipped" : "not observed");
    const differs = step.expected[end].join() !== seen.join();
    const textbook = differs ? `  (textbook: ${step.expected[end].join(" -> ")})` : "";
    lines.push(`      ${end} ${(step.addresses[end] ?? "-").padEnd(width)}  ${states}${textbook}`);
  }
  if (step.error && step.errorEnd) {
    lines.push(`      the ${step.errorEnd}'s call failed: ${paint("red", step.error)}`);
  }
  for (const line of wrap(step.note, 72)) lines.push(`      ${line}`);
  return lines;
}

/**
 * The kernel's timer on the end's last state, read from /proc: ` (59.8 s
 * left)` for TIME_WAIT's 2MSL, ` (timer: retransmit 0.9 s)` and the like; ""
 * without. A closed socket's FIN_WAIT_2 runs on the same kind of timer, for
 * tcp_fin_timeout: said so, not taken for 2MSL.
 */
function timerText(step: DemoStep, end: End): string {
  const timer = step.timers[end];
  if (!timer?.timer || timer.state !== step.observed[end].at(-1)) return "";
  if (timer.timer === "timewait" && timer.timerSeconds !== null) {
    const which = timer.state === "TIME_WAIT" ? "" : "tcp_fin_timeout: ";
    return ` (${which}${formatLeft(timer.timerSeconds)})`;
  }
  return ` (timer: ${formatTimer(timer)})`;
}

/** `text` in lines of at most `width` characters, broken at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}
