// chat_client.ts: the notes' section "模拟QQ聊天", the client half, done full duplex.
//
//   deno run -A chat_client.ts [--host H] [--port P] [--nick NAME]
//   deno run -A chat_server.ts            # this project's chat server, or:
//   nc -l 127.0.0.1 8080                  # the note's own 1:1 test
//   ncat -l --chat 127.0.0.1 8080         # a ready-made chat room
//
// Like the note: connect, send what the user types, print what arrives.
// Unlike the note:
// - The note alternates input() and recv(1024): while it waits for the user
//   it cannot show the other side's messages, and after each line it blocks
//   until exactly one recv() returns, so two messages in a row or none at all
//   desynchronise the conversation. Here reading the socket and reading the
//   keyboard run at the same time; an incoming line is printed above the
//   prompt and the half-typed input is redrawn intact.
// - recv(1024) returns whatever one segment held: half a line, two lines, or
//   a Chinese character cut in the middle (decode() then raises). Here bytes
//   are framed into lines at "\n" and each complete line is decoded once, so
//   characters stay whole; invalid bytes show as U+FFFD instead of a crash.
// - The note receives into recv_date and prints recv_data (a NameError on the
//   first message) and sends msg.encode() without a newline, so the peer
//   cannot tell where a message ends. Here every line ends in "\n".
// - The note never notices a vanished server: recv() returning b"" would be
//   printed as an empty message, and a later send() dies with BrokenPipeError
//   or ConnectionResetError. Here the client says "* connection closed by
//   server" and exits 0, or prints one error: line and exits 1 on a refused
//   or reset connection.
// - Peer text is sanitised before printing, so escape sequences from the
//   other side cannot move the cursor, clear the screen or fake a line.

import { createInterface, type Interface } from "node:readline";
import * as readline from "node:readline";
import process from "node:process";
import {
  closeQuietly,
  connectTcp,
  Failure,
  formatAddress,
  type Message,
  type MessageEnd,
  onStopSignal,
  paint,
  parseFlags,
  parseHost,
  parsePort,
  runMain,
  sanitizeText,
  signalExitCode,
  type StopSignal,
  UsageError,
  utf8Boundary,
  writeAll,
} from "./utils.ts";

export const USAGE = `usage: deno run -A chat_client.ts [--host H] [--port P] [--nick NAME]

Chats with the server at H:P, full duplex: the notes' section "模拟QQ聊天".
Lines you type are sent; lines from the server are shown as they arrive,
even while you are typing. Try it against: deno run -A chat_server.ts,
nc -l 127.0.0.1 8080, or ncat -l --chat 127.0.0.1 8080.

options:
  --host H          server address (default 127.0.0.1)
  -p, --port P      server port (default 8080)
  -n, --nick NAME   send "/nick NAME" right after connecting
  -h, --help        show this help

chat server commands (sent as typed): /nick NAME, /who, /msg NAME text,
/me action, /help, /quit. /quit, Ctrl+D or Ctrl+C leave the chat.

On a terminal (stdin and stdout both): a "> " prompt, local HH:MM
timestamps, your own lines shown as "<nick> text" (the server does not echo
them), and colours for your lines, others', private messages, notices and
errors (none with NO_COLOR set).

Scripted (stdin or stdout not a terminal, e.g. printf '/who\\n' | ...): every
stdin line is sent as is; at the end of stdin the client half-closes the
connection and keeps printing until the server closes. stdout then holds
exactly the server's lines (control characters escaped, no prompt, no
timestamps, no colour); the client's own notices such as
"* connection closed by server" go to stderr.

Exit status: 0 left the chat or the server closed the connection, 1 runtime
error (connection refused or reset), 2 bad usage, 143 stopped by SIGTERM.`;

/** Longest line kept whole; a longer one is shown in pieces of this size. */
export const MAX_LINE_BYTES = 64 * 1024;
/** How long to wait, after /quit, for the server to close its side. */
const QUIT_GRACE_MS = 1000;
/** How long a failed write waits for the reader to see the server's close. */
const WRITE_FAILURE_GRACE_MS = 500;
/** Lines queued for sending before stdin is paused (piped input can be fast). */
const MAX_QUEUED_LINES = 64;
const PROMPT = "> ";

// ---------------------------------------------------------------- framing ---

const NEWLINE = 0x0a;
const utf8 = new TextDecoder(); // not fatal: invalid bytes become U+FFFD

/**
 * Splits a byte stream into lines at byte "\n" (a "\r" before it is dropped)
 * and decodes each complete line once, so a UTF-8 character split across
 * reads comes out whole. At most `maxBytes` of a partial line are buffered:
 * a longer line is handed out in pieces ending "size", cut at a character
 * boundary, so a peer that never sends "\n" cannot grow memory without limit.
 * (A candidate for utils.ts: the push-based sibling of readMessage.)
 */
