// chat_client.ts: the notes' section "模拟QQ聊天", the client half, done full duplex.
//
//   deno run -A chat_client.ts [--host H] [--port P] [--nick NAME] [--timeout SECS]
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
//   A line over 64 KiB is dropped with a local notice, so a server that never
//   sends "\n" cannot make the client hold unbounded memory.
// - The note receives into recv_date and prints recv_data (a NameError on the
//   first message) and sends msg.encode() without a newline, so the peer
//   cannot tell where a message ends. Here every line ends in "\n".
// - The note never notices a vanished server: recv() returning b"" would be
//   printed as an empty message, and a later send() dies with BrokenPipeError
//   or ConnectionResetError. Here the client says "* connection closed by
//   server" and exits 0, or prints one error: line and exits 1 on a refused
//   or reset connection.
// - A server that is gone without a FIN or RST (host crashed or powered off,
//   cable pulled, a NAT or firewall that forgot the connection) is a black
//   hole: the note's recv() would wait forever. TCP keep-alive would notice,
//   but Linux sends its first probe after 2 hours idle and Deno cannot change
//   that per socket. So once the server has shown it is chat_server.ts (its
//   first line is "* welcome, you are NAME"), the client asks "/ping alive-N"
//   after --timeout/2 s of silence, hides the "* pong alive-N" answer, and
//   gives up with an error after --timeout s without a byte. nc and ncat peers
//   are never pinged: there a person would read the "/ping" lines.
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
  onStopSignal,
  paint,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  runMain,
  sanitizeText,
  signalExitCode,
  type StopSignal,
  UsageError,
  writeAll,
} from "./utils.ts";
import { createLineSplitter, LINE_TOO_LONG } from "./lib/lines.ts";

const USAGE =
  `usage: deno run -A chat_client.ts [--host H] [--port P] [--nick NAME] [--timeout SECS]

Chats with the server at H:P, full duplex: the notes' section "模拟QQ聊天".
Lines you type are sent; lines from the server are shown as they arrive,
even while you are typing. Try it against: deno run -A chat_server.ts,
nc -l 127.0.0.1 8080, or ncat -l --chat 127.0.0.1 8080.

options:
  --host H          server address (default 127.0.0.1)
  -p, --port P      server port (default 8080)
  -n, --nick NAME   send "/nick NAME" right after connecting
  --timeout SECS    give up on a chat_server.ts silent this long (default 30;
                    0 never); see "dead servers" below
  -h, --help        show this help

chat server commands (sent as typed): /nick NAME, /who, /msg NAME text,
/me action, /ping, /help, /quit. /quit, Ctrl+D or Ctrl+C leave the chat.

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

Lines from the server longer than 64 KiB are not shown; a notice says so.

Dead servers: a server whose host crashed or whose network vanished sends
no FIN or RST, so nothing tells the client it is gone, and TCP keep-alive
probes only after 2 hours idle. When the server's first line is
"* welcome, you are NAME" (chat_server.ts), the client sends
"/ping alive-N" after SECS/2 s without receiving anything (the
"* pong alive-N" answers are not shown), and after SECS s it prints
"error: no answer from HOST:PORT for SECS s; ..." and exits 1. Other peers
(nc, ncat) are never pinged.

Exit status: 0 left the chat or the server closed the connection, 1 runtime
error (connection refused or reset, no answer within --timeout), 2 bad usage,
143 stopped by SIGTERM.`;

/** Longest server line shown; a longer one is dropped as it arrives. */
export const MAX_LINE_BYTES = 64 * 1024;
export const TOO_LONG_NOTICE = "! (a line over 64 KiB from the server was not shown)";
const DEFAULT_TIMEOUT_SECS = 30;
/** How long to wait, after /quit, for the server to close its side. */
const QUIT_GRACE_MS = 1000;
/** How long a failed write waits for the reader to see the server's close. */
const WRITE_FAILURE_GRACE_MS = 500;
/** Lines queued for sending before stdin is paused (piped input can be fast). */
const MAX_QUEUED_LINES = 64;
const PROMPT = "> ";
const encoder = new TextEncoder();

