/**
 * `--explain`: beside each step of a one-shot script, the note's Python call,
 * the Deno call that does it, and what it really did. Printed dim on stderr,
 * so stdout stays exactly what it is without the flag.
 *
 * @module
 */

import { paint } from "../utils.ts";
import type { Message } from "./message.ts";

/** Prints one --explain line: the note's Python call, its Deno twin, what happened. */
export type Explain = (python: string, deno: string, result: string) => void;

/**
 * The --explain printer: when `on`, each call prints one dim line on stderr,
 * `PYTHON_CALL  ->  DENO_CALL   RESULT`, so stdout stays exactly what it is
 * without --explain. When off, it prints nothing.
 */
export function explainer(on: boolean): Explain {
  if (!on) return () => {};
  return (python, deno, result) =>
    console.error(paint("dim", `${python}  ->  ${deno}   ${result}`, "stderr"));
}

/**
 * The recv line's result: the bytes that crossed the wire for the message
 * (its line ending included, as the sender counts them), how it ended, and
 * how many reads it took, with what one recv() would have got.
 */
export function describeReceived(message: Message | null, size: number, peer: string): string {
  if (!message) return `0 bytes: ${peer} closed without sending (Python's recv() returns b"")`;
  const { reads } = message;
  const ending = JSON.stringify(message.lineEnding);
  const ended = message.end === "newline"
    ? `: the line and its ${ending}`
    : message.end === "eof"
    ? `, ended by ${peer}'s EOF (its FIN)`
    : `, stopped at --size ${size} (the text cut at a character boundary)`;
  if (reads.length <= 1) return `${bytes(message.byteLength)}${ended}, 1 read`;
  return `${bytes(message.byteLength)} in ${reads.length} reads${ended}; ` +
    `one recv(${size}) would have returned only the first ${bytes(reads[0])}`;
}

/** The send line's result: bytes written, and the writes it took when more than one. */
export function describeSent(length: number, writes: number): string {
  return writes <= 1
    ? bytes(length)
    : `${bytes(length)} in ${writes} writes (one send() may send only part; sendall() loops)`;
}

function bytes(n: number): string {
  return n === 1 ? "1 byte" : `${n} bytes`;
}
