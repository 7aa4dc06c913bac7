// chat_server.ts: the notes' section "模拟QQ聊天" (the server half).
//
//   deno run -A chat_server.ts [--host H] [--port P] [--max-clients N]
//                              [--max-line BYTES] [--max-queue BYTES] [--idle-timeout SECS]
//                              [--redis URL [--room NAME]]
//   nc 127.0.0.1 8080              # any number of these, or chat_client.ts
//
// The note's server takes one client at a time and alternates strictly:
// recv(1024), print, input() a reply, send(msg.encode) (a bug: the method,
// not its result). Nobody can speak twice in a row, a second client waits
// until the first leaves, a Chinese character cut at byte 1024 is garbled,
// and the loop closes the client after its first message.
//
// Here many clients chat at once in full duplex, like the Go book's chat
// server: each client has its own reader loop and its own bounded output
// queue, and one room object owns the client set. Broadcasting only appends
// to queues, so a reader that stops never stalls the room: it is dropped
// when its queue passes --max-queue. (One that is only behind, but reading,
// is waited for.) The operator's console (the note's input())
// speaks to everyone as <server>. With --redis, several instances are one
// room (chat_cluster.ts, loaded only then).
//
// Wire protocol, UTF-8 lines ending in \n (\r\n accepted), from the server:
//   <nick> text             a chat line        <nick> (private) text   a /msg to you
//   * text                  a notice           ! text                  an error, to you only

import { createInterface } from "node:readline";
import process from "node:process";
import type { Cluster, LocalRoom } from "./chat_cluster.ts";
import {
  acceptClient,
  announceListening,
  closeQuietly,
  formatAddress,
  isPlainAscii,
  listenTcp,
  onStopSignal,
  paint,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  runMain,
  sanitizeText,
  UsageError,
  writeAll,
} from "./utils.ts";
import { createByteLineSplitter, LINE_TOO_LONG } from "./lib/lines.ts";

export const USAGE =
  `usage: deno run -A chat_server.ts [--host H] [--port P] [--max-clients N] [--max-line BYTES]
                                  [--max-queue BYTES] [--idle-timeout SECS]
                                  [--redis URL [--room NAME]]

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
  --redis URL           be one room with every instance using this Redis
                        (redis://HOST:PORT); see "Scaling out" in the README
  --room NAME           which room on that Redis (default lobby)
  -h, --help            show this help

client commands: /nick NAME, /who [-v], /msg NAME text, /me action, /ping, /help, /quit
console commands: /who [-v], /kick NAME, /quit; any other line is sent as <server>

The first line printed is "listening on HOST:PORT" with the real port.
Ctrl+C, SIGTERM or /quit tell every client "* server shutting down" and exit 0.
Exit status: 0 after a shutdown, 1 runtime error (e.g. port in use, Redis unreachable),
2 bad usage.`;

export interface RoomOptions {
  maxClients: number;
  maxLine: number;
  maxQueue: number;
  /** 0 disables the idle check. */
  idleTimeoutMs: number;
  /**
   * Where the operator's console lines go: a string, or a line already
   * encoded with its \n (a relayed line: no second copy).
   */
  log: (line: string | Uint8Array) => void;
}

interface Client {
  room: Room;
  conn: Deno.TcpConn;
  nick: string;
  /** Encoded lines waiting to be written, oldest first. */
  queue: Uint8Array[];
  /** Bytes in `queue` plus the unwritten rest of the write in flight. */
  queued: number;
  writing: boolean;
  /** Waiting in room.dirty for the next flush. */
  dirty: boolean;
  /** The socket is closed; nothing more is queued or written. */
  closed: boolean;
  lastHeard: number;
  /** performance.now() when its output last went out (or it had none). */
  lastProgress: number;
  /** Set once the client has left the room; its queue may still drain. */
  gone: boolean;
}

/** The one server object: it owns the client set and every nick in use. */
export interface Room {
  options: RoomOptions;
  clients: Set<Client>;
  /** lower-cased nick -> client: nicks are unique case-insensitively. */
  nicks: Map<string, Client>;
  nextGuest: number;
  closing: boolean;
  /** Clients with output waiting for the next flush. */
  dirty: Client[];
  /** Clients with more than --max-queue unsent; see HOLD_MS. */
  backlogged: Set<Client>;
  /** While the room waits for readers that are behind: resolves when it stops. */
  hold?: { done: Promise<void>; release: () => void; timer: ReturnType<typeof setInterval> };
  flushScheduled: boolean;
  /** performance.now() before which the next flush should not start. */
  nextFlushAt: number;
  /**
   * The last queue joined for a write and its bytes, for the next client
   * whose queue holds the very same lines (forgotten after each round).
   */
  lastJoined?: { lines: Uint8Array[]; bytes: Uint8Array };
  /** Where lines are encoded; see encodeLine. */
  slab: Uint8Array;
  slabUsed: number;
  /** Big rooms: join and leave notices waiting to go out together. */
  presence: { line: string; newcomer?: Client }[];
  presenceTimer?: ReturnType<typeof setTimeout>;
  /** The welcome's names while the room is big; see welcomeWhoLine. */
  welcomeNames?: string;
  /** This instance's listening address, as /who -v shows it. */
  label: string;
  /** The other instances sharing the room (--redis), if any. */
  cluster?: Cluster;
}