export class LineSplitter {
  readonly #buffer: Uint8Array;
  #filled = 0;

  constructor(readonly maxBytes: number = MAX_LINE_BYTES) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 4) {
      throw new RangeError("maxBytes must be 4 or more (one UTF-8 character)");
    }
    this.#buffer = new Uint8Array(maxBytes);
  }

  /** Feeds received bytes; returns the lines they complete, in order. */
  push(chunk: Uint8Array): Message[] {
    const lines: Message[] = [];
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const stop = newline === -1 ? chunk.length : newline;
      while (start < stop) {
        // Full only when more bytes follow: a line of exactly maxBytes stays whole.
        if (this.#filled === this.maxBytes) lines.push(this.#cut());
        const take = Math.min(stop - start, this.maxBytes - this.#filled);
        this.#buffer.set(chunk.subarray(start, start + take), this.#filled);
        this.#filled += take;
        start += take;
      }
      if (newline === -1) break;
      lines.push(this.#take(this.#filled, "newline"));
      start = newline + 1;
    }
    return lines;
  }

  /** At the end of the stream: the unterminated last line, if any. */
  end(): Message | undefined {
    return this.#filled > 0 ? this.#take(this.#filled, "eof") : undefined;
  }

  /** Bytes of a partial line waiting for its "\n". */
  get buffered(): number {
    return this.#filled;
  }

  #cut(): Message {
    const boundary = utf8Boundary(this.#buffer.subarray(0, this.#filled));
    return this.#take(boundary > 0 ? boundary : this.#filled, "size");
  }

  #take(length: number, end: MessageEnd): Message {
    let body = this.#buffer.subarray(0, length);
    if (end === "newline" && body.at(-1) === 0x0d) body = body.subarray(0, -1);
    const message = { text: utf8.decode(body), byteLength: body.length, end };
    this.#buffer.copyWithin(0, length, this.#filled);
    this.#filled -= length;
    return message;
  }
}

// ------------------------------------------------------------------ views ---

/** What a server line is, from its first characters (see the wire protocol). */
export type LineKind = "notice" | "error" | "private" | "other" | "plain";

export function classifyLine(line: string): LineKind {
  if (line.startsWith("* ")) return "notice";
  if (line.startsWith("! ")) return "error";
  if (/^<[^<>\s]+> \(private\) /.test(line)) return "private";
  if (/^<[^<>\s]+> /.test(line)) return "other";
  return "plain";
}

/** The nick the server says we have, from its welcome or a rename notice. */
export function nickFromNotice(line: string): string | undefined {
  return /^\* (?:welcome, you are|you are now) (\S+)$/.exec(line)?.[1];
}

