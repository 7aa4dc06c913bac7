#!/usr/bin/env -S deno run --allow-net
// chat_client.ts: the notes' section "模拟QQ聊天", the client half, done full duplex.
//
//   deno run -A chat_client.ts [--host H] [--port P] [--nick NAME] [--timeout SECS]
//                              [--password-file FILE] [--tls [--ca FILE]] [--no-bell]
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
// - A server gone without a FIN or RST (host crashed, cable pulled, a NAT
//   that forgot the connection) is a black hole: the note's recv() would wait
//   forever, and TCP keep-alive probes only after 2 hours idle (Deno cannot
//   change that per socket). So once the server has shown it is
//   chat_server.ts (its first line is "* welcome, you are NAME"), the client
//   asks "/ping alive-N" after --timeout/2 s of silence, hides the
//   "* pong alive-N" answer, and gives up with an error after --timeout s
//   without a byte. nc and ncat peers are never pinged: there a person would
//   read the "/ping" lines.
// - Peer text is sanitised before printing, so escape sequences from the
//   other side cannot move the cursor, clear the screen or fake a line.
// - chat_server.ts says in its welcome how long a line may be; a longer one
//   is not sent (the server would refuse it) and a terminal keeps it in the
//   input to shorten. --nick is sent once the welcome shows the peer is
//   chat_server.ts, never to a peer that would not understand it.
//
// Reading guide (the note's line -> where it happens here):
//   socket() + connect()          main(): Deno.connect, via connectTcp (utils.ts)
//   msg = input("...")            terminalChat / pipedChat (lib/client_view.ts): the
//                                 line editor (lib/line_editor.ts) or, piped, readline
//                                 hands each line to onTyped(), even while lines arrive
//   if len(msg) > 0 / else break  onTyped(): an empty line on a terminal is skipped;
//                                 /quit, Ctrl+D or Ctrl+C call leave()
//   send(msg.encode())            onTyped() -> createLineSender (lib/line_sender.ts):
//                                 "\n"-ended, whole, in order
//   recv(1024) + decode()         receive(): a conn.read() loop of its own, framed
//                                 into lines by createReceiver (lib/client_lines.ts)
//   print("收到的消息：...")      show() -> the view (lib/client_view.ts)
//   recv() == b"" (not checked)   exitStatus(): "* connection closed by server", 0
//   client_sock.close()           main()'s finally: closeQuietly(conn)
// The silence watch (lib/silence_watch.ts) is what the note lacks entirely, and
// so are a room password (--password-file, or asked on the terminal), TLS
// (--tls, --ca) and mentions of your nick (highlighted, the bell rung).

import process from "node:process";
import {
  Failure,
  onStopSignal,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  runMain,
  sanitizeText,
  signalExitCode,
  type StopSignal,
  UsageError,
} from "./utils.ts";
import { closeQuietly, connectTcp, formatAddress, withHints } from "./lib/net.ts";
import { readFlagFile, readFlagFileLines } from "./lib/flag_files.ts";
import {
  asOthersSeeIt,
  createReceiver,
  isPasswordPrompt,
  isWelcome,
  isWrongPassword,
  lineLimitFromNotice,
  mentionsNick,
  nickFromNotice,
  type Received,
} from "./lib/client_lines.ts";
import { type ChatInput, type ClientView, pipedChat, terminalChat } from "./lib/client_view.ts";
import type { EditorHooks } from "./lib/line_editor.ts";
import { createLineSender, type LineSender } from "./lib/line_sender.ts";
import { type SilenceWatch, watchSilence } from "./lib/silence_watch.ts";