const encoder = new TextEncoder();
const utf8 = new TextDecoder();
const NOTHING = new Uint8Array();
const NICK_PATTERN = /^[\p{L}\p{N}_-]{1,24}$/u;
const RESERVED_NICKS = new Set(["server"]);
// Every client keeps a read pending, and the pending read holds its buffer:
// a small one keeps an idle client cheap; a client that fills it (a busy
// sender, a paste) gets a bigger one, and a small one again once its reads
// are small. (64 KiB reads relayed faster but left far more heap behind.)
const READ_BUFFER_MIN = 128;
const READ_BUFFER_MAX = 4096;
const FAREWELL_FLUSH_MS = 2000;
// How many writes a second a busy room aims at; see flushDirty. Each write
// costs a syscall and a wakeup of its reader whatever it carries: at 100,000
// a second, 1,000 busy clients got ~5 lines per write, the server and its
// readers ran out of CPU together and p99 latency rose to 0.1-0.6 s.
const WRITES_PER_SECOND = 50_000;
// A room this small flushes at once, busy or not: its rounds are cheap and
// it stays interactive.
const SMALL_ROOM = 200;
// The longest pause between rounds, whatever the room's size.
const MAX_FLUSH_PAUSE_MS = 25;
// In a room bigger than SMALL_ROOM, joins and leaves are announced in
// batches at most this old; see announcePresence. A batch costs one write
// per person, so a bigger room waits longer: enough for its batches to take
// at most PRESENCE_WRITES_PER_SECOND, never more than the longest wait.
const PRESENCE_BATCH_MS = 250;
const PRESENCE_BATCH_MAX_MS = 2000;
const PRESENCE_WRITES_PER_SECOND = 5000;
// In a room of more than PRESENCE_NAME_ALL, a batch names this many joins
// and leaves and counts the rest; a smaller room's batches name everyone.
const PRESENCE_NAMED = 10;
const PRESENCE_NAME_ALL = 1000;
// A client past --max-queue that took nothing for this long has stopped reading.
const STALL_MS = 1000;
// A client past --max-queue that took something in the last HOLD_MS is only
// behind: the room stops reading from its senders until it catches up (TCP
// then slows them down), rather than queue without end or drop a reader
// that is reading. One that took nothing for that long is not waited for,
// so a stuck reader holds the room up for HOLD_MS once: 100 ms cost a
// fifth of the throughput of the bench's 0.4 s push, 50 ms a tenth, but
// with 50 ms a load generator paused by its machine lost 5 readers (in 1
// run of 13; none in 8 with 100 ms).
const HOLD_MS = 100;
const HOLD_CHECK_MS = 10;
// Outgoing lines are encoded into shared slabs of this size, one allocation
// per slab instead of one per line; a line over a quarter of it gets its own.
const SLAB_BYTES = 64 * 1024;
const NEWLINE = 0x0a;
const LOG_BACKLOG_BYTES = 1024 * 1024;
// A console log going to a pipe or file is written at most this late. Each
// write wakes whoever reads the pipe: at a thousand lines a second, a write
// per event-loop turn kept a third process busy on the room's cores.
// Once this much waits, it is written at once: a flood is logged as fast as
// stdout takes it.
const LOG_FLUSH_MS = 50;
const LOG_FLUSH_BYTES = 64 * 1024;

export function createRoom(options: RoomOptions): Room {
  return {
    options,
    clients: new Set(),
    nicks: new Map(),
    nextGuest: 1,
    closing: false,
    dirty: [],
    backlogged: new Set(),
    flushScheduled: false,
    nextFlushAt: 0,
    slab: new Uint8Array(SLAB_BYTES),
    slabUsed: 0,
    presence: [],
    label: "",
  };
}

// ------------------------------------------------------------- the room ---

/** Accepts clients until the listener closes. */
export async function serve(room: Room, listener: Deno.TcpListener): Promise<void> {
  while (true) {
    const conn = await acceptClient(listener);
    if (!conn) return;
    if (room.closing) {
      conn.close();
      continue;
    }
    if (room.clients.size >= room.options.maxClients) {
      turnAway(conn);
      continue;
    }
    handleClient(room, conn);
  }
}

/** Past --max-clients the newcomer is told why, not silently dropped. */
function turnAway(conn: Deno.TcpConn): void {
  conn.write(encoder.encode("! server full, try again later\n"))
    .catch(() => {})
    .finally(() => closeQuietly(conn));
}

async function handleClient(room: Room, conn: Deno.TcpConn): Promise<void> {
  const client = await join(room, conn);
  const splitLines = createByteLineSplitter(room.options.maxLine);
  let buffer = new Uint8Array(READ_BUFFER_MIN);
  try {
    while (!client.gone) {
      if (room.backlogged.size > 0) await readersCaughtUp(room);
      if (client.gone) break;
      const n = await conn.read(buffer);
      if (n === null) break;
      client.lastHeard = Date.now();
      const chunk = buffer.subarray(0, n);
      // The splitter copies what it keeps, so the old buffer is free now.
      const size = nextReadSize(buffer.length, n);
      if (size !== buffer.length) buffer = new Uint8Array(size);
      for (const line of splitLines(chunk)) {
        if (client.gone) break;
        if (line === LINE_TOO_LONG) {
          sendTo(client, `! line too long (most ${room.options.maxLine} bytes); it was discarded`);
        } else {
          // Commands that ask the other instances (/nick) finish before
          // the client's next line is handled: its lines stay in order.
          const pending = handleLine(room, client, line);
          if (pending) await pending;
        }
      }
    }
  } catch {
    // Reset, or closed locally (kick, too slow, shutdown): this client only.
  }
  leave(room, client, "");
}

