/**
 * Where chat_client.ts's lines come from and go to: a terminal, where the
 * line editor (lib/line_editor.ts) owns a "> " prompt row and everything
 * else is printed above it with a timestamp and a colour, or plain stdin and
 * stdout for scripts, which get exactly the server's lines.
 *
 * The note's `print()` and `input()` take turns on one terminal; here a line
 * can arrive while the user is half-way through typing, so it is printed
 * above the input row and the half-typed input is redrawn intact.
 *
 * @module
 */

import { createInterface } from "node:readline";
import process from "node:process";
import { paint } from "../utils.ts";
import { sanitizeText } from "./peer_text.ts";
import { classifyLine } from "./client_lines.ts";
import { type EditorHooks, openLineEditor } from "./line_editor.ts";

const PROMPT = "> ";
const PASSWORD_PROMPT = "Password: ";

/** Where lines go: a terminal with a prompt, or plain stdout for scripts. */
export interface ClientView {
  /**
   * A line from the server, already sanitised; `mentioned`: someone else's
   * line names the user (a terminal highlights it and may ring the bell).
   */
  incoming(line: string, mentioned?: boolean): void;
  /** A notice from this client itself, e.g. "* connection closed by server". */
  local(line: string): void;
  /** The user's line went out; the server does not echo it, so show it as the room sees it. */
  sent(shown: string): void;
  /** The user's command went out: show it as typed, above the answer to come. */
  echo(typed: string): void;
  /** The user's line was not sent: give it back to edit (a terminal), or drop it (a script). */
  keep(typed: string): void;
  /**
   * The server wants its password and none was given: a terminal asks for it
   * on the input row without echoing it; the next typed line is the answer.
   */
  askPassword(): void;
  /** The password was entered: back to the chat prompt. */
  endPassword(): void;
  /** No more input: stop drawing the prompt. */
  stopPrompt(): void;
}

/** The side that reads typed lines; they go to the EditorHooks given when it was opened. */
export interface ChatInput {
  /** Stops reading (the sender has a backlog); what is typed waits. */
  pause(): void;
  /** Reads again. */
  resume(): void;
  /** Stops reading for good; a terminal leaves raw mode. */
  close(): void;
}

/** A chat's input and view, opened together: on a terminal they share a row. */
export interface ChatSides {
  /** Where typed lines come from. */
  input: ChatInput;
  /** Where lines are shown. */
  view: ClientView;
}

/**
 * Scripted use: every stdin line goes to `hooks.line`, the end of stdin to
 * `hooks.end`; stdout gets exactly the server's lines, so a script can parse
 * them, and the client's own notices go to stderr.
 */
export function pipedChat(hooks: EditorHooks): ChatSides {
  const lines = createInterface({ input: process.stdin, terminal: false });
  lines.on("line", (line) => hooks.line(line));
  lines.on("close", () => hooks.end());
  return {
    input: {
      pause: () => lines.pause(),
      resume: () => lines.resume(),
      close: () => lines.close(),
    },
    view: {
      incoming: (line) => console.log(line),
      local: (line) => console.error(line),
      sent: () => {},
      echo: () => {},
      keep: () => {},
      askPassword: () => {},
      endPassword: () => {},
      stopPrompt: () => {},
    },
  };
}

const COLOURS = {
  own: "green",
  other: "cyan",
  private: "magenta",
  notice: "yellow",
  error: "red",
} as const;

/** How a terminal chat treats lines that name the user. */
export interface TerminalOptions {
  /** Ring the bell (once per such line); false with --no-bell. */
  bell: boolean;
}

/**
 * A terminal (stdin and stdout both): the line editor owns the bottom row;
 * every other line is printed above it, timestamped and coloured by kind,
 * and the half-typed input is redrawn with the cursor where it was. A line
 * that names the user is shown inverse (not with NO_COLOR) and rings the bell.
 */
export function terminalChat(hooks: EditorHooks, options: TerminalOptions): ChatSides {
  const editor = openLineEditor(hooks, { prompt: PROMPT });
  const print = (text: string) => editor.printAbove(`${paint("dim", clock())} ${text}`);
  return {
    input: editor,
    view: {
      incoming(line, mentioned = false) {
        const kind = classifyLine(line);
        const coloured = kind === "plain" ? line : paint(COLOURS[kind], line);
        print(mentioned ? paint("inverse", coloured) : coloured);
        if (mentioned && options.bell) editor.ring();
      },
      local(line) {
        print(paint(classifyLine(line) === "error" ? COLOURS.error : COLOURS.notice, line));
      },
      // In place of the typed line, which the editor has already taken off the row.
      sent: (shown) => print(paint(COLOURS.own, sanitizeText(shown))),
      echo: (typed) => editor.printAbove(`${PROMPT}${sanitizeText(typed)}`),
      keep: (typed) => editor.setInput(typed),
      askPassword: () => editor.setPrompt(PASSWORD_PROMPT, true),
      endPassword: () => editor.setPrompt(PROMPT),
      stopPrompt: () => editor.hidePrompt(),
    },
  };
}

/** Local time as HH:MM, the timestamp before each line on a terminal. */
export function clock(date: Date = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