const USAGE =
  `usage: deno run -A chat_client.ts [--host H] [--port P] [--nick NAME] [--timeout SECS]
                                  [--password-file FILE] [--tls [--ca FILE]] [--no-bell]

Chats with the server at H:P, full duplex: the notes' section "模拟QQ聊天".
Lines you type are sent; lines from the server are shown as they arrive,
even while you are typing. Try it against: deno run -A chat_server.ts,
nc -l 127.0.0.1 8080, or ncat -l --chat 127.0.0.1 8080.

options:
  --host H          server address (default 127.0.0.1)
  -p, --port P      server port (default 8080)
  -n, --nick NAME   send "/nick NAME" as soon as chat_server.ts's welcome
                    arrives; to a server that does not greet like it within
                    2 s, it is not sent (a notice says so)
  --timeout SECS    give up on a chat_server.ts silent this long (default 30;
                    0 never); see "dead servers" below
  --password-file FILE
                    the room's password is FILE's first line (an empty or
                    missing file is a usage error); see "passwords" below
  --tls             connect over TLS, verifying the server's certificate
                    against the system's roots (or --ca)
  --ca FILE         with --tls: trust the PEM certificate(s) in FILE instead,
                    e.g. a server's own self-signed one
  --no-bell         do not ring the bell for lines that name you
  -h, --help        show this help

chat server commands (sent as typed): /nick NAME, /who, /msg NAME text,
/me action, /ping, /help, /quit. /quit, Ctrl+D or Ctrl+C leave the chat.

On a terminal (stdin and stdout both): a "> " prompt, local HH:MM
timestamps, your own lines shown as "<nick> text" (the server does not echo
them), and colours for your lines, others', private messages, notices and
errors (none with NO_COLOR set). The input is one row: a longer line
scrolls sideways, "<" and ">" mark hidden text. Keys: Left/Right, Home/End
(Ctrl+A/E), Backspace, Delete, Ctrl+U/K (delete before/after the cursor),
Ctrl+W (a word), Up/Down (earlier lines), Enter sends.

A line from someone else (<nick> text, a private message, or a /me action)
that names you (your nick as a word, any case) is shown inverse (no
highlight with NO_COLOR) and rings the terminal's bell once, unless
--no-bell. Your own lines and server notices never do; nor does anything
when stdout is not a terminal.

Passwords: chat_server.ts --password-file first says
"* password required: /pass PASSWORD". With --password-file FILE the client
answers "/pass PASSWORD" then (never before, never to a server that did not
ask); if the server answers "! wrong password" the client shows it and exits
1. Without the flag, a terminal asks "Password: " on the input row (typing
shows as *) and asks again after "! wrong password"; a script is told on
stderr to give --password-file FILE (or to send /pass PASSWORD itself).
The screen shows a sent password as "/pass *****".

Reading files: the chat_client task and the script's shebang allow the
network only; --password-file FILE and --ca FILE also need
--allow-read=FILE (or -A), else a usage error says so.

Scripted (stdin or stdout not a terminal, e.g. printf '/who\\n' | ...): every
stdin line is sent as is; at the end of stdin the client half-closes the
connection and keeps printing until the server closes. stdout then holds
exactly the server's lines (control characters escaped, no prompt, no
timestamps, no colour); the client's own notices such as
"* connection closed by server" go to stderr.

Lines from the server longer than 64 KiB are not shown; a notice says so.
chat_server.ts says in its welcome how long a line it takes ("lines up to
4096 bytes"); a longer line is not sent: "! not sent: ..." says why, and on
a terminal the line stays in the input to shorten (a script's is dropped).

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

const DEFAULT_TIMEOUT_SECS = 30;
/** How long to wait, after /quit, for the server to close its side. */
const QUIT_GRACE_MS = 1000;
/** How long a failed write waits for the reader to see the server's close. */
const WRITE_FAILURE_GRACE_MS = 500;
/** How long --nick waits for chat_server.ts's welcome (it comes at once). */
const GREETING_WAIT_MS = 2000;
/** Lines a script may write ahead of the welcome before its input is paused. */
const MAX_HELD_LINES = 64;
const encoder = new TextEncoder();

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    nick: { type: "string", short: "n" },
    timeout: { type: "string", default: String(DEFAULT_TIMEOUT_SECS) },
    "password-file": { type: "string" },
    tls: { type: "boolean", default: false },
    ca: { type: "string" },
    "no-bell": { type: "boolean", default: false },
  }, USAGE);
  const host = parseHost(flags.host);
  const port = parsePort(flags.port);
  if (port === 0) throw new UsageError("--port must name the server's port, 1-65535");
  const nick = flags.nick === undefined ? undefined : parseNick(flags.nick);
  const timeoutSecs = parseIntFlag(flags.timeout, "--timeout", 0, 86_400);
  if (flags.ca !== undefined && !flags.tls) throw new UsageError("--ca FILE needs --tls");
  const caCerts = flags.ca === undefined ? undefined : [await readCaFile(flags.ca)];
  const passwordFile = flags["password-file"];
  const password = passwordFile === undefined
    ? undefined
    : { text: await readPassword(passwordFile), file: passwordFile };

  // socket() + connect(): refused or unreachable is one error: line, exit 1.
  const conn = flags.tls ? await connectTls(host, port, caCerts) : await connectPlain(host, port);
  // input() + send(msg.encode()): each line as the user enters it, see onTyped().
  const chat = startChat(conn, {
    timeoutSecs,
    nick,
    password,
    bell: !flags["no-bell"],
  });

  // recv(1024) + print(), in a loop of its own: lines arrive while the user types.
  const reader = startReading(chat);
  // In place before the first server line can be read: --nick, sent on the
  // welcome, goes out with Ctrl+C and SIGTERM already handled.
  const removeSignals = onStopSignal((signal) => leave(chat, signal));

  try {
    return await exitStatus(chat, await chat.ended, reader);
  } finally {
    // client_sock.close(), whatever ended the chat.
    clearTimeout(chat.greetingTimer);
    chat.silence.stop();
    removeSignals();
    chat.view.stopPrompt();
    chat.inputClosed = true;
    chat.input.close(); // also restores the terminal from raw mode
    closeQuietly(conn);
    await reader;
  }
}

/** The plain TCP connection, as the note makes it. */
async function connectPlain(host: string, port: number): Promise<Deno.TcpConn> {
  const conn = await connectTcp(host, port);
  // Small lines should leave at once (Deno leaves Nagle on). Keep-alive still
  // helps with --timeout 0 or a peer that is not chat_server, if only after
  // the kernel's 2 hours.
  conn.setNoDelay(true);
  conn.setKeepAlive(true);
  return conn;
}

/**
 * --tls: the handshake is done here, before the chat starts, so a
 * certificate that does not verify is one error: line saying what to do,
 * not a failed first read. (Deno.TlsConn has no setNoDelay/setKeepAlive.)
 */
async function connectTls(host: string, port: number, caCerts?: string[]): Promise<Deno.TlsConn> {
  const where = formatAddress({ hostname: host, port });
  const conn = await withHints(
    `connect to ${where}`,
    () => Deno.connectTls({ hostname: host, port, caCerts }),
  );
  try {
    await conn.handshake();
  } catch (err) {
    closeQuietly(conn);
    throw new Failure(`TLS with ${where} failed: ${describe(err)}; ${tlsHint(err, caCerts)}`);
  }
  return conn;
}

/** What to try after a failed handshake, e.g. trusting the server's own certificate. */
function tlsHint(err: unknown, caCerts?: string[]): string {
  // Plain text where a TLS record should be: the server does not speak TLS.
  if (/corrupt message|InvalidContentType/i.test(String(err))) {
    return "is the server using TLS? (chat_server.ts needs --tls-cert and --tls-key)";
  }
  return caCerts === undefined
    ? "if the server's certificate is its own (self-signed), pass --ca FILE with it"
    : "check that --ca names the certificate the server uses and --host a name it is for";
}

/** --ca FILE: PEM certificates to verify the server against, instead of the system's. */
async function readCaFile(path: string): Promise<string> {
  const pem = await readFlagFile(path, "--ca");
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new UsageError(`--ca ${path}: not a PEM certificate (no BEGIN CERTIFICATE line)`);
  }
  return pem;
}

/** --password-file FILE: its first line is the password; none is a usage error. */
async function readPassword(path: string): Promise<string> {
  const first = (await readFlagFileLines(path, "--password-file"))[0];
  if (first === undefined || first === "") {
    throw new UsageError(`--password-file ${path}: the first line (the password) is empty`);
  }
  return first;
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

/** The connection to the server: plain TCP, or TLS with --tls. */
type ChatConn = Deno.TcpConn | Deno.TlsConn;

/** What the command line asks of the conversation. */
interface ChatOptions {
  timeoutSecs: number;
  /** --nick NAME. */
  nick?: string;
  /** --password-file FILE's password, and the file, for the error line if it is wrong. */
  password?: { text: string; file: string };
  /** Ring the bell for a line that names us (a terminal only); false with --no-bell. */
  bell: boolean;
}

/** One conversation: what the steps below share. */
interface Chat {
  conn: ChatConn;
  /** The server as HOST:PORT, for error lines. */
  server: string;
  timeoutSecs: number;
  /** stdin and stdout both a terminal: prompt, timestamps, colours. */
  interactive: boolean;
  input: ChatInput;
  view: ClientView;
  sender: LineSender;
  silence: SilenceWatch;
  /** Ends the chat; only the first call counts. */
  end(ending: Ending): void;
  ended: Promise<Ending>;
  /** Our nick as the server last named it; undefined until it does. */
  ownNick?: string;
  /** Server lines received so far: only the first can be the welcome. */
  linesSeen: number;
  /** chat_server.ts welcomed us (its first line, or after a password): it answers /ping and says its line limit. */
  greeted: boolean;
  /** The first line asked for the room's password: the welcome follows a right /pass. */
  admitting: boolean;
  /** --password-file's password, sent when (and only if) the server asks. */
  password?: { text: string; file: string };
  /** A terminal is asking for the password: the next typed line is it. */
  askingPassword: boolean;
  /** The longest line the server takes, in bytes, once its welcome said so. */
  maxLineBytes?: number;
  /** --nick NAME, until the welcome (or its absence) decides whether it is sent. */
  wantedNick?: string;
  /** Lines typed while --nick waits for the welcome: they go after it, in order. */
  held?: string[];
  /** stdin ended while lines were held: half-close after them. */
  heldEnd: boolean;
  /** Gives up waiting for the welcome. */
  greetingTimer?: ReturnType<typeof setTimeout>;
  /** The sender's queue is full: input stays paused until it drains. */
  backlogFull: boolean;
  /** stdin ended, or we closed it: nothing may resume it. */
  inputClosed: boolean;
  /** leave() ran: typed lines are ignored from now on. */
  leaving: boolean;
}

/** Sets up the conversation on `conn`: input, view, sender and silence watch. */
function startChat(conn: ChatConn, options: ChatOptions): Chat {
  const { timeoutSecs, nick } = options;
  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const hooks: EditorHooks = {
    line: (line) => onTyped(chat, line),
    end: () => onInputEnd(chat),
    interrupt: () => leave(chat, "SIGINT"), // in raw mode Ctrl+C is a key
  };
  const { input, view } = interactive
    ? terminalChat(hooks, { bell: options.bell })
    : pipedChat(hooks);
  const { promise: ended, resolve: end } = Promise.withResolvers<Ending>();
  const chat: Chat = {
    conn,
    server: formatAddress(conn.remoteAddr),
    timeoutSecs,
    interactive,
    input,
    view,
    sender: createLineSender(conn, {
      failed: (error) => end({ kind: "write-failed", error }),
      backlog(full) {
        chat.backlogFull = full;
        if (full) input.pause();
        else resumeInput(chat);
      },
    }),
    silence: watchSilence(timeoutSecs * 1000, {
      send(line) {
        if (chat.sender.open) chat.sender.send(line);
      },
      dead: () => end({ kind: "silent" }),
    }),
    end,
    ended,
    linesSeen: 0,
    greeted: false,
    admitting: false,
    password: options.password,
    askingPassword: false,
    heldEnd: false,
    backlogFull: false,
    inputClosed: false,
    leaving: false,
  };
  if (nick !== undefined) awaitGreeting(chat, nick);
  return chat;
}

/**
 * --nick NAME waits for chat_server.ts's welcome, its first line: a /nick
 * before it would be a stranger's line to nc or ncat, and chat_server.ts
 * holds the others' "* NAME joined" for it, so they see the chosen name.
 * Lines typed meanwhile are held, to go after it; if the server asks for
 * its password first, they go at once (the /pass is among them) and --nick
 * waits for the welcome that follows.
 */
function awaitGreeting(chat: Chat, nick: string): void {
  chat.wantedNick = nick;
  chat.held = [];
  chat.greetingTimer = setTimeout(
    () => decideNick(chat, `no greeting from the server in ${GREETING_WAIT_MS / 1000} s`),
    GREETING_WAIT_MS,
  );
}

/** Sends --nick (no `refusal`), or says why not; then the lines held for it. */
function decideNick(chat: Chat, refusal?: string): void {
  const nick = chat.wantedNick;
  if (nick === undefined) return;
  chat.wantedNick = undefined;
  if (refusal === undefined) chat.sender.send(`/nick ${nick}`);
  else chat.view.local(`* ${refusal}; --nick not sent`);
  releaseHeld(chat);
}

/** The lines typed while --nick waited go now, in order, and so does a held end of input. */
function releaseHeld(chat: Chat): void {
  clearTimeout(chat.greetingTimer);
  const held = chat.held ?? [];
  chat.held = undefined;
  for (const line of held) onTyped(chat, line);
  if (chat.heldEnd && !chat.leaving) onInputEnd(chat);
  resumeInput(chat);
}

/** Reads typed lines again, unless something still holds them back. */
function resumeInput(chat: Chat): void {
  if (!chat.inputClosed && !chat.backlogFull && !chat.held) chat.input.resume();
}

/** A typed line: sent (the note's send), shown as the room sees it, or /quit. */
function onTyped(chat: Chat, line: string): void {
  if (chat.leaving) return;
  if (chat.askingPassword) return answerPassword(chat, line);
  if (chat.interactive && line === "") return; // the note's client quit here
  if (chat.held) {
    // A script can write faster than the welcome comes: hold a few, then pause.
    if (chat.held.push(line) === MAX_HELD_LINES) chat.input.pause();
    return;
  }
  if (line.trim() === "/quit") return leave(chat);
  if (refusedAsTooLong(chat, line)) return;
  chat.sender.send(line);
  if (!chat.interactive) return;
  const shown = asOthersSeeIt(line, chat.ownNick ?? "you");
  // A command: its answer will come. A password is not left on the screen.
  if (shown === undefined) chat.view.echo(line.replace(/^(\/pass\s+)\S.*$/, "$1*****"));
  else chat.view.sent(shown);
}

/** The line typed at the terminal's "Password: " (masked): sent as /pass; empty asks on. */
function answerPassword(chat: Chat, typed: string): void {
  if (typed === "") return;
  chat.askingPassword = false;
  chat.view.endPassword();
  sendPassword(chat, typed);
}

/** "/pass PASSWORD" to the server; the screen shows only "/pass *****". */
function sendPassword(chat: Chat, password: string): void {
  chat.sender.send(`/pass ${password}`);
  if (chat.interactive) chat.view.echo("/pass *****");
}

/**
 * chat_server.ts asked for the room's password (its first line) or refused
 * one: --password-file's goes at once (once: a refused one ends the chat);
 * a terminal asks the user; a script is told how to give one.
 */
function onPasswordWanted(chat: Chat, refused: boolean): void {
  const given = chat.password;
  if (given !== undefined && refused) {
    const error = new Failure(`the server refused the password in --password-file ${given.file}`);
    return chat.end({ kind: "error", error });
  }
  if (given !== undefined) return sendPassword(chat, given.text);
  if (chat.interactive) {
    chat.askingPassword = true;
    return chat.view.askPassword();
  }
  if (!refused) {
    chat.view.local(
      "* the server wants a password: give --password-file FILE, or send /pass PASSWORD",
    );
  }
}

/**
 * A line over the server's limit would only come back as "! line too long",
 * after the client had shown it as said: it is not sent, a local line says
 * why, and on a terminal it goes back into the input to be shortened.
 */
function refusedAsTooLong(chat: Chat, line: string): boolean {
  const limit = chat.maxLineBytes;
  if (limit === undefined) return false;
  const bytes = encoder.encode(line).length;
  if (bytes <= limit) return false;
  const kept = chat.interactive ? "; it is still in the input" : "";
  chat.view.local(`! not sent: ${bytes} bytes, over the server's limit of ${limit}${kept}`);
  chat.view.keep(line);
  return true;
}