/** A read that filled the buffer asks for a bigger one; a small read, the small one. */
function nextReadSize(size: number, n: number): number {
  if (n === size) return Math.min(size * 8, READ_BUFFER_MAX);
  if (n <= READ_BUFFER_MIN) return READ_BUFFER_MIN;
  return size;
}

async function join(room: Room, conn: Deno.TcpConn): Promise<Client> {
  // Interactive lines should leave at once, not wait for Nagle's algorithm;
  // keep-alive eventually notices a peer that vanished without a FIN.
  conn.setNoDelay(true);
  conn.setKeepAlive(true);
  const nick = room.cluster ? await claimGuestNick(room) : guestNick(room);
  const client: Client = {
    room,
    conn,
    nick,
    queue: [],
    queued: 0,
    writing: false,
    dirty: false,
    closed: false,
    lastHeard: Date.now(),
    lastProgress: performance.now(),
    gone: false,
  };
  room.clients.add(client);
  room.nicks.set(client.nick.toLowerCase(), client);
  sendTo(client, `* welcome, you are ${client.nick}`);
  sendTo(client, welcomeWhoLine(room));
  sendTo(client, "* type /help for commands");
  writeQueued(client); // the welcome leaves now, not with the next (paced) round
  const notice = `* ${client.nick} joined`;
  announcePresence(room, notice, client);
  room.cluster?.publish({ type: "join", nick: client.nick, line: notice });
  room.options.log(`${notice} from ${formatAddress(conn.remoteAddr)}`);
  return client;
}

function guestNick(room: Room): string {
  while (true) {
    const nick = `guest${room.nextGuest++}`;
    if (!nickProblem(room, nick)) return nick;
  }
}

/** A guest name free in the whole room (numbered room-wide while linked). */
async function claimGuestNick(room: Room): Promise<string> {
  while (true) {
    const number = await room.cluster?.nextGuestNumber();
    const nick = number === undefined ? guestNick(room) : `guest${number}`;
    if (!nickProblem(room, nick) && await claimNick(room, nick)) return nick;
  }
}

/** Claims `nick` in the other instances too; true when it is ours. */
async function claimNick(room: Room, nick: string): Promise<boolean> {
  return room.cluster ? await room.cluster.claim(nick) : true;
}

/**
 * Removes a client from the room once, telling the others why. Output
 * already queued for it (answers to its last commands) still drains before
 * the socket closes, so `printf '/who\n' | nc -N` sees its answer.
 */
function leave(room: Room, client: Client, reason: string): void {
  if (client.gone) return;
  client.gone = true;
  room.clients.delete(client);
  stopWaitingFor(client); // a leaver is not waited for
  room.welcomeNames = undefined;
  room.nicks.delete(client.nick.toLowerCase());
  const notice = `* ${client.nick} left${reason ? ` (${reason})` : ""}`;
  if (!room.closing) {
    announcePresence(room, notice);
    room.cluster?.release(client.nick);
    room.cluster?.publish({ type: "leave", nick: client.nick, line: notice });
  }
  room.options.log(notice);
  if (!client.writing && client.queue.length === 0) return closeClient(client);
  // A peer that left but does not read its last lines is not waited for long.
  setTimeout(() => closeClient(client), FAREWELL_FLUSH_MS);
}

// ---------------------------------------------------------------- lines ---

/** Handles one line; returns a promise only when it had to ask the cluster. */
function handleLine(room: Room, client: Client, raw: Uint8Array): Promise<void> | void {
  // Whatever the client sees next follows the joins and leaves before its
  // line: a /who or /ping answer never overtakes them.
  sealPresence(room);
  if (isPlainChat(raw)) return sayPlain(room, client, raw);
  const line = sanitizeText(utf8.decode(raw));
  if (line.trim() === "") return;
  if (!line.startsWith("/")) return say(room, `<${client.nick}> ${line}`, client);
  const [command, rest] = splitWord(line);
  switch (command) {
    case "/nick":
      return rename(room, client, rest);
    case "/who":
      return sendTo(client, whoLine(room, rest === "-v"));
    case "/msg":
      return privateMessage(room, client, rest);
    case "/me":
      if (!rest) return sendTo(client, "! usage: /me action");
      return say(room, `* ${client.nick} ${rest}`, client);
    case "/help":
      return HELP_LINES.forEach((help) => sendTo(client, help));
    case "/ping": // a client's liveness check: a black-holed server never answers
      return sendTo(client, rest ? `* pong ${rest}` : "* pong");
    case "/quit":
      sendTo(client, "* bye");
      return leave(room, client, "");
    default:
      return sendTo(client, `! unknown command ${command}; type /help`);
  }
}

const HELP_LINES = [
  "* commands:",
  "*   /nick NAME       change your name (1-24 letters, digits, _ or -)",
  "*   /who [-v]        list who is online (-v: and on which server)",
  "*   /msg NAME text   send text to NAME only",
  "*   /me action       tell the room what you are doing",
  "*   /ping            check the server is there (answers * pong)",
  "*   /quit            leave",
  "* anything else is sent to everyone",
];

/** "word rest of line" -> ["word", "rest of line"]. */
function splitWord(line: string): [string, string] {
  const match = /^(\S+)\s*(.*)$/.exec(line.trim());
  return match ? [match[1], match[2].trim()] : ["", ""];
}

