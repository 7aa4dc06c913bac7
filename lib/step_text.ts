/**
 * One demo step as text: its number and title, its segments as arrows, and
 * for each end its address and the states /proc showed (with the textbook's
 * when they differ), then its note, wrapped.
 *
 * @module
 */

import { paint } from "../utils.ts";
import { ENDS } from "./picture.ts";
import { STATE_COLOURS } from "./tcp_states.ts";
import type { DemoStep } from "./timeline.ts";

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
      ? seen.map((s) => paint(STATE_COLOURS[s], s)).join(" -> ")
      : paint("yellow", "not observed");
    const differs = step.expected[end].join() !== seen.join();
    const textbook = differs ? `  (textbook: ${step.expected[end].join(" -> ")})` : "";
    lines.push(`      ${end} ${(step.addresses[end] ?? "-").padEnd(width)}  ${states}${textbook}`);
  }
  for (const line of wrap(step.note, 72)) lines.push(`      ${line}`);
  return lines;
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
