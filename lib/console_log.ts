/**
 * The chat server's console log: every join, leave and public line, on
 * stdout, time-stamped. On a terminal each line is printed above the
 * operator's input row (the line editor of lib/line_editor.ts, which
 * chat_client.ts uses too); to a pipe or file, lines are written in batches.
 *
 * Why batches: each write wakes whoever reads the pipe, and at a thousand
 * lines a second a write per event-loop turn kept a third process busy on
 * the room's cores. A reader of that pipe who falls behind costs at most
 * LOG_BACKLOG_BYTES, never the room: past it, lines are counted and dropped,
 * and the count is logged where the gap is.
 *
 * @module
 */

import { paint } from "../utils.ts";
import type { LineEditor } from "./line_editor.ts";
import { writeAll } from "./net.ts";
import { joinLines } from "./slab_encoder.ts";

/** A line to log: text, or a relayed line already encoded with its `\n` (no second copy). */
export type LogLine = string | Uint8Array;

/** Where the room's log lines go. */
export interface ConsoleLog {
  /** Logs one line. */
  log(line: LogLine): void;
  /** Resolves once every logged line has been written. */
  drained(): Promise<void>;
  /** Ends the console: on a terminal the prompt row is erased and raw mode ends. */
  close(): void;
}

const encoder = new TextEncoder();
const utf8 = new TextDecoder();
const LOG_BACKLOG_BYTES = 1024 * 1024;
// A piped log is written at most this late, and at once when this much waits:
// a flood is logged as fast as stdout takes it.
const LOG_FLUSH_MS = 50;
const LOG_FLUSH_BYTES = 64 * 1024;

/**
 * The log on a terminal: each line timestamped, coloured and printed above
 * the operator's input row, which `editor` then redraws as it was.
 */
export function terminalLog(editor: Pick<LineEditor, "printAbove" | "close">): ConsoleLog {
  const log = (line: LogLine) => {
    const text = typeof line === "string" ? line : utf8.decode(line.subarray(0, -1));
    editor.printAbove(`${paint("dim", timestamp())} ${colourLine(text)}`);
  };
  return { log, drained: () => Promise.resolve(), close: () => editor.close() };
}

/**
 * The log to a pipe or file: lines gathered and written every LOG_FLUSH_MS
 * (sooner in a flood), not one syscall each. A relayed line is logged from
 * the bytes already encoded for the room, and the time prefix is encoded
 * once a second: logging every line of a flood once cost as much memory as
 * relaying it.
 */
export function pipedLog(): ConsoleLog {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let dropped = 0;
  let writing: Promise<void> | undefined;
  let flushNow: (() => void) | undefined; // ends the wait before a drain
  let stamp = { second: -1, bytes: new Uint8Array() };
  const stampBytes = () => {
    const second = Math.floor(Date.now() / 1000);
    if (second !== stamp.second) stamp = { second, bytes: encoder.encode(`${timestamp()} `) };
    return stamp.bytes;
  };
  const append = (bytes: Uint8Array) => {
    pending.push(stampBytes(), bytes);
    pendingBytes += stamp.bytes.length + bytes.length;
  };
  const drain = async () => {
    flushNow = undefined;
    while (pending.length > 0) {
      if (dropped) { // said where the gap is, even if nothing is logged after it
        append(encoder.encode(`(${dropped} console lines dropped: stdout did not keep up)\n`));
        dropped = 0;
      }
      const chunk = joinLines(pending);
      pending = [];
      pendingBytes = 0;
      await writeAll(Deno.stdout, chunk).catch(() => {});
    }
    writing = undefined;
  };
  const log = (line: LogLine) => {
    if (pendingBytes > LOG_BACKLOG_BYTES) {
      dropped++;
      return;
    }
    append(typeof line === "string" ? encoder.encode(`${line}\n`) : line);
    if (!writing) {
      writing = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, LOG_FLUSH_MS);
        flushNow = () => {
          clearTimeout(timer);
          resolve();
        };
      }).then(drain);
    } else if (pendingBytes > LOG_FLUSH_BYTES) {
      flushNow?.();
    }
  };
  return { log, drained: () => writing ?? Promise.resolve(), close: () => {} };
}

function colourLine(line: string): string {
  if (line.startsWith("!")) return paint("red", line);
  if (line.startsWith("*")) return paint("yellow", line);
  return line.replace(/^<[^>]*>/, (nick) => paint("cyan", nick));
}

function timestamp(): string {
  return new Date().toTimeString().slice(0, 8);
}
