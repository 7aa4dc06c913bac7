/**
 * Where chat_client.ts's lines go: a terminal, where readline owns a "> "
 * prompt line and everything else is printed above it with a timestamp and a
 * colour, or plain stdout for scripts, which get exactly the server's lines.
 *
 * The note's `print()` and `input()` take turns on one terminal; here a line
 * can arrive while the user is half-way through typing, so printing has to
 * clear the prompt, print, and let readline redraw the input intact.
 *
 * @module
 */

import { createInterface, type Interface } from "node:readline";
import * as readline from "node:readline";
import process from "node:process";
import { paint, sanitizeText } from "../utils.ts";
import { classifyLine } from "./client_lines.ts";

const PROMPT = "> ";

/** Where lines go: a terminal with a prompt, or plain stdout for scripts. */
export interface ClientView {
  /** A line from the server, already sanitised. */
  incoming(line: string): void;
  /** A notice from this client itself, e.g. "* connection closed by server". */
  local(line: string): void;
  /** The user's line `typed` went out; the server does not echo it, so show it as `shown`. */
  sent(typed: string, shown: string): void;
  /** No more input: stop drawing the prompt. */
  stopPrompt(): void;
}

/**
 * stdin as lines. With `interactive`, readline also draws the prompt, edits
 * the line and turns Ctrl+C into a "SIGINT" event (raw mode); close() restores
 * the terminal.
 */
export function openInput(interactive: boolean): Interface {
  return createInterface({
    input: process.stdin,
    output: interactive ? process.stdout : undefined,
    terminal: interactive,
    prompt: PROMPT,
  });
}

/**
 * Scripted use: stdout gets exactly the server's lines, so a script can parse
 * them; the client's own notices go to stderr.
 */
export function plainView(): ClientView {
  return {
    incoming: (line) => console.log(line),
    local: (line) => console.error(line),
    sent: () => {},
    stopPrompt: () => {},
  };
}

const COLOURS = {
  own: "green",
  other: "cyan",
  private: "magenta",
  notice: "yellow",
  error: "red",
} as const;

/**
 * A terminal: readline (`rl`, from openInput(true)) owns the prompt line;
 * everything else is printed above it, after which readline redraws the
 * prompt and the half-typed input with the cursor where it was.
 */
export function terminalView(rl: Interface): ClientView {
  const out = process.stdout;
  let prompting = true;

  /** Erases the prompt and input, however many rows they wrap to; returns rows above the cursor. */
  const clearPrompt = (): number => {
    const rows = prompting ? rl.getCursorPos().rows : 0;
    readline.moveCursor(out, 0, -rows);
    readline.cursorTo(out, 0);
    readline.clearScreenDown(out);
    return rows;
  };

  const printAbove = (text: string) => {
    const rows = clearPrompt();
    // The extra newlines give readline back the rows it will move up over
    // (the input's rows above the cursor) before it redraws the prompt.
    out.write(`${paint("dim", clock())} ${text}\n${"\n".repeat(rows)}`);
    if (prompting) rl.prompt(true);
  };

  return {
    incoming(line) {
      const kind = classifyLine(line);
      printAbove(kind === "plain" ? line : paint(COLOURS[kind], line));
    },
    local(line) {
      printAbove(paint(classifyLine(line) === "error" ? COLOURS.error : COLOURS.notice, line));
    },
    sent(typed, shown) {
      // readline has echoed "> typed" and moved to a fresh row: go back up over
      // the rows that took and put the timestamped line in its place.
      const rows = Math.floor(displayWidth(PROMPT + typed) / (out.columns || 80)) + 1;
      readline.moveCursor(out, 0, -rows);
      printAbove(paint(COLOURS.own, sanitizeText(shown)));
    },
    stopPrompt() {
      if (!prompting) return;
      clearPrompt();
      prompting = false;
    },
  };
}

/** Local time as HH:MM, the timestamp before each line on a terminal. */
export function clock(date: Date = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/**
 * Terminal columns `text` takes, close enough for readline's own wrapping:
 * East Asian wide characters and emoji take two, combining marks none.
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (/\p{M}|[\u200b-\u200f\u2060\ufe00-\ufe0f]/u.test(char)) continue;
    const wide = /\p{Emoji_Presentation}/u.test(char) ||
      (code >= 0x1100 && code <= 0x115f) || (code >= 0x2e80 && code <= 0xa4cf) ||
      (code >= 0xac00 && code <= 0xd7a3) || (code >= 0xf900 && code <= 0xfaff) ||
      (code >= 0xfe30 && code <= 0xfe4f) || (code >= 0xff00 && code <= 0xff60) ||
      (code >= 0xffe0 && code <= 0xffe6) || (code >= 0x20000 && code <= 0x3fffd);
    width += wide ? 2 : 1;
  }
  return width;
}