/** End of stdin: Ctrl+D leaves a terminal chat; a script half-closes and keeps reading. */
function onInputEnd(chat: Chat): void {
  if (chat.inputClosed) return; // our own close() at the end
  if (chat.held && !chat.interactive) {
    chat.heldEnd = true; // after the held lines
    return;
  }
  chat.inputClosed = true;
  if (chat.interactive) leave(chat);
  else chat.sender.halfClose();
}

/** /quit, Ctrl+D on a terminal, Ctrl+C or SIGTERM: leave cleanly. */
function leave(chat: Chat, signal?: StopSignal): void {
  if (chat.leaving) return;
  chat.leaving = true;
  chat.view.stopPrompt();
  chat.end({ kind: "leave", code: signal === "SIGTERM" ? signalExitCode(signal) : 0 });
}

/** The exit status for how the chat ended, or the Failure for the one error: line. */
async function exitStatus(chat: Chat, first: Ending, reader: Promise<ReadEnd>): Promise<number> {
  if (first.kind === "leave") {
    // Say goodbye, half-close, and show what the server still sends
    // until it closes (a short wait: nc -l would never close).
    if (chat.sender.open) chat.sender.send("/quit");
    await chat.sender.halfClose();
    await withTimeout(reader, QUIT_GRACE_MS);
    return first.code;
  }
  if (first.kind === "error") throw first.error;
  if (first.kind === "silent") {
    throw new Failure(
      `no answer from ${chat.server} for ${chat.timeoutSecs} s; the server or the network is gone`,
    );
  }
  // A failed write usually means the server closed or reset: let the reader say which.
  const readEnd = first.kind === "read"
    ? first.end
    : await withTimeout(reader, WRITE_FAILURE_GRACE_MS);
  if (readEnd === undefined || readEnd === "closed") {
    const why = first.kind === "write-failed" ? describe(first.error) : "closed";
    throw new Failure(`lost the connection to ${chat.server}: ${why}`);
  }
  if (readEnd === "reset") throw new Failure(`connection reset by ${chat.server}`);
  chat.view.local("* connection closed by server");
  return 0;
}

