#!/usr/bin/env -S deno run --allow-net --allow-read=lib/cluster.ts
// chat_server.ts: the notes' section "模拟QQ聊天" (the server half).
//
//   deno run -A chat_server.ts [--host H] [--port P] [--max-clients N]
//                              [--max-line BYTES] [--max-queue BYTES] [--idle-timeout SECS]
//                              [--history N] [--motd FILE] [--password-file FILE]
//                              [--max-rate N] [--redis URL [--room NAME]]
//                              [--tls-cert FILE --tls-key FILE]
//   nc 127.0.0.1 8080              # any number of these, or chat_client.ts
//
// The note's server takes one client at a time and alternates strictly:
// recv(1024), print, input() a reply, send(msg.encode) (a bug: the method,
// not its result). Nobody can speak twice in a row, a second client waits
// until the first leaves, a Chinese character cut at byte 1024 is garbled,
// and the loop closes the client after its first message.
//
// Here many clients chat at once in full duplex, like the Go book's chat
// server: one room owns the client set (lib/room.ts), each client has its
// own reader loop (readLoop below) and its own output queue (lib/outbox.ts),
// so a client that stops reading never stalls the others. The operator's
// console (the note's input()) speaks to everyone as <server>. With --redis,
// several instances are one room (lib/cluster.ts, loaded only then).
//
// Reading guide (the note's line -> where it happens here):
//   socket() + setsockopt(SO_REUSEADDR) + bind() + listen(128)
//                                  main(): Deno.listen, which sets SO_REUSEADDR itself
//                                  (withHints, lib/net.ts, explains its failures)
//   while True: accept()           acceptLoop(): one reader loop per client, at once
//   recv(1024), len(...) > 0       readLoop(): conn.read() until EOF, framed into
//                                  lines by lib/lines.ts (never a cut character)
//   print("客户端说：...")           the console log (lib/console_log.ts)
//   input("请输入回复内容： ")          attachConsole(): the operator's lines, never blocking
//   client_sock.send(...)          room.say / room.sendTo -> each client's outbox
//   client_sock.close()            room.leave(): the outbox drains, then closes
//   server_sock.close()            stop(): listener closed, everyone told, sockets closed
//
// Wire protocol (docs/protocol.md), UTF-8 lines ending in \n (\r\n accepted):
//   <nick> text             a chat line        <nick> (private) text   a /msg to you
//   * text                  a notice           ! text                  an error, to you only

import { createInterface } from "node:readline";
import process from "node:process";
import { onStopSignal, paint, parseFlags, parseHost, parsePort, runMain } from "./utils.ts";
import {
  acceptClient,
  announceListening,
  closeQuietly,
  formatAddress,
  withHints,
  writeAll,
} from "./lib/net.ts";
import { type ConsoleLog, pipedLog, terminalLog } from "./lib/console_log.ts";
import { openLineEditor } from "./lib/line_editor.ts";
import { listenTlsNoDelay, type TlsClientConn, TlsListener } from "./lib/tls_server.ts";
import { PASSWORD_PROMPT, PasswordGate } from "./lib/password.ts";
import { CHAT_FLAGS, chatOptions } from "./lib/chat_options.ts";
import { LineBucket } from "./lib/rate_limit.ts";
import { createByteLineSplitter, LINE_TOO_LONG } from "./lib/lines.ts";
import { nextReadSize, READ_BUFFER_MIN } from "./lib/read_buffer.ts";
import { decodeLine, isPlainChat, plainRun, splitWord } from "./lib/chat_text.ts";
import { operatorCommand } from "./lib/console_commands.ts";
import { type Member, Room } from "./lib/room.ts";
import type { JoinCluster } from "./lib/room_link.ts";

