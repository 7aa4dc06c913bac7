/**
 * The chat room: the one owner of the client set and of every nick in use,
 * shaped like the Go book's chat server (its `broadcaster`). Reader loops
 * (in `chat_server.ts`) hand it what their clients say; it decides who
 * hears what and delivers through each member's {@linkcode Outbox}.
 *
 * Delivery never re-enters the room: an outbox that overflows only says so,
 * and the room drops that member once the delivery is over. So the "left
 * (too slow)" notice of a reader dropped by a line reaches every receiver
 * after that line, never before it for some and after it for others.
 *
 * @module
 */

import { sanitizeText } from "./peer_text.ts";
import { formatAddress } from "./net.ts";
import type { Cluster, LocalRoom } from "./room_link.ts";
import type { LogLine } from "./console_log.ts";
import { type Outbox, type OutboxPool, PacedOutboxes, type Writable } from "./outbox.ts";
import { isNickCommand } from "./chat_text.ts";
import { History } from "./history.ts";
import { Presence, type PresenceBatch } from "./presence.ts";
import { joinLines } from "./slab_encoder.ts";

/** The part of a client's connection the room uses. */
export interface Connection extends Writable {
  /** The client's address, for the log. */
  readonly remoteAddr: Deno.NetAddr;
}

/** One client in the room. */
export interface Member {
  /** Its connection. */
  readonly conn: Connection;
  /** Its nick, unique in the room (case-insensitively). */
  nick: string;
  /** Its output, written in order. */
  readonly outbox: Outbox;
  /** Date.now() when it last sent something (for --idle-timeout). */
  lastHeard: number;
  /** The others have been told it joined; see Room.announceJoin. */
  announced: boolean;
  /** performance.now() when it connected. */
  readonly joinedAt: number;
  /** The guest nick its welcome gave it, as later arrivals' welcomes named it. */
  readonly welcomedAs: string;
  /**
   * Its place in the room's order of events: it hears of the joins and
   * leaves after it, never of those its welcome already counted.
   */
  readonly arrival: number;
  /** It has left the room; its outbox may still drain. */
  gone: boolean;
  /** Why it is away (/away; "" for no reason), or undefined when it is not. */
  away?: string;
  /** The operator muted it (/mute): what it says is not relayed. */
  muted?: boolean;
}

/** What a room is made with. */
export interface RoomOptions {
  /** Unsent bytes a member may leave unread (--max-queue). */
  maxQueue: number;
  /** Longest line a client may send (--max-line), said in the welcome. */
  maxLine: number;
  /** This instance's listening address, as /who -v shows it. */
  label?: string;
  /** Public lines a newcomer is shown after its welcome (--history; 0: none). */
  history: number;
  /** The message of the day (--motd), shown with the welcome; [] for none. */
  motd?: string[];
  /** Where the operator's console lines go. */
  log: (line: LogLine) => void;
}

const NICK_PATTERN = /^[\p{L}\p{N}_-]{1,24}$/u;
const RESERVED_NICKS = new Set(["server"]);
/** How long a member that left may take to read its last lines. */
const FAREWELL_MS = 2000;
/** A newcomer's welcome names this many; /who names everyone. */
const WELCOME_WHO_LIMIT = 30;
/**
 * How long the others' "* NAME joined" waits for a newcomer's first line,
 * which may be `/nick NAME` (chat_client --nick sends it on the welcome):
 * then the others hear "* bob joined", never "* guest3 is now bob".
 */
const JOIN_NOTICE_WAIT_MS = 500;