// --------------------------------------------------------------- reading ---

/** Runs receive(); its end, or its error (e.g. stdout unusable), ends the chat. */
function startReading(chat: Chat): Promise<ReadEnd> {
  const reader = receive(chat).catch((error) => {
    chat.end({ kind: "error", error }); // not a network error: reported as it is
    return "closed" as const;
  });
  reader.then((readEnd) => chat.end({ kind: "read", end: readEnd }));
  return reader;
}

/**
 * The note's recv(1024), in a loop: shows every received line until the
 * connection ends, and says how it ended. conn.read(), not conn.readable:
 * that closes the whole connection at EOF, and the client may still have
 * lines to send after the server's FIN.
 */
async function receive(chat: Chat): Promise<ReadEnd> {
  const toLines = createReceiver();
  const buffer = new Uint8Array(16 * 1024);
  while (true) {
    const n = await readSome(chat.conn, buffer);
    // Closed locally: the chat is over, nothing more is shown.
    if (n === "closed") return n;
    if (n === "eof" || n === "reset") {
      for (const received of toLines(null)) show(chat, received);
      return n;
    }
    chat.silence.heard();
    for (const received of toLines(buffer.subarray(0, n))) show(chat, received);
  }
}

/** One conn.read() into `buffer`: the byte count, or how the read side ended. */
async function readSome(conn: ChatConn, buffer: Uint8Array): Promise<number | ReadEnd> {
  try {
    return await conn.read(buffer) ?? "eof";
  } catch (err) {
    // Interrupted or BadResource: closed locally (or unusable).
    return err instanceof Deno.errors.ConnectionReset ? "reset" : "closed";
  }
}