// ---------------------------------------------------------------- framing ---

/** A received line: the server's, or the client's own notice in its place. */
export type Received = { server: string } | { local: string };

/**
 * Turns received bytes into lines to show. Each line is sanitised here, once,
 * so nothing later can print raw peer text. Pass `null` at EOF for the last
 * line the server did not finish.
 */
export function createReceiver(): (chunk: Uint8Array | null) => Received[] {
  const split = createLineSplitter(MAX_LINE_BYTES);
  return (chunk) =>
    split(chunk).map((line) =>
      line === LINE_TOO_LONG ? { local: TOO_LONG_NOTICE } : { server: sanitizeText(line) }
    );
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

/** chat_server.ts's first line: only it answers /ping, so only it is pinged. */
export function isWelcome(line: string): boolean {
  return /^\* welcome, you are \S+$/.test(line);
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

/** Scripted use: stdout gets exactly the server's lines, so a script can parse them. */
function plainView(): View {
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
 * A terminal: readline owns the prompt line; everything else is printed
 * above it, after which readline redraws the prompt and the half-typed
 * input with the cursor where it was.
 */
function terminalView(rl: Interface): View {
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

// ------------------------------------------------------------------- main ---

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    nick: { type: "string", short: "n" },
    timeout: { type: "string", default: String(DEFAULT_TIMEOUT_SECS) },
  }, USAGE);
  const host = parseHost(flags.host);
  const port = parsePort(flags.port);
  if (port === 0) throw new UsageError("--port must name the server's port, 1-65535");
  const nick = flags.nick === undefined ? undefined : parseNick(flags.nick);
  const timeoutSecs = parseIntFlag(flags.timeout, "--timeout", 0, 86_400);

  // connect(): refused or unreachable is one error: line, exit 1.
  const conn = await connectTcp(host, port);
  // Small lines should leave at once (Deno leaves Nagle on). Keep-alive still
  // helps with --timeout 0 or a peer that is not chat_server, if only after
  // the kernel's 2 hours.
  conn.setNoDelay(true);
  conn.setKeepAlive(true);
  return await chat(conn, nick, timeoutSecs);
}

/** A nick must be one word: a space or newline would change the command. */
function parseNick(value: string): string {
  // deno-lint-ignore no-control-regex
  if (value === "" || /[\s\x00-\x1f\x7f]/.test(value)) {
    throw new UsageError(`--nick must be one word without spaces, got '${sanitizeText(value)}'`);
  }
  return value;
}

// ------------------------------------------------------------------- chat ---

/** How the connection's read side ended. */
type ReadEnd = "eof" | "reset" | "closed";

/** Why the chat ends: the first of these decides the exit status. */
type Ending =
  | { kind: "read"; end: ReadEnd }
  | { kind: "leave"; code: number }
  | { kind: "write-failed"; error: unknown }
  | { kind: "silent" }
  | { kind: "error"; error: unknown };

/**
 * The conversation: the socket's lines go to the view while the user's go
 * to the socket, until one side ends it. Returns the exit status, or throws
 * a Failure for the one error: line.
 */
async function chat(
  conn: Deno.TcpConn,
  nick: string | undefined,
  timeoutSecs: number,
): Promise<number> {
  const server = formatAddress(conn.remoteAddr);
  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const input = openInput(interactive);
  const view = interactive ? terminalView(input) : plainView();
  let end!: (ending: Ending) => void;
  const ending = new Promise<Ending>((resolve) => end = resolve);
  let ownNick: string | undefined;
  let linesSeen = 0;
  let inputClosed = false;
  let leaving = false;

  const sender = createSender(conn, {
    failed: (error) => end({ kind: "write-failed", error }),
    backlog(full) {
      if (full) input.pause();
      else if (!inputClosed) input.resume();
    },
  });
  const silence = watchSilence(timeoutSecs * 1000, {
    ping(token) {
      if (sender.open) sender.send(`/ping ${token}`);
    },
    dead: () => end({ kind: "silent" }),
  });

  const fromServer = (line: string) => {
    if (linesSeen++ === 0 && isWelcome(line)) silence.start();
    if (silence.isOwnPong(line)) return;
    ownNick = nickFromNotice(line) ?? ownNick;
    view.incoming(line);
  };
  const reader = receive(conn, silence.heard, (received) => {
    if ("local" in received) view.local(received.local);
    else fromServer(received.server);
  }).catch((error) => {
    end({ kind: "error", error }); // e.g. stdout unusable: not a network error
    return "closed" as const;
  });
  reader.then((readEnd) => end({ kind: "read", end: readEnd }));

  /** /quit, Ctrl+D on a terminal, Ctrl+C or SIGTERM: leave cleanly. */
  const leave = (signal?: StopSignal) => {
    if (leaving) return;
    leaving = true;
    view.stopPrompt();
    end({ kind: "leave", code: signal === "SIGTERM" ? signalExitCode(signal) : 0 });
  };

  const onLine = (line: string) => {
    if (leaving) return;
    if (interactive && line === "") return input.prompt(); // the note's client quit here
    if (line.trim() === "/quit") return leave();
    sender.send(line);
    if (!interactive) return;
    // Chat lines and /me actions are not echoed by the server: show them
    // the way the others see them. Other commands get an answer instead.
    const who = ownNick ?? "you";
    const action = /^\/me\s+(\S.*)$/.exec(line)?.[1];
    if (!line.startsWith("/")) view.sent(line, `<${who}> ${line}`);
    else if (action !== undefined) view.sent(line, `* ${who} ${action}`);
    else input.prompt();
  };

  /** End of stdin: Ctrl+D leaves a terminal chat; a script half-closes and keeps reading. */
  const onInputEnd = () => {
    if (inputClosed) return; // our own close() at the end
    inputClosed = true;
    if (interactive) leave();
    else sender.halfClose();
  };

  /** The exit status for how the chat ended, or the Failure to report. */
  const conclude = async (first: Ending): Promise<number> => {
    if (first.kind === "leave") {
      // Say goodbye, half-close, and show what the server still sends
      // until it closes (a short wait: nc -l would never close).
      if (sender.open) sender.send("/quit");
      await sender.halfClose();
      await withTimeout(reader, QUIT_GRACE_MS);
      return first.code;
    }
    if (first.kind === "error") throw first.error;
    if (first.kind === "silent") {
      throw new Failure(
        `no answer from ${server} for ${timeoutSecs} s; the server or the network is gone`,
      );
    }
    const readEnd = first.kind === "read"
      ? first.end
      : await withTimeout(reader, WRITE_FAILURE_GRACE_MS);
    if (readEnd === undefined || readEnd === "closed") {
      const why = first.kind === "write-failed" ? describe(first.error) : "closed";
      throw new Failure(`lost the connection to ${server}: ${why}`);
    }
    if (readEnd === "reset") throw new Failure(`connection reset by ${server}`);
    view.local("* connection closed by server");
    return 0;
  };

  input.on("line", onLine);
  input.on("close", onInputEnd);
  input.on("SIGINT", () => leave("SIGINT")); // in raw mode Ctrl+C is a key, not a signal
  const removeSignals = onStopSignal(leave);
  if (interactive) input.prompt();
  if (nick !== undefined) sender.send(`/nick ${nick}`); // only now: a signal can interrupt it
  try {
    return await conclude(await ending);
  } finally {
    silence.stop();
    removeSignals();
    view.stopPrompt();
    inputClosed = true;
    input.close(); // also restores the terminal from raw mode
    closeQuietly(conn);
    await reader;
  }
}

/** stdin as lines; on a terminal, readline also draws the prompt and edits the line. */
function openInput(interactive: boolean): Interface {
  return createInterface({
    input: process.stdin,
    output: interactive ? process.stdout : undefined,
    terminal: interactive,
    prompt: PROMPT,
  });
}

// --------------------------------------------------------------- reading ---

/**
 * Hands on every received line until the connection ends, and says how it
 * ended. conn.read(), not conn.readable: that closes the whole connection at
 * EOF, and the client may still have lines to send after the server's FIN.
 */
async function receive(
  conn: Deno.TcpConn,
  heard: () => void,
  onLine: (received: Received) => void,
): Promise<ReadEnd> {
  const receiver = createReceiver();
  const buffer = new Uint8Array(16 * 1024);
  while (true) {
    const n = await readSome(conn, buffer);
    // Closed locally: the chat is over, nothing more is shown.
    if (n === "closed") return n;
    if (n === "eof" || n === "reset") {
      receiver(null).forEach(onLine);
      return n;
    }
    heard();
    receiver(buffer.subarray(0, n)).forEach(onLine);
  }
}

async function readSome(conn: Deno.TcpConn, buffer: Uint8Array): Promise<number | ReadEnd> {
  try {
    return await conn.read(buffer) ?? "eof";
  } catch (err) {
    // Interrupted or BadResource: closed locally (or unusable).
    return err instanceof Deno.errors.ConnectionReset ? "reset" : "closed";
  }
}

/**
 * Notices a black-holed server (see the header). Half the timeout after the
 * last byte received it pings; a live chat_server answers at once, and any
 * byte at all restarts the clock. At the full timeout it calls `dead`.
 * Idle until start(): only chat_server may be pinged.
 */
function watchSilence(
  timeoutMs: number,
  hooks: { ping(token: string): void; dead(): void },
) {
  let lastHeard = Date.now();
  let pinged = false;
  let pings = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const unanswered = new Set<string>();

  const check = () => {
    const silent = Date.now() - lastHeard;
    if (silent >= timeoutMs) return hooks.dead();
    if (!pinged && silent >= timeoutMs / 2) {
      pinged = true;
      const token = `alive-${++pings}`;
      unanswered.add(token);
      hooks.ping(token);
    }
    // A byte heard since the last check moved lastHeard: this wakes later.
    timer = setTimeout(check, (pinged ? timeoutMs : timeoutMs / 2) - silent);
  };

  return {
    start() {
      if (timeoutMs === 0 || timer !== undefined) return;
      lastHeard = Date.now();
      timer = setTimeout(check, timeoutMs / 2);
    },
    heard() {
      lastHeard = Date.now();
      pinged = false;
    },
    /** The answer to our own ping is for us, not the user: it is not shown. */
    isOwnPong(line: string): boolean {
      const token = /^\* pong (alive-\d+)$/.exec(line)?.[1];
      return token !== undefined && unanswered.delete(token);
    },
    stop: () => clearTimeout(timer),
  };
}

// --------------------------------------------------------------- writing ---

/**
 * Sends lines in order, one write at a time: conn.write() may write only
 * part, and two writes in flight could interleave. The first failed write
 * ends the chat (the server went away); later ones are skipped, not reported.
 */
function createSender(
  conn: Deno.TcpConn,
  hooks: { failed(error: unknown): void; backlog(full: boolean): void },
) {
  let writes: Promise<void> = Promise.resolve();
  let queued = 0;
  let broken = false;
  let halfClosed = false;
  return {
    /** Still possible to send: not broken, not half-closed (that would be a BrokenPipe). */
    get open() {
      return !broken && !halfClosed;
    },
    send(line: string): void {
      const bytes = encoder.encode(`${line}\n`);
      if (++queued === MAX_QUEUED_LINES) hooks.backlog(true);
      writes = writes.then(async () => {
        try {
          if (!broken) await writeAll(conn, bytes);
        } catch (error) {
          broken = true;
          hooks.failed(error);
        } finally {
          if (--queued === MAX_QUEUED_LINES / 2) hooks.backlog(false);
        }
      });
    },
    /** closeWrite() after the lines before it: the server reads them, then EOF. */
    halfClose(): Promise<void> {
      if (halfClosed) return writes;
      halfClosed = true;
      writes = writes.then(async () => {
        try {
          await conn.closeWrite();
        } catch {
          // The server is gone already; the reader reports it.
        }
      });
      return writes;
    },
  };
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