/** Local time as HH:MM. */
export function clock(date: Date = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** Where lines go: a terminal with a prompt, or plain stdout for scripts. */
interface View {
  /** A line from the server, already sanitised. */
  incoming(line: string): void;
  /** A notice from this client itself, e.g. "* connection closed by server". */
  local(line: string): void;
  /** The user's line `typed` went out; the server does not echo it, so show it as `shown`. */
  sent(typed: string, shown: string): void;
  /** No more input: stop drawing the prompt. */
  stopPrompt(): void;
}

/** Scripted use: stdout gets exactly the server's lines, local notices go to stderr. */
class PlainView implements View {
  incoming(line: string): void {
    console.log(line);
  }
  local(line: string): void {
    console.error(line);
  }
  sent(): void {}
  stopPrompt(): void {}
}

const COLOURS = {
  own: "green",
  other: "cyan",
  private: "magenta",
  notice: "yellow",
  error: "red",
} as const;

/**
 * A terminal: readline owns the prompt line; everything else is printed
 * above it, after which readline redraws the prompt and the half-typed
 * input with the cursor where it was.
 */
class TerminalView implements View {
  #prompting = true;

  constructor(readonly rl: Interface) {}

  incoming(line: string): void {
    const kind = classifyLine(line);
    this.#printAbove(kind === "plain" ? line : paint(COLOURS[kind], line));
  }

  local(line: string): void {
    this.#printAbove(paint(COLOURS.notice, line));
  }

  sent(typed: string, shown: string): void {
    // readline has echoed "> typed" and moved to a fresh row: go back up over
    // the rows that took and put the timestamped line in its place.
    const out = process.stdout;
    const columns = out.columns || 80;
    const rows = Math.floor(displayWidth(PROMPT + typed) / columns) + 1;
    readline.moveCursor(out, 0, -rows);
    this.#printAbove(paint(COLOURS.own, sanitizeText(shown)));
  }

  stopPrompt(): void {
    if (!this.#prompting) return;
    this.#clearPrompt();
    this.#prompting = false;
  }

  #printAbove(text: string): void {
    const rows = this.#clearPrompt();
    // The extra newlines give readline back the rows it will move up over
    // (the input's rows above the cursor) before it redraws the prompt.
    process.stdout.write(`${paint("dim", clock())} ${text}\n${"\n".repeat(rows)}`);
    if (this.#prompting) this.rl.prompt(true);
  }

  /** Erases the prompt and input, however many rows they wrap to; returns rows above the cursor. */
  #clearPrompt(): number {
    const out = process.stdout;
    const rows = this.#prompting ? this.rl.getCursorPos().rows : 0;
    readline.moveCursor(out, 0, -rows);
    readline.cursorTo(out, 0);
    readline.clearScreenDown(out);
    return rows;
  }
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

// ----------------------------------------------------------------- client ---

/** How the connection's read side ended. */
type ReadEnd = "eof" | "reset" | "closed";

/** Why the chat ends. */
type Ending =
  | { kind: "read"; end: ReadEnd }
  | { kind: "leave"; code: number }
  | { kind: "write-failed"; error: unknown }
  | { kind: "error"; error: unknown };

export async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, { nick: { type: "string", short: "n" } }, USAGE);
  const host = parseHost(flags.host);
  const port = parsePort(flags.port);
  if (port === 0) throw new UsageError("--port must name the server's port, 1-65535");
  const nick = flags.nick === undefined ? undefined : parseNick(flags.nick);

  // connect(): refused or unreachable is one error: line, exit 1.
  const conn = await connectTcp(host, port);
  // Interactive traffic: small lines should leave at once (Deno leaves Nagle
  // on), and keep-alive eventually notices a server that vanished silently.
  conn.setNoDelay(true);
  conn.setKeepAlive(true);
  return await new ChatClient(conn).run(nick);
}

/** A nick must be one word: a space or newline would change the command. */
function parseNick(value: string): string {
  // deno-lint-ignore no-control-regex
  if (value === "" || /[\s\x00-\x1f\x7f]/.test(value)) {
    throw new UsageError(`--nick must be one word without spaces, got '${sanitizeText(value)}'`);
  }
  return value;
}

class ChatClient {
  readonly #conn: Deno.TcpConn;
  readonly #server: string;
  readonly #interactive: boolean;
  readonly #encoder = new TextEncoder();
  #rl!: Interface;
  #view!: View;
  #nick: string | undefined;
  /** Writes run one at a time, in order: each waits for the one before. */
  #writes: Promise<void> = Promise.resolve();
  #queued = 0;
  #broken = false;
  #halfClosed = false;
  #leaving = false;
  #inputClosed = false;
  #end!: (ending: Ending) => void;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#server = formatAddress(conn.remoteAddr);
    this.#interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  }

