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
//   socket() + connect()          main(): connectPlain, Deno.connect via connectTcp
//                                 (lib/net.ts); with --tls, connectTls (lib/client_tls.ts)
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
//   recv() == b"" (not checked)   exitStatus() (lib/client_ending.ts): "* connection
//                                 closed by server", 0; errors: one error: line, 1
//   client_sock.close()           main()'s finally: closeQuietly(conn)
// What the note lacks entirely: the server's first lines, which decide --nick,
// pings and the line limit (lib/client_greeting.ts); the silence watch
// (lib/silence_watch.ts); a room password (--password-file, or asked on the
// terminal: lib/client_password.ts); TLS (--tls, --ca: lib/client_tls.ts); and
// mentions of your nick (highlighted, the bell rung: lib/client_lines.ts).

import process from "node:process";
import {
  onStopSignal,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  runMain,
  signalExitCode,
  type StopSignal,
  UsageError,
} from "./utils.ts";
import { closeQuietly, connectTcp, formatAddress } from "./lib/net.ts";
import { asOthersSeeIt, createReceiver, type Received } from "./lib/client_lines.ts";
import { type ChatInput, type ClientView, pipedChat, terminalChat } from "./lib/client_view.ts";
import { type Greeting, parseNick, readGreeting } from "./lib/client_greeting.ts";
import {
  answerPassword,
  type GivenPassword,
  maskPassword,
  type PasswordAnswer,
  readPasswordFile,
} from "./lib/client_password.ts";
import { connectTls, readCaFile } from "./lib/client_tls.ts";
import { type Ending, exitStatus, type ReadEnd } from "./lib/client_ending.ts";
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
/me action, /away [REASON], /back, /ping, /help, /quit. /quit, Ctrl+D or
Ctrl+C leave the chat.

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
  const password = passwordFile === undefined ? undefined : await readPasswordFile(passwordFile);

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
    chat.greeting.stop();
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

// ------------------------------------------------------------------- chat ---

/** The connection to the server: plain TCP, or TLS with --tls. */
type ChatConn = Deno.TcpConn | Deno.TlsConn;

/** What the command line asks of the conversation. */
interface ChatOptions {
  timeoutSecs: number;
  /** --nick NAME. */
  nick?: string;
  /** --password-file's password, sent when (and only if) the server asks. */
  password?: GivenPassword;
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
  /** What the server's first lines said: welcome, password prompt, --nick, line limit. */
  greeting: Greeting;
  password: PasswordAnswer;
  /** Ends the chat; only the first call counts. */
  end(ending: Ending): void;
  ended: Promise<Ending>;
  /** The sender's queue is full: input stays paused until it drains. */
  backlogFull: boolean;
  /** stdin ended, or we closed it: nothing may resume it. */
  inputClosed: boolean;
  /** leave() ran: typed lines are ignored from now on. */
  leaving: boolean;
}

/** Sets up the conversation on `conn`: input, view, sender, silence watch, greeting. */
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
  const send = (line: string) => chat.sender.send(line);
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
    greeting: readGreeting(nick, {
      welcomed: () => chat.silence.start(),
      send,
      notice: (line) => view.local(line),
      passwordWanted: (refused) => chat.password.wanted(refused),
      typed: (line) => onTyped(chat, line),
      inputEnded() {
        if (!chat.leaving) onInputEnd(chat);
      },
      pause: () => input.pause(),
      resume: () => resumeInput(chat),
    }, options.password !== undefined),
    password: answerPassword(options.password, {
      interactive,
      view,
      send,
      fail: (error) => end({ kind: "error", error }),
    }),
    end,
    ended,
    backlogFull: false,
    inputClosed: false,
    leaving: false,
  };
  return chat;
}

/** Reads typed lines again, unless something still holds them back. */
function resumeInput(chat: Chat): void {
  if (!chat.inputClosed && !chat.backlogFull && !chat.greeting.holding) chat.input.resume();
}

/** A typed line: sent (the note's send), shown as the room sees it, or /quit. */
function onTyped(chat: Chat, line: string): void {
  if (chat.leaving) return;
  if (chat.password.asking) return chat.password.typed(line);
  if (chat.interactive && line === "") return; // the note's client quit here
  if (chat.greeting.holding) return chat.greeting.hold(line); // --nick goes first
  if (line.trim() === "/quit") return leave(chat);
  // Over the server's limit it would only come back refused: a terminal keeps it to shorten.
  const refusal = chat.greeting.overLimit(line);
  if (refusal !== undefined) {
    chat.view.local(chat.interactive ? `${refusal}; it is still in the input` : refusal);
    return chat.view.keep(line);
  }
  chat.sender.send(line);
  if (!chat.interactive) return;
  const shown = asOthersSeeIt(line, chat.greeting.ownNick ?? "you");
  // A command: its answer will come. A password is not left on the screen.
  if (shown === undefined) chat.view.echo(maskPassword(line));
  else chat.view.sent(shown);
}

/** End of stdin: Ctrl+D leaves a terminal chat; a script half-closes and keeps reading. */
function onInputEnd(chat: Chat): void {
  if (chat.inputClosed) return; // our own close() at the end
  if (chat.greeting.holding && !chat.interactive) return chat.greeting.holdEnd();
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
  chat.greeting.arrived(line); // a welcome sends --nick; a password prompt lets /pass out
  if (chat.silence.isOwnPong(line)) return;
  chat.view.incoming(line, chat.greeting.learn(line)); // true: it names us
  chat.greeting.shown(line); // below it: the password question, or --nick given up
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