const USAGE =
  `usage: deno run -A chat_server.ts [--host H] [--port P] [--max-clients N] [--max-line BYTES]
                                  [--max-queue BYTES] [--idle-timeout SECS] [--history N]
                                  [--motd FILE] [--password-file FILE] [--max-rate N]
                                  [--redis URL [--room NAME]] [--tls-cert FILE --tls-key FILE]

A multi-client, full-duplex chat room: the notes' section "模拟QQ聊天".
Clients: chat_client.ts, nc, telnet. Lines typed here go to everyone as <server>.

options:
  --host H              address to listen on (default 127.0.0.1; 0.0.0.0 opens it to the LAN)
  -p, --port P          port to listen on (default 8080; 0 picks any free port)
  --max-clients N       clients at once; a newcomer past it gets "! server full" (default 10000)
  --max-line BYTES      longest line accepted; longer ones get "! line too long" (default 4096)
  --max-queue BYTES     unsent output a client may leave unread: past it, senders wait
                        for a client that took output in the last 0.1 s; one that
                        took nothing for 1 s, or left twice it unread, is dropped as
                        too slow (default 1048576)
  --idle-timeout SECS   disconnect clients silent this long (default 0: never)
  --history N           recent public lines a newcomer is shown after its welcome
                        (default 50; 0: none); with --redis, the room's, kept in Redis
  --motd FILE           a message of the day: the file's lines, sent with the welcome
                        (each as a notice, "* LINE")
  --password-file FILE  a room password, the file's first line: a newcomer gets only
                        "* password required: /pass PASSWORD" until it sends it; 3 wrong
                        ones or 30 s without it close the connection
  --max-rate N          lines a second per client, bursts up to 2N (default 20; 0: no
                        limit); a client over it is slowed (its lines wait in TCP), told once
  --redis URL           be one room with every instance using this Redis
                        (redis://HOST:PORT); see docs/scaling.md
  --room NAME           which room on that Redis (default lobby)
  --tls-cert FILE       speak TLS on --port with this certificate (PEM; deno task cert
                        makes one); needs --tls-key. Clients: chat_client.ts --tls,
                        ncat --ssl, openssl s_client
  --tls-key FILE        the certificate's private key (PEM)
  -h, --help            show this help

Permissions: --allow-net; files named by flags also need --allow-read=FILE, and
--redis --allow-read=lib/cluster.ts (-A covers everything).

client commands: /nick NAME, /who [-v], /msg NAME text, /me action, /away [REASON], /back,
                 /ping, /help, /quit
console commands: /who [-v], /kick NAME, /ban NAME, /unban ADDRESS, /bans, /mute NAME,
                  /unmute NAME, /quit; any other line is sent as <server>

The first line printed is "listening on HOST:PORT" with the real port.
Ctrl+C, SIGTERM or /quit tell every client "* server shutting down" and exit 0.
Exit status: 0 after a shutdown, 1 runtime error (e.g. port in use, Redis unreachable),
2 bad usage.`;

const CLUSTER_MODULE = new URL("./lib/cluster.ts", import.meta.url).href;
type ClusterModule = { joinCluster: JoinCluster };

/** How long a shutdown waits for the console log to be written. */
const LOG_DRAIN_MS = 2000;

// ----------------------------------------------------------------- main ---

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, CHAT_FLAGS, USAGE);
  const host = parseHost(flags.host);
  const port = parsePort(flags.port);
  const options = await chatOptions(flags); // every flag checked, the files it names read
  const { maxClients, maxLine, maxQueue, maxRate, password, tls } = options;

  // socket() + bind() + listen(): Deno.listen does all three, SO_REUSEADDR included.
  // With TLS, lib/tls_server.ts: Deno.listenTls would leave Nagle's algorithm on.
  const where = formatAddress({ hostname: host, port });
  const listener = tls ? await listenTlsNoDelay(host, port, tls) : withHints(
    `listen on ${where}`,
    () => Deno.listen({ hostname: host, port, tcpBacklog: 1024 }),
  );

  const label = formatAddress(listener.addr);
  const { history, motd, cluster, idleSecs } = options;
  const room = new Room({ maxQueue, maxLine, history, motd, label, log: () => {} });
  if (cluster) {
    // Loaded only now, from a specifier Deno cannot see ahead of time: a
    // literal import() makes Deno fetch the Redis client (12 MB from npm)
    // on a first run without --redis too, even for --help.
    const { joinCluster }: ClusterModule = await import(CLUSTER_MODULE);
    room.link(await joinCluster(cluster.url, cluster.room, label, room.asLocalRoom()));
  }
  let stopping: Promise<void> | undefined;
  const stop = () => {
    closeQuietly(listener); // the accept loop ends
    stopping ??= room.shutdown();
  };
  const removeSignals = onStopSignal(stop);
  const idleTimer = idleSecs > 0
    ? setInterval(() => room.dropIdle(idleSecs * 1000), Math.min(idleSecs * 1000, 1000))
    : undefined;
  announceListening(listener); // only now: whoever waits for it may signal at once
  // After it, so that stdout's first line is the readiness line on a terminal
  // too, where the console draws a prompt. (No signal is handled in between:
  // nothing here awaits.)
  const operatorConsole = attachConsole(room, stop);
  room.log = operatorConsole.log;

  await acceptLoop(room, listener, { maxClients, maxLine, maxRate, password });
  stop();
  await stopping;
  await Promise.race([operatorConsole.drained(), delay(LOG_DRAIN_MS)]);
  operatorConsole.close(); // the terminal as it was: no prompt left, no raw mode
  removeSignals();
  clearInterval(idleTimer);
  return 0;
}