  async run(nick: string | undefined): Promise<number> {
    const ending = new Promise<Ending>((resolve) => this.#end = resolve);
    const reader = this.#receive().catch((error) => {
      this.#end({ kind: "error", error }); // e.g. stdout unusable: not a network error
      return "closed" as const;
    });
    reader.then((end) => this.#end({ kind: "read", end }));
    const removeSignals = onStopSignal((signal) => this.#leave(signal));
    this.#startInput();
    if (nick !== undefined) this.#send(`/nick ${nick}`);

    try {
      const first = await ending;
      if (first.kind === "leave") {
        // Say goodbye, half-close, and show what the server still sends
        // until it closes (a short wait: nc -l would never close).
        if (!this.#halfClosed) this.#send("/quit");
        await this.#halfClose();
        await withTimeout(reader, QUIT_GRACE_MS);
        return first.code;
      }
      if (first.kind === "error") throw first.error;
      const end = first.kind === "read"
        ? first.end
        : await withTimeout(reader, WRITE_FAILURE_GRACE_MS);
      if (end === undefined || end === "closed") {
        const why = first.kind === "write-failed" ? describe(first.error) : "closed";
        throw new Failure(`lost the connection to ${this.#server}: ${why}`);
      }
      if (end === "reset") throw new Failure(`connection reset by ${this.#server}`);
      this.#view.local("* connection closed by server");
      return 0;
    } finally {
      removeSignals();
      this.#closeInput();
      closeQuietly(this.#conn);
      await reader;
    }
  }

  // ------------------------------------------------------------- reading ---

  /** Reads with conn.read() (not conn.readable, which closes the conn at EOF). */
  async #receive(): Promise<ReadEnd> {
    const splitter = new LineSplitter(MAX_LINE_BYTES);
    const buffer = new Uint8Array(16 * 1024);
    let end: ReadEnd;
    while (true) {
      let n: number | null;
      try {
        n = await this.#conn.read(buffer);
      } catch (err) {
        if (err instanceof Deno.errors.ConnectionReset) {
          end = "reset";
          break;
        }
        return "closed"; // closed locally (Interrupted, BadResource) or unusable
      }
      if (n === null) {
        end = "eof";
        break;
      }
      for (const line of splitter.push(buffer.subarray(0, n))) this.#show(line.text);
    }
    const last = splitter.end();
    if (last) this.#show(last.text);
    return end;
  }

  #show(raw: string): void {
    const line = sanitizeText(raw);
    this.#nick = nickFromNotice(line) ?? this.#nick;
    this.#view.incoming(line);
  }

  // ------------------------------------------------------------- writing ---

  /** Queues one line; a failed write ends the chat (the server went away). */
  #send(line: string): void {
    const bytes = this.#encoder.encode(`${line}\n`);
    this.#queued++;
    if (this.#queued === MAX_QUEUED_LINES) this.#rl.pause();
    this.#writes = this.#writes.then(async () => {
      try {
        if (!this.#broken) await writeAll(this.#conn, bytes);
      } catch (error) {
        // Later writes would fail the same way: skip them, report the first.
        this.#broken = true;
        this.#end({ kind: "write-failed", error });
      } finally {
        this.#queued--;
        if (this.#queued === MAX_QUEUED_LINES / 2 && !this.#inputClosed) this.#rl.resume();
      }
    });
  }

  /** Queues closeWrite() after the lines before it: the server reads EOF. */
  #halfClose(): Promise<void> {
    if (this.#halfClosed) return this.#writes;
    this.#halfClosed = true;
    this.#writes = this.#writes.then(async () => {
      try {
        await this.#conn.closeWrite();
      } catch {
        // The server is gone already; the reader reports it.
      }
    });
    return this.#writes;
  }

  // --------------------------------------------------------------- input ---

  #startInput(): void {
    const rl = createInterface({
      input: process.stdin,
      output: this.#interactive ? process.stdout : undefined,
      terminal: this.#interactive,
      prompt: PROMPT,
    });
    this.#rl = rl;
    this.#view = this.#interactive ? new TerminalView(rl) : new PlainView();
    rl.on("line", (line) => this.#onLine(line));
    rl.on("close", () => this.#onInputEnd());
    // In raw mode Ctrl+C reaches readline as a key, not as a signal.
    rl.on("SIGINT", () => this.#leave("SIGINT"));
    if (this.#interactive) rl.prompt();
  }

  #onLine(line: string): void {
    if (this.#leaving) return;
    if (this.#interactive && line === "") {
      this.#rl.prompt(); // nothing to send; the note's client quit here
      return;
    }
    if (line.trim() === "/quit") {
      this.#leave();
      return;
    }
    this.#send(line);
    if (!this.#interactive) return;
    // Chat lines and /me actions are not echoed by the server: show them
    // the way the others see them. Other commands get an answer instead.
    const nick = this.#nick ?? "you";
    const action = /^\/me\s+(\S.*)$/.exec(line)?.[1];
    if (!line.startsWith("/")) this.#view.sent(line, `<${nick}> ${line}`);
    else if (action !== undefined) this.#view.sent(line, `* ${nick} ${action}`);
    else this.#rl.prompt();
  }

  /** End of stdin: Ctrl+D leaves a terminal chat; a script half-closes. */
  #onInputEnd(): void {
    if (this.#inputClosed) return; // our own close() at the end
    this.#inputClosed = true;
    if (this.#interactive) {
      this.#leave();
      return;
    }
    this.#halfClose();
  }

  /** /quit, Ctrl+D on a terminal, Ctrl+C or SIGTERM: leave cleanly. */
  #leave(signal?: StopSignal): void {
    if (this.#leaving) return;
    this.#leaving = true;
    this.#view.stopPrompt();
    this.#end({ kind: "leave", code: signal === "SIGTERM" ? signalExitCode(signal) : 0 });
  }

  #closeInput(): void {
    this.#view.stopPrompt();
    this.#inputClosed = true;
    this.#rl.close(); // also restores the terminal from raw mode
  }
}

function describe(err: unknown): string {
  if (err instanceof Deno.errors.BrokenPipe) return "broken pipe";
  if (err instanceof Deno.errors.ConnectionReset) return "connection reset";
  return err instanceof Error ? err.message.replace(/ \(os error \d+\)$/, "") : String(err);
}

/** The promise's value, or undefined if it takes longer than `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