/** The room; see the module doc. */
export class Room {
  /** Everyone in the room on this instance. */
  readonly members: Set<Member> = new Set();
  /** This instance's listening address, as /who -v shows it. */
  readonly label: string;
  /** The other instances sharing the room (--redis), if any; see link. */
  cluster?: Cluster;
  /** Where the operator's console lines go. */
  log: (line: LogLine) => void;
  #closing = false;
  /** lower-cased nick -> member */
  #nicks = new Map<string, Member>();
  #nextGuest = 1;
  #outboxes: OutboxPool;
  #presence: Presence;
  /** Counts the room's events: arrivals and leaves; see Member.arrival. */
  #events = 0;
  /** The welcome's names while the room is big; see #welcomeWhoLine. */
  #welcomeNames?: string;
  /** Addresses the operator banned (/ban), refused at the door. */
  #bans = new Set<string>();
  /** Newcomers whose join is not announced yet, oldest first; see announceJoin. */
  #unannounced: Member[] = [];
  #announceTimer?: ReturnType<typeof setTimeout>;
  /** Longest line a client may send (--max-line), said in the welcome. */
  #maxLine: number;
  #history: History;
  #historyLimit: number;
  #motd: string[];

  /** An empty room. */
  constructor(options: RoomOptions) {
    this.log = options.log;
    this.label = options.label ?? "";
    this.#maxLine = options.maxLine;
    this.#history = new History(options.history);
    this.#historyLimit = options.history;
    // Each line a notice, so the protocol's four prefixes still hold.
    this.#motd = (options.motd ?? []).map((line) => `*${line ? ` ${sanitizeText(line)}` : ""}`);
    const roomSize = () => this.members.size;
    this.#outboxes = new PacedOutboxes({ maxQueue: options.maxQueue, roomSize });
    this.#presence = new Presence({
      roomSize,
      encoder: this.#outboxes.encoder,
      deliver: (line, at) => this.#deliverNotice(line, at),
      deliverBatch: (batch) => this.#deliverBatch(batch),
    });
  }

  /** The room is shutting down: no newcomers. */
  get closing(): boolean {
    return this.#closing;
  }

  /**
   * Resolves when no member that is reading is past --max-queue; reader
   * loops wait on it before each read, so TCP slows the senders down.
   * Undefined when there is nothing to wait for.
   */
  caughtUp(): Promise<void> | undefined {
    return this.#outboxes.caughtUp();
  }

  /**
   * A reader loop calls this before it handles each line of `member`'s:
   * the join and leave notices gathered so far go out first, so no answer
   * to the line (a /who, a /ping) overtakes them; and the others hear that
   * `member` joined, unless this first line is a /nick that names it
   * (then they hear it join under that name, see rename).
   */
  lineArriving(member: Member, raw: Uint8Array): void {
    this.#presence.seal();
    if (!member.announced && !isNickCommand(raw)) this.announceJoin(member);
  }

  // ------------------------------------------------------- membership ---

  /**
   * Welcomes a new client under a guest nick, at once. The others are told
   * it joined at its first line or after JOIN_NOTICE_WAIT_MS, whichever
   * comes first: see announceJoin.
   */
  async join(conn: Connection): Promise<Member> {
    const nick = this.cluster ? await this.#claimGuestNick() : this.#guestNick();
    const outbox = this.#outboxes.open(conn);
    const member: Member = {
      conn,
      nick,
      outbox,
      lastHeard: Date.now(),
      announced: false,
      joinedAt: performance.now(),
      welcomedAs: nick,
      arrival: ++this.#events,
      gone: false,
    };
    this.members.add(member);
    this.#nicks.set(nick.toLowerCase(), member);
    // One block, encoded once, one delivery: a burst of newcomers makes
    // less garbage (and a smaller heap) than four lines each would.
    const welcome = [
      `* welcome, you are ${nick}`,
      this.#welcomeWhoLine(),
      `* type /help for commands; lines up to ${this.#maxLine} bytes`,
      ...this.#motd,
    ];
    this.sendTo(member, welcome.join("\n"));
    this.#replayHistory(member);
    outbox.flushNow(); // the welcome leaves now, not with the next (paced) round
    this.#unannounced.push(member);
    this.#announceTimer ??= setTimeout(() => this.#announceDue(), JOIN_NOTICE_WAIT_MS);
    return member;
  }

  /**
   * Tells the others `member` joined, under the nick it has now, once. The
   * reader loop calls it before the member's first line (after it, when
   * that line is a /nick); newcomers silent for JOIN_NOTICE_WAIT_MS are
   * announced by a timer, one for the whole room.
   */
  announceJoin(member: Member): void {
    if (member.announced || member.gone) return;
    member.announced = true;
    const notice = `* ${member.nick} joined`;
    this.#presence.announce(notice, member.arrival, true);
    if (member.nick !== member.welcomedAs) {
      // Those who arrived since knew it by its guest name: tell them the new one.
      const renamed = this.#encodeLine(`* ${member.welcomedAs} is now ${member.nick}`);
      this.#deliverShares((m) => m.arrival > member.arrival && m !== member ? renamed : NOTHING);
    }
    this.cluster?.publish({ type: "join", nick: member.nick, line: notice });
    this.log(`${notice} from ${formatAddress(member.conn.remoteAddr)}`);
  }

  /** The timer's round: announces every newcomer that has waited long enough. */
  #announceDue(): void {
    this.#announceTimer = undefined;
    const now = performance.now();
    let due = 0;
    while (due < this.#unannounced.length) {
      const member = this.#unannounced[due];
      if (!member.announced && now - member.joinedAt < JOIN_NOTICE_WAIT_MS) break;
      this.announceJoin(member);
      due++;
    }
    this.#unannounced.splice(0, due);
    const next = this.#unannounced[0];
    if (!next) return;
    const wait = Math.max(1, JOIN_NOTICE_WAIT_MS - (now - next.joinedAt));
    this.#announceTimer = setTimeout(() => this.#announceDue(), wait);
  }

  /**
   * Removes a member once, telling the others why. Output already queued
   * for it (answers to its last commands) still drains before the socket
   * closes, so `printf '/who\n' | nc -N` sees its answer.
   */
  leave(member: Member, reason = ""): void {
    if (member.gone) return;
    member.gone = true;
    this.members.delete(member);
    this.#welcomeNames = undefined;
    this.#nicks.delete(member.nick.toLowerCase());
    const notice = `* ${member.nick} left${reason ? ` (${reason})` : ""}`;
    // One the others never heard join leaves without a word to them too.
    if (!this.#closing && member.announced) {
      this.#presence.announce(notice, ++this.#events, false);
      this.cluster?.release(member.nick);
      this.cluster?.publish({ type: "leave", nick: member.nick, line: notice });
    }
    this.log(
      member.announced
        ? notice
        : `${notice}, unannounced, from ${formatAddress(member.conn.remoteAddr)}`,
    );
    member.outbox.closeAfterDrain(FAREWELL_MS);
  }

  /** The local member called `nick` (any case), if there is one. */
  find(nick: string): Member | undefined {
    return this.#nicks.get(nick.toLowerCase());
  }

  /** Kicks `nick` here or on the other instance it is on; false if no one has that nick. */
  kickAnywhere(nick: string): boolean {
    if (this.kick(nick)) return true;
    if (!this.cluster?.findRemote(nick)) return false;
    this.cluster.publish({ type: "kick", nick });
    return true;
  }

  /** Kicks a local member; false if no local member has that nick. */
  kick(nick: string): boolean {
    const target = this.find(nick);
    if (!target) return false;
    this.sendTo(target, "* you were kicked by the operator");
    this.leave(target, "kicked");
    return true;
  }

  // -------------------------------------------------------- moderation ---
  // The operator's, and this instance's only: with --redis, bans and mutes
  // given on one server's console hold on that server.

  /** Whether connections from `address` are refused (/ban). */
  isBanned(address: string): boolean {
    return this.#bans.has(address);
  }

  /**
   * /ban NAME: NAME is told and disconnected, and newcomers from its address
   * are refused until /unban. Those already connected from there stay.
   * Returns the address, or undefined if no local member has that nick.
   */
  ban(nick: string): string | undefined {
    const target = this.find(nick);
    if (!target) return undefined;
    const address = target.conn.remoteAddr.hostname;
    this.#bans.add(address);
    this.sendTo(target, "! you are banned");
    this.leave(target, "banned");
    return address;
  }

  /** /unban ADDRESS: false if it was not banned. */
  unban(address: string): boolean {
    return this.#bans.delete(address);
  }

  /** The banned addresses, sorted. */
  bans(): string[] {
    return [...this.#bans].sort();
  }

  /** /mute NAME (or /unmute with `on` false): false if no local member has that nick. */
  mute(nick: string, on: boolean): boolean {
    const target = this.find(nick);
    if (!target) return false;
    target.muted = on;
    return true;
  }

  /** A muted member's chat line, /me or /msg: not relayed, and it is told so. */
  #silenced(member: Member): boolean {
    if (member.muted) this.sendTo(member, "! you are muted");
    return member.muted === true;
  }

  /** Disconnects members silent for `timeoutMs`. */
  dropIdle(timeoutMs: number): void {
    const now = Date.now();
    for (const member of this.members) {
      if (now - member.lastHeard >= timeoutMs) {
        this.sendTo(member, `! idle for ${timeoutMs / 1000} s, disconnecting`);
        this.leave(member, "idle");
      }
    }
  }

  /**
   * Tells everyone, lets queued output drain for a bounded time, then closes
   * every socket. Resolves when all are closed.
   */
  async shutdown(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearTimeout(this.#announceTimer);
    this.#outboxes.releaseAll();
    this.broadcast("* server shutting down");
    this.log("* server shutting down");
    // Before the local leaves: the others show this instance's users as left.
    await this.cluster?.close("server shutting down");
    const members = [...this.members];
    for (const member of members) this.leave(member);
    const deadline = Date.now() + FAREWELL_MS;
    while (members.some((m) => !m.outbox.closed) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (const member of members) member.outbox.close();
  }

  // ------------------------------------------------------------ nicks ---

  /** Why `nick` cannot be `self`'s, or undefined when it can. */
  nickProblem(nick: string, self?: Member): string | undefined {
    if (!NICK_PATTERN.test(nick)) {
      return `invalid nick '${nick}': use 1-24 letters, digits, _ or -`;
    }
    const key = nick.toLowerCase();
    if (RESERVED_NICKS.has(key)) return `nick '${nick}' is reserved`;
    const holder = this.#nicks.get(key);
    if (holder && holder !== self) return `nick '${nick}' is taken`;
    if (this.cluster?.findRemote(nick)) return `nick '${nick}' is taken`;
    return undefined;
  }

  /**
   * /nick NAME: checks, claims it room-wide, and tells everyone. A newcomer
   * not announced yet joins under the name it has after it (a refused name
   * leaves it the guest name, with a `!` line saying why).
   */
  async rename(member: Member, nick: string): Promise<void> {
    await this.#rename(member, nick);
    this.announceJoin(member);
  }

  async #rename(member: Member, nick: string): Promise<void> {
    if (!nick) return this.sendTo(member, "! usage: /nick NAME");
    const problem = this.nickProblem(nick, member);
    if (problem) return this.sendTo(member, `! ${problem}`);
    if (nick === member.nick) return this.sendTo(member, `* you are already ${nick}`);
    const sameName = nick.toLowerCase() === member.nick.toLowerCase(); // a change of case
    // Redis settles a race between instances; the second check, one between
    // two clients here while the link was down (when a claim cannot fail).
    if (!sameName && !await this.#claimNick(nick)) {
      return this.sendTo(member, `! nick '${nick}' is taken`);
    }
    if (member.gone || this.nickProblem(nick, member)) {
      if (!sameName) this.cluster?.release(nick);
      if (!member.gone) this.sendTo(member, `! nick '${nick}' is taken`);
      return;
    }
    this.#changeNick(member, nick);
    this.sendTo(member, `* you are now ${nick}`);
  }

  #changeNick(member: Member, nick: string): void {
    const old = member.nick;
    this.#nicks.delete(old.toLowerCase());
    this.#nicks.set(nick.toLowerCase(), member);
    member.nick = nick;
    this.#welcomeNames = undefined;
    if (old.toLowerCase() !== nick.toLowerCase()) this.cluster?.release(old);
    if (!member.announced) return; // the others will hear it join as `nick`
    const notice = `* ${old} is now ${nick}`;
    this.broadcast(notice, member);
    this.cluster?.publish({ type: "rename", old, nick, line: notice });
    this.log(notice);
  }

  #guestNick(): string {
    while (true) {
      const nick = `guest${this.#nextGuest++}`;
      if (!this.nickProblem(nick)) return nick;
    }
  }

  /** A guest name free in the whole room (numbered room-wide while linked). */
  async #claimGuestNick(): Promise<string> {
    while (true) {
      const number = await this.cluster?.nextGuestNumber();
      const nick = number === undefined ? this.#guestNick() : `guest${number}`;
      if (!this.nickProblem(nick) && await this.#claimNick(nick)) return nick;
    }
  }

  /** Claims `nick` in the other instances too; true when it is ours. */
  async #claimNick(nick: string): Promise<boolean> {
    return this.cluster ? await this.cluster.claim(nick) : true;
  }

  // ---------------------------------------------------------- talking ---

  /** `<nick> text` from a member, to everyone else. */
  say(member: Member, text: string): void {
    if (this.#silenced(member)) return;
    this.#sayEncoded(this.#encodeLine(`<${member.nick}> ${text}`), member);
  }

  /**
   * say() for text that is printable ASCII (most chat lines): its bytes are
   * relayed as they came, after the sender's name, never decoded.
   */
  sayPlain(member: Member, text: Uint8Array): void {
    if (this.#silenced(member)) return;
    this.#sayEncoded(this.#outboxes.encoder.encodePrefixed(`<${member.nick}> `, text), member);
  }

  /**
   * sayPlain() for a run of such lines from one read (a paste, a flood):
   * each encoded, kept in the history and logged as its own line, but
   * delivered to the room once, as one block. A delivery per line cost
   * every receiver a queue entry per line; a block costs one per run.
   */
  sayPlainLines(member: Member, texts: Uint8Array[]): void {
    if (this.#silenced(member)) return;
    const prefix = `<${member.nick}> `;
    const lines = texts.map((text) => this.#outboxes.encoder.encodePrefixed(prefix, text));
    for (const line of lines) this.#keepAndTell(line);
    this.#deliverAll(joinLines(lines), member);
  }

  /** `* nick action` (/me), to everyone else. */
  act(member: Member, action: string): void {
    if (this.#silenced(member)) return;
    this.#sayEncoded(this.#encodeLine(`* ${member.nick} ${action}`), member);
  }

  /** `<server> text` from the operator's console, to everyone. */
  sayAsOperator(text: string): void {
    this.#sayEncoded(this.#encodeLine(`<server> ${sanitizeText(text)}`));
  }

  /** /msg NAME text: to NAME only (on any instance), confirmed to the sender. */
  privateMessage(from: Member, nick: string, text: string): void {
    if (this.#silenced(from)) return;
    const line = `<${from.nick}> (private) ${text}`;
    const target = this.find(nick);
    const remote = target ? undefined : this.cluster?.findRemote(nick);
    if (target) this.sendTo(target, line);
    else if (remote) this.cluster?.publish({ type: "private", to: remote.nick, line });
    else return this.sendTo(from, `! no one called '${nick}' is online`);
    const name = target?.nick ?? remote?.nick;
    this.sendTo(from, `* (private to ${name}) ${text}`);
    // Delivered all the same; the sender learns why no answer may come.
    const away = target ? target.away : remote?.away;
    if (away !== undefined) this.sendTo(from, `* ${name} is away${away ? `: ${away}` : ""}`);
    // The operator sees that it happened, not what was said.
    this.log(`* ${from.nick} sent a private message to ${name}`);
  }

  /** /away [REASON] (a reason of "" is none), or /back with undefined. */
  setAway(member: Member, reason: string | undefined): void {
    member.away = reason;
    this.#welcomeNames = undefined;
    this.cluster?.publish({ type: "away", nick: member.nick, reason: reason ?? null });
    if (reason === undefined) return this.sendTo(member, "* you are back");
    this.sendTo(member, `* you are away${reason ? `: ${reason}` : ""}`);
  }

  /** One line for one member. */
  sendTo(member: Member, line: string): void {
    if (!member.outbox.deliver(this.#encodeLine(line))) this.#dropTooSlow([member]);
  }

  /** One line for everyone but `except`, encoded once for all. */
  broadcast(line: string, except?: Member): void {
    this.#deliverAll(this.#encodeLine(line), except);
  }

  /** The recent public lines, between two notices; nothing at all when there are none. */
  #replayHistory(member: Member): void {
    const lines = this.#history.recent();
    if (lines.length === 0) return;
    this.sendTo(member, "* recent messages:");
    if (!lines.every((line) => member.outbox.deliver(line))) return this.#dropTooSlow([member]);
    this.sendTo(member, "* end of recent messages");
  }

  /** Tells the local room and every other instance; logs it on the console. */
  #sayEncoded(bytes: Uint8Array, except?: Member): void {
    this.#keepAndTell(bytes);
    this.#deliverAll(bytes, except);
  }

  /** A public line's history entry, its copy to the other instances, its log line. */
  #keepAndTell(line: Uint8Array): void {
    this.#history.record(line);
    this.cluster?.publish({ type: "say", line: utf8.decode(line.subarray(0, -1)) });
    this.log(line);
  }

  #encodeLine(line: string): Uint8Array {
    return this.#outboxes.encoder.encodeLine(line);
  }

  /**
   * The one place lines reach the members: every delivery completes before
   * any member it overflowed is dropped (whose "left" notice is then a
   * delivery of its own, after this one for everyone).
   */
  #deliverAll(bytes: Uint8Array, except?: Member): void {
    this.#presence.seal(); // "* X joined" before anything X says
    const now = performance.now(); // one clock read for all the queues
    let overflowed: Member[] | undefined;
    for (const member of this.members) {
      if (member !== except && !member.outbox.deliver(bytes, now)) {
        (overflowed ??= []).push(member);
      }
    }
    if (overflowed) this.#dropTooSlow(overflowed);
  }

  #deliverBatch(batch: PresenceBatch): void {
    this.#deliverShares((member) => batch.shareFrom(member.arrival));
  }

  /** A join or leave notice for those who arrived before it happened (at `at`). */
  #deliverNotice(line: string, at: number): void {
    const bytes = this.#encodeLine(line);
    this.#deliverShares((member) => member.arrival < at ? bytes : NOTHING);
  }

  /** #deliverAll for notices that not everyone gets; an empty share is skipped. */
  #deliverShares(shareOf: (member: Member) => Uint8Array): void {
    const now = performance.now();
    let overflowed: Member[] | undefined;
    for (const member of this.members) {
      const share = shareOf(member);
      if (share.length > 0 && !member.outbox.deliver(share, now)) {
        (overflowed ??= []).push(member);
      }
    }
    if (overflowed) this.#dropTooSlow(overflowed);
  }

  #dropTooSlow(members: Member[]): void {
    for (const member of members) this.leave(member, "too slow");
  }

  // -------------------------------------------------------------- /who ---

  /** "* online (N): a, b, c", everyone in the room on every instance. */
  whoLine(verbose = false): string {
    return `* online (${this.#onlineCount()}): ${this.#sortedNames(verbose)}`;
  }

  /** People in the room, on this instance and every other. */
  #onlineCount(): number {
    return this.members.size + (this.cluster?.remoteCount() ?? 0);
  }

  /**
   * The welcome's who line names the first few to arrive, so a join costs
   * O(1), not a line as long as the room (10,000 joins would cost O(N^2)).
   * Once the room has more than that, a join leaves those names as they
   * were: they are kept, and forgotten on a leave or a rename.
   */
  #welcomeWhoLine(): string {
    const total = this.#onlineCount();
    const names = this.members.size > WELCOME_WHO_LIMIT
      ? this.#welcomeNames ??= this.#sortedNames(false, WELCOME_WHO_LIMIT)
      : this.#sortedNames(false, WELCOME_WHO_LIMIT);
    const more = total > WELCOME_WHO_LIMIT
      ? ` and ${total - WELCOME_WHO_LIMIT} more (/who lists all)`
      : "";
    return `* online (${total}): ${names}${more}`;
  }

  /**
   * "a, b, c": the first `limit` people (local ones first), sorted; with
   * `verbose` each nick is followed by its instance's address.
   */
  #sortedNames(verbose: boolean, limit = Infinity): string {
    const names: string[] = [];
    const add = (nick: string, label: string, away: string | undefined) => {
      const status = away === undefined ? "" : away ? ` (away: ${away})` : " (away)";
      names.push(`${nick}${status}${verbose ? ` [${label}]` : ""}`);
    };
    for (const member of this.members) {
      if (names.length >= limit) break;
      add(member.nick, this.label, member.away);
    }
    for (const user of this.cluster?.remoteUsers() ?? []) {
      if (names.length >= limit) break;
      add(user.nick, user.label, user.away);
    }
    // By code unit, like the nicks alone: " [" sorts before any nick character.
    return names.sort().join(", ");
  }

  // ----------------------------------------------------------- cluster ---

  /** Shares the room with the other instances through `cluster` (--redis). */
  link(cluster: Cluster): void {
    this.cluster = cluster;
  }

  /** How the other instances (lib/cluster.ts) reach this room's members. */
  asLocalRoom(): LocalRoom {
    const tellAll = (line: string) => {
      this.broadcast(line);
      this.log(line);
    };
    return {
      historyLimit: this.#historyLimit,
      // Sanitised again: whatever else publishes on that channel is a peer too.
      deliver: (line) => tellAll(sanitizeText(line)),
      deliverSaid: (line) => {
        const bytes = this.#encodeLine(sanitizeText(line));
        this.#history.record(bytes);
        this.#deliverAll(bytes);
        this.log(bytes);
      },
      seedHistory: (lines) => {
        for (const line of lines) this.#history.record(this.#encodeLine(sanitizeText(line)));
      },
      deliverPrivate: (nick, line) => {
        const target = this.find(nick);
        if (target) this.sendTo(target, sanitizeText(line));
      },
      kick: (nick) => void this.kick(nick),
      notice: tellAll,
      localNicks: () => [...this.members].map((member) => member.nick),
      announcedNicks: () => [...this.members].filter((m) => m.announced).map((m) => m.nick),
      localAway: () =>
        [...this.members].flatMap(({ nick, away, announced }) =>
          away === undefined || !announced ? [] : [[nick, away] as [string, string]]
        ),
      nickLost: (nick) => void this.#renameAway(nick),
    };
  }

  /**
   * A nick claimed here while the link was down turned out to be taken on
   * another instance: the one here becomes a guest again, and is told why.
   */
  async #renameAway(nick: string): Promise<void> {
    const member = this.find(nick);
    if (!member || member.gone) return;
    const guest = await this.#claimGuestNick();
    if (member.gone || member.nick !== nick) return this.cluster?.release(guest);
    this.#changeNick(member, guest);
    this.sendTo(member, `! '${nick}' was claimed on another server while the link was down`);
    this.sendTo(member, `* you are now ${guest}`);
  }
}

const utf8 = new TextDecoder();
const NOTHING = new Uint8Array();