// ------------------------------------------------- accept, read, commands ---

/**
 * The note's `while True: accept()`, but a client does not wait for the one
 * before it to leave: each gets its own reader loop at once. Returns when
 * the listener closes.
 */
async function acceptLoop(
  room: Room,
  listener: Deno.TcpListener | TlsListener,
  rules: Rules,
): Promise<void> {
  while (true) {
    const conn = listener instanceof TlsListener
      ? await listener.accept()
      : await acceptClient(listener);
    if (!conn) return;
    if (room.closing) {
      closeQuietly(conn);
    } else if (room.members.size >= rules.maxClients) {
      turnAway(conn, "! server full, try again later");
    } else if (room.isBanned(conn.remoteAddr.hostname)) {
      turnAway(conn, "! you are banned");
    } else {
      readLoop(room, conn, rules);
    }
  }
}

/** A client's connection: plain TCP, or TLS (lib/tls_server.ts) shaped like it. */
type ClientConn = Deno.TcpConn | TlsClientConn;

/** What a reader loop needs besides the room: the limits, and the way in. */
interface Rules {
  maxClients: number;
  maxLine: number;
  /** Lines a second per client, bursts up to twice that (--max-rate; 0: unlimited). */
  maxRate: number;
  /** The room password (--password-file), if there is one. */
  password?: string;
}

/** A newcomer refused (server full, banned) is told why, not silently dropped. */
function turnAway(conn: ClientConn, why: string): void {
  tell(conn, why).finally(() => closeQuietly(conn));
}

/** One line to a client that is not (yet) in the room: written whole, or lost with it. */
async function tell(conn: ClientConn, line: string): Promise<void> {
  await writeAll(conn, new TextEncoder().encode(`${line}\n`)).catch(() => {});
}

/**
 * One client: joins the room (with a password, once it has given it), then
 * the note's recv() loop: read, frame into lines, hand each to the room,
 * until EOF (the note's `len(recv_data) == 0`).
 */
async function readLoop(room: Room, conn: ClientConn, rules: Rules): Promise<void> {
  // Chat lines are small and should leave at once, not wait for Nagle's
  // algorithm (Deno leaves it on); keep-alive eventually notices a peer
  // that vanished without a FIN.
  conn.setNoDelay(true);
  conn.setKeepAlive(true);
  // With a password a client waits at the door (lib/password.ts), not in the room.
  const door = rules.password === undefined
    ? undefined
    : new PasswordGate(rules.password, () => closeQuietly(conn));
  let client = door ? undefined : await room.join(conn);
  if (door) await tell(conn, PASSWORD_PROMPT);
  const flood = rules.maxRate > 0 ? new LineBucket(rules.maxRate) : undefined;
  const answer = (line: string) => client ? room.sendTo(client, line) : tell(conn, line);
  const splitLines = createByteLineSplitter(rules.maxLine);
  let buffer = new Uint8Array(READ_BUFFER_MIN);
  try {
    while (!client?.gone) {
      // A reader that is behind is waited for: stop reading, and TCP
      // slows this sender down (see lib/outbox.ts).
      const behind = room.caughtUp();
      if (behind) await behind;
      if (client?.gone) break;
      const n = await conn.read(buffer);
      if (n === null) break; // EOF: the client closed its side
      if (client) client.lastHeard = Date.now();
      // The splitter copies what it keeps, so the buffer is free again now.
      const lines = splitLines(buffer.subarray(0, n));
      let allInRuns = lines.length > 0; // until a line is handled on its own
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i];
        if (client?.gone) break;
        // Flood control counts every line, before /pass too. Over the rate
        // this loop waits, and does not read meanwhile: TCP holds the lines.
        const pace = flood?.take();
        if (pace?.warn) await answer(`! slow down: at most ${rules.maxRate} lines a second`);
        if (pace?.waitMs) await delay(pace.waitMs);
        if (line === LINE_TOO_LONG) {
          await answer(`! line too long (most ${rules.maxLine} bytes); it was discarded`);
          continue;
        }
        if (!client) {
          const verdict = door!.check(line);
          if (verdict.admitted) {
            client = await room.join(conn);
            continue;
          }
          await tell(conn, verdict.reply);
          if (verdict.close) return wrongTooOften(room, conn);
          continue;
        }
        // Without flood control, a run of plain chat lines (a paste, a
        // flood) goes to the room as one block: a delivery per run, not per line.
        const run = flood || i + 1 === lines.length ? undefined : plainRun(lines, i);
        if (run && run.length > 1) {
          room.lineArriving(client, line);
          room.sayPlainLines(client, run);
          i += run.length - 1;
          continue;
        }
        // Commands that ask the other instances (/nick) finish before the
        // client's next line is handled: its lines stay in order.
        allInRuns = false;
        const pending = handleLine(room, client, line);
        if (pending) await pending;
      }
      // Sized by what this read brought (lib/read_buffer.ts).
      const size = nextReadSize(buffer.length, n, allInRuns);
      if (size !== buffer.length) buffer = new Uint8Array(size);
    }
  } catch {
    // Reset, or closed locally (kick, too slow, shutdown): this client only.
  } finally {
    door?.dispose();
  }
  if (client) room.leave(client);
  else closeQuietly(conn);
}