export function nickProblem(room: Room, nick: string, self?: Client): string | undefined {
  if (!NICK_PATTERN.test(nick)) {
    return `invalid nick '${nick}': use 1-24 letters, digits, _ or -`;
  }
  const key = nick.toLowerCase();
  if (RESERVED_NICKS.has(key)) return `nick '${nick}' is reserved`;
  const holder = room.nicks.get(key);
  if (holder && holder !== self) return `nick '${nick}' is taken`;
  if (room.cluster?.findRemote(nick)) return `nick '${nick}' is taken`;
  return undefined;
}

async function rename(room: Room, client: Client, nick: string): Promise<void> {
  if (!nick) return sendTo(client, "! usage: /nick NAME");
  const problem = nickProblem(room, nick, client);
  if (problem) return sendTo(client, `! ${problem}`);
  if (nick === client.nick) return sendTo(client, `* you are already ${nick}`);
  const sameName = nick.toLowerCase() === client.nick.toLowerCase(); // a change of case
  // Redis settles a race between instances; the second check, one between
  // two clients here while the link was down (when a claim cannot fail).
  if (!sameName && !await claimNick(room, nick)) return sendTo(client, `! nick '${nick}' is taken`);
  if (client.gone || nickProblem(room, nick, client)) {
    if (!sameName) room.cluster?.release(nick);
    if (!client.gone) sendTo(client, `! nick '${nick}' is taken`);
    return;
  }
  changeNick(room, client, nick);
  sendTo(client, `* you are now ${nick}`);
}

function changeNick(room: Room, client: Client, nick: string): void {
  const old = client.nick;
  room.nicks.delete(old.toLowerCase());
  room.nicks.set(nick.toLowerCase(), client);
  client.nick = nick;
  room.welcomeNames = undefined;
  if (old.toLowerCase() !== nick.toLowerCase()) room.cluster?.release(old);
  const notice = `* ${old} is now ${nick}`;
  broadcast(room, notice, client);
  room.cluster?.publish({ type: "rename", old, nick, line: notice });
  room.options.log(notice);
}

function privateMessage(room: Room, client: Client, rest: string): void {
  const [nick, text] = splitWord(rest);
  if (!nick || !text) return sendTo(client, "! usage: /msg NAME text");
  const line = `<${client.nick}> (private) ${text}`;
  const target = room.nicks.get(nick.toLowerCase());
  const remote = target ? undefined : room.cluster?.findRemote(nick);
  if (target) sendTo(target, line);
  else if (remote) room.cluster?.publish({ type: "private", to: remote.nick, line });
  else return sendTo(client, `! no one called '${nick}' is online`);
  const name = target?.nick ?? remote?.nick;
  sendTo(client, `* (private to ${name}) ${text}`);
  // The operator sees that it happened, not what was said.
  room.options.log(`* ${client.nick} sent a private message to ${name}`);
}

/** "* online (N): a, b, c", everyone in the room on every instance. */
function whoLine(room: Room, verbose = false): string {
  return `* online (${onlineCount(room)}): ${sortedNames(room, verbose)}`;
}

/** People in the room, on this instance and every other. */
function onlineCount(room: Room): number {
  return room.clients.size + (room.cluster?.remoteCount() ?? 0);
}

/** A newcomer's welcome names this many; /who names everyone. */
const WELCOME_WHO_LIMIT = 30;

/**
 * The welcome's who line names the first few to arrive, so a join costs
 * O(1), not a line as long as the room (10,000 joins would cost O(N^2)).
 * Once the room has more than that, a join leaves those names as they were:
 * they are kept, and forgotten on a leave or a rename.
 */
function welcomeWhoLine(room: Room): string {
  const total = onlineCount(room);
  const names = room.clients.size > WELCOME_WHO_LIMIT
    ? room.welcomeNames ??= sortedNames(room, false, WELCOME_WHO_LIMIT)
    : sortedNames(room, false, WELCOME_WHO_LIMIT);
  const more = total > WELCOME_WHO_LIMIT
    ? ` and ${total - WELCOME_WHO_LIMIT} more (/who lists all)`
    : "";
  return `* online (${total}): ${names}${more}`;
}

/**
 * "a, b, c": the first `limit` people (local ones first), sorted; with
 * `verbose` each nick is followed by its instance's address.
 */
function sortedNames(room: Room, verbose: boolean, limit = Infinity): string {
  const names: string[] = [];
  const add = (nick: string, label: string) => names.push(verbose ? `${nick} [${label}]` : nick);
  for (const client of room.clients) {
    if (names.length >= limit) break;
    add(client.nick, room.label);
  }
  for (const user of room.cluster?.remoteUsers() ?? []) {
    if (names.length >= limit) break;
    add(user.nick, user.label);
  }
  // By code unit, like the nicks alone: " [" sorts before any nick character.
  return names.sort().join(", ");
}

// --------------------------------------------------------------- output ---

/** Tells the local room and every other instance; logs it on the console. */
function say(room: Room, line: string, except?: Client): void {
  sayEncoded(room, encodeLine(room, line), except, line);
}

/**
 * say() for a line already encoded with its \n; its text is decoded only
 * when another instance needs it.
 */