/** The note's print(): one received line, unless it is the answer to our own ping. */
function show(chat: Chat, received: Received): void {
  if ("local" in received) return chat.view.local(received.local);
  const line = received.server;
  const first = chat.linesSeen++ === 0;
  if ((first || chat.admitting) && isWelcome(line)) {
    chat.greeted = true;
    chat.admitting = false;
    chat.silence.start();
    decideNick(chat); // sent now, before the others hear of us
  } else if (first && isPasswordPrompt(line)) {
    // chat_server.ts with --password-file: the user's /pass must go now; --nick waits on.
    chat.admitting = true;
    releaseHeld(chat);
  }
  if (chat.silence.isOwnPong(line)) return;
  chat.ownNick = nickFromNotice(line) ?? chat.ownNick;
  if (chat.greeted) chat.maxLineBytes = lineLimitFromNotice(line) ?? chat.maxLineBytes;
  chat.view.incoming(line, chat.greeted && mentionsNick(line, chat.ownNick));
  // After the prompt is shown: the answer, or the question, comes below it.
  if (chat.admitting && (first || isWrongPassword(line))) onPasswordWanted(chat, !first);
  if (first && !chat.greeted && !chat.admitting) {
    decideNick(chat, "the server did not greet like chat_server.ts");
  }
}

// --------------------------------------------------------------- helpers ---

/** A failed write for the error: line, in a few words, without Deno's "(os error N)". */
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