/** The third wrong password: the connection is closed, the operator told (not the password). */
function wrongTooOften(room: Room, conn: ClientConn): void {
  room.log(`! ${formatAddress(conn.remoteAddr)} gave a wrong password 3 times; disconnected`);
  closeQuietly(conn);
}

/** One line from a client: chat, or a command. A promise only when it had to ask the cluster. */
function handleLine(room: Room, client: Member, raw: Uint8Array): Promise<void> | void {
  // Joins and leaves before this line go out first; a newcomer is announced
  // now, or after this line when it is a /nick that names it.
  room.lineArriving(client, raw);
  // Printable ASCII (most chat lines) is relayed as it came, never decoded.
  if (isPlainChat(raw)) return room.sayPlain(client, raw);
  const line = decodeLine(raw); // control characters escaped, bad bytes U+FFFD
  if (line.trim() === "") return;
  if (!line.startsWith("/")) return room.say(client, line);
  const [command, rest] = splitWord(line);
  switch (command) {
    case "/nick":
      return room.rename(client, rest);
    case "/who":
      return room.sendTo(client, room.whoLine(rest === "-v"));
    case "/msg": {
      const [nick, text] = splitWord(rest);
      if (!nick || !text) return room.sendTo(client, "! usage: /msg NAME text");
      return room.privateMessage(client, nick, text);
    }
    case "/me":
      if (!rest) return room.sendTo(client, "! usage: /me action");
      return room.act(client, rest);
    case "/help":
      return HELP_LINES.forEach((help) => room.sendTo(client, help));
    case "/away":
      return room.setAway(client, rest);
    case "/back":
      return room.setAway(client, undefined);
    case "/ping": // a client's liveness check: a black-holed server never answers
      return room.sendTo(client, rest ? `* pong ${rest}` : "* pong");
    case "/quit":
      room.sendTo(client, "* bye");
      return room.leave(client);
    default:
      return room.sendTo(client, `! unknown command ${command}; type /help`);
  }
}

const HELP_LINES = [
  "* commands:",
  "*   /nick NAME       change your name (1-24 letters, digits, _ or -)",
  "*   /who [-v]        list who is online (-v: and on which server)",
  "*   /msg NAME text   send text to NAME only",
  "*   /me action       tell the room what you are doing",
  "*   /away [reason]   say you are away (/who shows it; a /msg to you says so); /back",
  "*   /ping            check the server is there (answers * pong)",
  "*   /quit            leave",
  "* anything else is sent to everyone",
];

// -------------------------------------------------------------- console ---

/**
 * The operator's console, the note's input("请输入回复内容"), but it never
 * blocks the room. On a terminal the line editor (lib/line_editor.ts, the
 * one chat_client.ts uses) keeps the operator's input on the bottom row and
 * log lines are printed above it; it draws a prompt, so it is attached after
 * the readiness line. Without a terminal (or after EOF, e.g. `< /dev/null`)
 * the room simply keeps running. What each line does: lib/console_commands.ts.
 */
function attachConsole(room: Room, stop: () => void): ConsoleLog {
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    const input = createInterface({ input: process.stdin, terminal: false });
    input.on("line", (line) => operatorCommand(room, line, stop));
    return pipedLog();
  }
  const editor = openLineEditor({
    line(line) {
      // A chat line is shown once, as the log's "<server> text"; a command
      // stays above its answer, as typed.
      if (line.trim().startsWith("/")) editor.printAbove(`${paint("dim", "> ")}${line}`);
      operatorCommand(room, line, stop);
    },
    interrupt: stop, // raw mode turns Ctrl+C into a key
    end: stop, // Ctrl+D on an empty line
  }, { prompt: "> ", promptColour: "dim" });
  return terminalLog(editor);
}

// -------------------------------------------------------------- helpers ---

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