function sayEncoded(room: Room, bytes: Uint8Array, except?: Client, text?: string): void {
  broadcastBytes(room, bytes, except);
  room.cluster?.publish({ type: "say", line: text ?? utf8.decode(bytes.subarray(0, -1)) });
  room.options.log(bytes);
}

/**
 * A chat line of printable ASCII (most of them) needs no decoding, no
 * sanitising and no encoding: its bytes are relayed as they came, after the
 * sender's name. Anything else (commands, blank lines, UTF-8, control
 * characters) takes the way through strings.
 */
function isPlainChat(raw: Uint8Array): boolean {
  return raw.length > 0 && raw[0] !== 0x2f && !isBlank(raw) && isPlainAscii(raw);
}

function isBlank(raw: Uint8Array): boolean {
  return raw.every((byte) => byte === 0x20 || byte === 0x09);
}

function sayPlain(room: Room, client: Client, text: Uint8Array): void {
  const prefix = `<${client.nick}> `;
  const out = reserve(room, prefix.length * 3 + text.length + 1);
  const { written } = encoder.encodeInto(prefix, out);
  out.set(text, written);
  sayEncoded(room, shrink(room, out, written + text.length), client);
}

/** Queues one line for one client. */
function sendTo(client: Client, line: string): void {
  enqueue(client, encodeLine(client.room, line));
}

/** Queues one line for everyone but `except`, encoded once for all. */
export function broadcast(room: Room, line: string, except?: Client): void {
  broadcastBytes(room, encodeLine(room, line), except);
}

function broadcastBytes(room: Room, bytes: Uint8Array, except?: Client): void {
  sealPresence(room); // "* X joined" before anything X says
  const now = performance.now(); // one clock read for all the queues
  for (const client of room.clients) {
    if (client !== except) enqueue(client, bytes, now);
  }
}

/**
 * `${line}\n` as UTF-8, in the room's slab. Lines encoded one after the
 * other lie side by side there, so a client's queue of them is usually one
 * run of bytes, written without copying; see joinLines.
 */
function encodeLine(room: Room, line: string): Uint8Array {
  const most = line.length * 3 + 1; // UTF-8 takes at most 3 bytes per UTF-16 unit
  if (most > SLAB_BYTES / 4) return encoder.encode(`${line}\n`);
  const out = reserve(room, most);
  return shrink(room, out, encoder.encodeInto(line, out).written);
}

/** Room for `most` bytes: the rest of the slab, or a new slab, or their own. */
function reserve(room: Room, most: number): Uint8Array {
  if (most > SLAB_BYTES / 4) return new Uint8Array(most);
  if (room.slabUsed + most > SLAB_BYTES) {
    room.slab = new Uint8Array(SLAB_BYTES); // the old one lives on in the views of it
    room.slabUsed = 0;
  }
  return room.slab.subarray(room.slabUsed);
}

/** Ends the line reserved as `out` after `length` bytes with \n; keeps only that much. */
function shrink(room: Room, out: Uint8Array, length: number): Uint8Array {
  out[length] = NEWLINE;
  if (out.buffer !== room.slab.buffer) return out.subarray(0, length + 1);
  const start = room.slabUsed;
  room.slabUsed += length + 1;
  return room.slab.subarray(start, room.slabUsed);
}

/**
 * Announces a join or a leave: at once in a small room; in a big one,
 * gathered for up to presenceWait() and sent as one buffer shared by
 * everyone. Filling a room of N people announces N joins to up to N people
 * each: one write per person per notice made that O(N^2) in writes and in
 * the memory their churn leaves behind; batched, it is a write per person
 * per batch.
 */
function announcePresence(room: Room, line: string, newcomer?: Client): void {
  if (room.clients.size <= SMALL_ROOM && room.presence.length === 0) {
    broadcast(room, line, newcomer);
    return;
  }
  room.presence.push({ line, newcomer });
  room.presenceTimer ??= setTimeout(() => sealPresence(room), presenceWait(room));
}

function presenceWait(room: Room): number {
  const budget = (room.clients.size / PRESENCE_WRITES_PER_SECOND) * 1000;
  return Math.min(PRESENCE_BATCH_MAX_MS, Math.max(PRESENCE_BATCH_MS, budget));
}

/**
 * Queues the gathered join and leave notices for everyone, encoded once. In
 * a room of over PRESENCE_NAME_ALL, the first PRESENCE_NAMED by name, the
 * rest counted in one line: naming them all sent everyone a line per
 * newcomer, and 5,000 joins into a room of 10,000 made a gigabyte of
 * notices, and the memory of queueing them.
 * A newcomer gets only what came after its own join (its welcome already
 * counted everyone before it), so one counted in the batch gets none of it.
 */
function sealPresence(room: Room): void {
  if (room.presence.length === 0) return;
  clearTimeout(room.presenceTimer);
  room.presenceTimer = undefined;
  const batch = room.presence;
  room.presence = [];
  const naming = room.clients.size > PRESENCE_NAME_ALL ? PRESENCE_NAMED : batch.length;
  const named = batch.slice(0, naming).map(({ line }) => encodeLine(room, line));
  const counted = batch.slice(naming);
  const joins = counted.filter(({ newcomer }) => newcomer).length;
  const total = presenceCount(room, joins, counted.length - joins);
  const bytes = joinLines([...named, total]);
  const shareOf = new Map<Client, Uint8Array>();
  let offset = 0;
  named.forEach((line, i) => {
    offset += line.length;
    const { newcomer } = batch[i];
    if (newcomer) shareOf.set(newcomer, bytes.subarray(offset));
  });
  for (const { newcomer } of counted) if (newcomer) shareOf.set(newcomer, NOTHING);
  const now = performance.now();
  for (const client of room.clients) {
    const share = shareOf.get(client) ?? bytes;
    if (share.length > 0) enqueue(client, share, now);
  }
}

/** "* 12 more joined, 3 more left (/who lists everyone)", encoded; empty for none. */
function presenceCount(room: Room, joined: number, left: number): Uint8Array {
  const counts = [];
  if (joined > 0) counts.push(`${joined} more joined`);
  if (left > 0) counts.push(`${left} more left`);
  if (counts.length === 0) return NOTHING;
  return encodeLine(room, `* ${counts.join(", ")} (/who lists everyone)`);
}

/**
 * Appends to the client's queue and marks it for the next flush. Never
 * awaits: a client that stops reading only fills its own queue (TCP's own
 * buffers have filled by then, so the queue is what it has refused to
 * read). Past --max-queue the room's senders wait for it while it is still
 * taking output (HOLD_MS); it is dropped if it took nothing for STALL_MS,
 * or once it is twice --max-queue behind, which only one the room no
 * longer waits for can reach.
 */
function enqueue(client: Client, bytes: Uint8Array, now = performance.now()): void {
  if (client.closed) return;
  if (client.queued === 0) client.lastProgress = now; // it had caught up
  client.queue.push(bytes);
  client.queued += bytes.length;
  const { maxQueue } = client.room.options;
  if (client.queued > maxQueue) client.room.backlogged.add(client);
  if (
    client.queued > maxQueue &&
    (client.queued > 2 * maxQueue || now - client.lastProgress > STALL_MS)
  ) {
    client.queue = [];
    leave(client.room, client, "too slow");
    closeClient(client);
    return;
  }
  markDirty(client);
}

function markDirty(client: Client): void {
  if (client.dirty || client.writing) return;
  client.dirty = true;
  const room = client.room;
  room.dirty.push(client);
  if (room.flushScheduled) return;
  room.flushScheduled = true;
  const wait = room.nextFlushAt - performance.now();
  if (wait < 1) queueMicrotask(() => flushDirty(room));
  else setTimeout(() => flushDirty(room), wait);
}

/**
 * Starts one write for every client with pending output. Lines queued by
 * everything that happened since the last flush leave in a single write per
 * client. The next flush waits until the room has had time for these writes
 * at WRITES_PER_SECOND: a quiet room flushes at once (low latency), a busy
 * one gathers more lines per write (far fewer syscalls per delivered line).
 */
function flushDirty(room: Room): void {
  const dirty = room.dirty;
  room.dirty = [];
  room.flushScheduled = false;
  room.nextFlushAt = performance.now() + flushPause(room, dirty.length);
  for (const client of dirty) {
    client.dirty = false;
    writeQueued(client);
  }
  room.lastJoined = undefined;
}

/**
 * How long the next round waits: the time `writes` take at
 * WRITES_PER_SECOND. Judged by the room's size, not the round's: rounds
 * split up as writes finish at different times, and small rounds flushed at
 * once would multiply the writes of a busy room again.
 */
function flushPause(room: Room, writes: number): number {
  if (room.clients.size <= SMALL_ROOM) return 0;
  return Math.min(MAX_FLUSH_PAUSE_MS, (writes / WRITES_PER_SECOND) * 1000);
}

/**
 * One write of everything queued (a partial write is finished at once).
 * Never two at once on one socket: lines queued meanwhile go in the next.
 */
async function writeQueued(client: Client): Promise<void> {
  if (client.closed || client.writing || client.queue.length === 0) return;
  client.writing = true;
  const chunk = takeQueue(client);
  try {
    let offset = 0;
    while (offset < chunk.length) {
      offset += await client.conn.write(offset === 0 ? chunk : chunk.subarray(offset));
      client.lastProgress = performance.now();
    }
  } catch {
    // The peer went away; its reader loop sees that too and cleans up.
    client.queue = [];
  }
  client.queued -= chunk.length;
  client.writing = false;
  if (client.queued <= client.room.options.maxQueue) stopWaitingFor(client);
  if (client.queue.length > 0) markDirty(client);
  else if (client.gone) closeClient(client);
}

/**
 * Everything queued for the client as one buffer for one write. Broadcast
 * lines are encoded once and shared by every queue, so in a round most
 * clients hold the very same lines (the room's news since the last round):
 * they share one joined buffer too, instead of a copy each. That is what
 * keeps a burst of joins in a big room, or a flood to many readers, from
 * allocating once per receiver.
 */
function takeQueue(client: Client): Uint8Array {
  const { queue } = client;
  client.queue = [];
  if (queue.length === 1) return queue[0];
  const last = client.room.lastJoined;
  if (last && sameLines(last.lines, queue)) return last.bytes;
  // The same line objects in the same order: the same bytes, whenever joined.
  const bytes = joinLines(queue);
  client.room.lastJoined = { lines: queue, bytes };
  return bytes;
}

function sameLines(a: Uint8Array[], b: Uint8Array[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The lines as one buffer: a view of them where they lie side by side in
 * one slab (lines encoded one after the other, the usual case), else a copy.
 */
function joinLines(lines: Uint8Array[]): Uint8Array {
  let first: Uint8Array | undefined;
  let total = 0;
  let adjacent = true;
  for (const piece of lines) {
    if (piece.length === 0) continue;
    first ??= piece;
    adjacent &&= piece.buffer === first.buffer && piece.byteOffset === first.byteOffset + total;
    total += piece.length;
  }
  if (!first) return NOTHING;
  if (adjacent) return new Uint8Array(first.buffer, first.byteOffset, total);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const piece of lines) {
    joined.set(piece, offset);
    offset += piece.length;
  }
  return joined;
}

function closeClient(client: Client): void {
  client.closed = true;
  client.queue = [];
  stopWaitingFor(client);
  closeQuietly(client.conn);
}

/** The client is no longer past --max-queue (or gone): the senders may go on for it. */
function stopWaitingFor(client: Client): void {
  if (client.room.backlogged.delete(client)) checkHold(client.room);
}

/**
 * Resolves when no client the room waits for (see HOLD_MS) is past
 * --max-queue: every sender's reader loop waits here before its next read.
 */
function readersCaughtUp(room: Room): Promise<void> | void {
  if (room.hold) return room.hold.done;
  if (!isHeld(room)) return;
  const { promise, resolve } = Promise.withResolvers<void>();
  const timer = setInterval(() => checkHold(room), HOLD_CHECK_MS);
  room.hold = { done: promise, release: resolve, timer };
  return promise;
}

/** Lets the senders go on once nobody is waited for (now, or at shutdown). */
function checkHold(room: Room): void {
  if (!room.hold || (!room.closing && isHeld(room))) return;
  clearInterval(room.hold.timer);
  room.hold.release();
  room.hold = undefined;
}

function isHeld(room: Room): boolean {
  const now = performance.now();
  for (const client of room.backlogged) {
    if (now - client.lastProgress < HOLD_MS) return true;
  }
  return false;
}

// ------------------------------------------------------- idle, shutdown ---

/** Closes clients silent for --idle-timeout; one timer for the whole room. */
function watchIdle(room: Room): () => void {
  const timeout = room.options.idleTimeoutMs;
  if (timeout === 0) return () => {};
  const timer = setInterval(() => {
    const now = Date.now();
    for (const client of room.clients) {
      if (now - client.lastHeard >= timeout) {
        sendTo(client, `! idle for ${timeout / 1000} s, disconnecting`);
        leave(room, client, "idle");
      }
    }
  }, Math.min(timeout, 1000));
  return () => clearInterval(timer);
}

/**
 * Tells everyone, lets queued output drain for a bounded time, then closes
 * every socket. Resolves when all are closed.
 */
export async function shutdown(room: Room, listener: Deno.TcpListener): Promise<void> {
  if (room.closing) return;
  room.closing = true;
  checkHold(room);
  closeQuietly(listener);
  broadcast(room, "* server shutting down");
  room.options.log("* server shutting down");
  // Before the local leaves: the others show this instance's users as left.
  await room.cluster?.close("server shutting down");
  const clients = [...room.clients];
  for (const client of clients) leave(room, client, "");
  const deadline = Date.now() + FAREWELL_FLUSH_MS;
  while (clients.some((c) => !c.closed) && Date.now() < deadline) {
    await delay(10);
  }
  for (const client of clients) closeClient(client);
}

// -------------------------------------------------------------- console ---

/**
 * The operator's console, the note's input("请输入回复内容"): but it never
 * blocks the room. On a terminal, log lines are printed above the prompt and
 * the half-typed line is redrawn. Without a terminal (or after EOF, e.g.
 * `< /dev/null`) the room simply keeps running.
 */
function attachConsole(room: Room, stop: () => void): Console {
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const input = createInterface({
    input: process.stdin,
    output: tty ? process.stdout : undefined,
    terminal: tty,
  });
  input.on("line", (line) => {
    operatorCommand(room, line, stop);
    if (tty) input.prompt();
  });
  input.on("SIGINT", stop); // raw mode turns Ctrl+C into a key
  input.on("close", () => {
    if (tty) stop(); // Ctrl+D on the console
  });
  if (tty) {
    input.setPrompt(paint("dim", "> "));
    input.prompt();
  }
  if (!tty) return batchedLog();
  const log = (line: string | Uint8Array) => {
    const text = typeof line === "string" ? line : utf8.decode(line.subarray(0, -1));
    process.stdout.write("\r\x1b[K"); // clear the prompt line, print above it
    console.log(`${paint("dim", timestamp())} ${colourLine(text)}`);
    input.prompt(true);
  };
  return { log, drained: () => Promise.resolve() };
}

interface Console {
  log: (line: string | Uint8Array) => void;
  /** Resolves once every logged line has been written. */
  drained: () => Promise<void>;
}

/**
 * The console log when stdout is a pipe or file: lines are gathered and
 * written every LOG_FLUSH_MS (sooner in a flood), not one syscall each, and a reader of
 * that pipe who falls behind costs at most LOG_BACKLOG_BYTES, never the room.
 * A relayed line is logged from the bytes already encoded for the room, and
 * the time prefix is encoded once a second: logging every line of a flood
 * once cost as much memory as relaying it.
 */
function batchedLog(): Console {
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
  const log = (line: string | Uint8Array) => {
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
  return { log, drained: () => writing ?? Promise.resolve() };
}

function operatorCommand(room: Room, raw: string, stop: () => void): void {
  const line = raw.trim();
  if (!line) return;
  const [command, rest] = splitWord(line);
  const log = room.options.log;
  switch (command) {
    case "/who":
      return log(whoLine(room, rest === "-v"));
    case "/quit":
      return stop();
    case "/kick":
      if (kick(room, rest)) return;
      if (room.cluster?.findRemote(rest)) return room.cluster.publish({ type: "kick", nick: rest });
      return log(`! no one called '${rest}' is online`);
    case "/help":
      return log("* console: /who [-v], /kick NAME, /quit; any other line goes to everyone");
    default:
      if (line.startsWith("/")) return log(`! unknown console command ${command}; try /help`);
      say(room, `<server> ${sanitizeText(line)}`);
  }
}

/** Kicks a local client; false if no local client has that nick. */
function kick(room: Room, nick: string): boolean {
  const target = room.nicks.get(nick.toLowerCase());
  if (!target) return false;
  sendTo(target, "* you were kicked by the operator");
  leave(room, target, "kicked");
  return true;
}

function colourLine(line: string): string {
  if (line.startsWith("!")) return paint("red", line);
  if (line.startsWith("*")) return paint("yellow", line);
  return line.replace(/^<[^>]*>/, (nick) => paint("cyan", nick));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function timestamp(): string {
  return new Date().toTimeString().slice(0, 8);
}

// -------------------------------------------------------------- cluster ---

/** How the other instances (chat_cluster.ts) reach this one's clients. */
function localRoom(room: Room): LocalRoom {
  const tellAll = (line: string) => {
    broadcast(room, line);
    room.options.log(line);
  };
  return {
    // Sanitised again: whatever else publishes on that channel is a peer too.
    deliver: (line) => tellAll(sanitizeText(line)),
    deliverPrivate(nick, line) {
      const target = room.nicks.get(nick.toLowerCase());
      if (target) sendTo(target, sanitizeText(line));
    },
    kick: (nick) => void kick(room, nick),
    notice: tellAll,
    localNicks: () => [...room.clients].map((client) => client.nick),
    nickLost: (nick) => void renameAway(room, nick),
  };
}

/**
 * A nick claimed here while the link was down turned out to be taken on
 * another instance: the one here becomes a guest again, and is told why.
 */
async function renameAway(room: Room, nick: string): Promise<void> {
  const client = room.nicks.get(nick.toLowerCase());
  if (!client || client.gone) return;
  const guest = await claimGuestNick(room);
  if (client.gone || client.nick !== nick) return room.cluster?.release(guest);
  changeNick(room, client, guest);
  sendTo(client, `! '${nick}' was claimed on another server while the link was down`);
  sendTo(client, `* you are now ${guest}`);
}

const ROOM_NAME_PATTERN = /^[\w.-]{1,64}$/;

/** Checks --redis and --room; the Redis client itself judges the rest. */
function parseClusterFlags(
  redis?: string,
  room?: string,
): { url: string; room: string } | undefined {
  if (redis === undefined) {
    if (room !== undefined) {
      throw new UsageError("--room needs --redis URL: rooms are shared through Redis");
    }
    return undefined;
  }
  if (!/^rediss?:\/\/[^/]/.test(redis)) {
    throw new UsageError(`--redis ${redis}: expected a URL like redis://127.0.0.1:6379`);
  }
  const name = room ?? "lobby";
  if (!ROOM_NAME_PATTERN.test(name)) {
    throw new UsageError(`--room ${name}: use 1-64 letters, digits, _ . or -`);
  }
  return { url: redis, room: name };
}

// ----------------------------------------------------------------- main ---

export async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    "max-clients": { type: "string", default: "10000" },
    "max-line": { type: "string", default: "4096" },
    "max-queue": { type: "string", default: String(1024 * 1024) },
    "idle-timeout": { type: "string", default: "0" },
    redis: { type: "string" },
    room: { type: "string" },
  }, USAGE);
  const host = parseHost(flags.host);
  const port = parsePort(flags.port);
  const clusterFlags = parseClusterFlags(flags.redis, flags.room);
  const options = {
    maxClients: parseIntFlag(flags["max-clients"], "--max-clients", 1),
    maxLine: parseIntFlag(flags["max-line"], "--max-line", 1),
    maxQueue: parseIntFlag(flags["max-queue"], "--max-queue", 1),
    idleTimeoutMs: parseIntFlag(flags["idle-timeout"], "--idle-timeout", 0, 86_400 * 365) * 1000,
  };

  const listener = listenTcp(host, port, { tcpBacklog: 1024 });

  let stopping: Promise<void> | undefined;
  const room = createRoom({ ...options, log: () => {} });
  room.label = formatAddress(listener.addr);
  if (clusterFlags) {
    // Loaded only now: without --redis the chat needs nothing but Deno.
    const { joinCluster } = await import("./chat_cluster.ts");
    room.cluster = await joinCluster(
      clusterFlags.url,
      clusterFlags.room,
      room.label,
      localRoom(room),
    );
  }
  const stop = () => {
    stopping ??= shutdown(room, listener);
  };
  const operatorConsole = attachConsole(room, stop);
  room.options.log = operatorConsole.log;
  const removeSignals = onStopSignal(stop);
  const stopIdleWatch = watchIdle(room);
  announceListening(listener); // only now: whoever waits for it may signal at once

  await serve(room, listener);
  stop();
  await stopping;
  await Promise.race([operatorConsole.drained(), delay(FAREWELL_FLUSH_MS)]);
  removeSignals();
  stopIdleWatch();
  return 0;
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
