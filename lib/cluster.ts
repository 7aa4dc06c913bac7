/**
 * The Redis link: several `chat_server.ts` instances acting as one room,
 * over Redis pub/sub. Only `chat_server.ts --redis URL` loads this file
 * (with a dynamic import), so without the flag the chat needs nothing but
 * Deno.
 *
 *     redis-server --port 6379 --save '' --appendonly no
 *     deno run -A chat_server.ts --port 8080 --redis redis://127.0.0.1:6379
 *     deno run -A chat_server.ts --port 8081 --redis redis://127.0.0.1:6379
 *
 * Each instance publishes what happens among its own clients (chat lines,
 * joins, leaves, renames, private messages, kicks) on the room's channel and
 * delivers what the others publish to its clients. Redis delivers the
 * messages of one connection in the order they were published, and each
 * instance publishes on one connection, so every receiver sees each sender's
 * lines in order. Nicks are claimed with SET NX PX and renewed by a
 * heartbeat: a name is unique in the whole room, and the names of an
 * instance killed without a goodbye free themselves when the expiry passes.
 *
 * @module
 */

import type { RedisClientType } from "npm:redis@5";
import { Failure } from "../utils.ts";
import { sanitizeText } from "./peer_text.ts";
import type { Cluster, ClusterEvent, LocalRoom } from "./room_link.ts";

/** A heartbeat this often keeps an instance and its nicks alive... */
const HEARTBEAT_MS = 1000;
/**
 * ...and an instance silent this long is gone: its users are shown as left
 * and its nicks expire. Four beats, so a busy instance is not buried alive.
 */
const SILENCE_LIMIT_MS = 4000;
const RECONNECT_MAX_MS = 2000;
const CONNECT_TIMEOUT_MS = 3000;

/** Housekeeping between instances. */
type LinkEvent =
  | { type: "beat" }
  | { type: "hello" }
  | { type: "roster"; nicks: string[]; away?: [string, string][] }
  | { type: "bye"; reason: string };

/** On the wire: the sender instance, its sequence number, the event. */
type Envelope = (ClusterEvent | LinkEvent) & { from: string; label: string; seq: number };

interface Instance {
  label: string;
  /** Highest sequence number seen: anything at or below it is a duplicate. */
  seq: number;
  lastHeard: number;
  /** lower-cased nick -> nick */
  nicks: Map<string, string>;
  /** lower-cased nick -> why it is away ("" for no reason) */
  away: Map<string, string>;
}

// Renews every nick this instance holds and re-claims those whose key
// expired (e.g. while Redis was away); returns the 1-based indexes of the
// ones another instance holds now.
const RENEW_SCRIPT = `
local lost = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == false then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  elseif holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  else
    table.insert(lost, i)
  end
end
return lost`;

// Deletes nicks only if this instance still holds them.
const RELEASE_SCRIPT = `
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n`;

/** npm:redis, fetched from npm on first use (then from Deno's cache). */
async function loadRedisClient(): Promise<typeof import("npm:redis@5")> {
  try {
    return await import("npm:redis@5");
  } catch (err) {
    const reason = (err instanceof Error ? err.message : String(err)).split("\n")[0];
    throw new Failure(
      `cannot load the Redis client npm:redis@5 (${reason}); ` +
        "the first run with --redis downloads it from npm: check the network",
    );
  }
}

/** The URL with any password masked, for messages. */
function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.href.replace(/\/$/, "");
  } catch {
    return url;
  }
}

/**
 * Connects to Redis (both the publishing and the subscribing connection)
 * and joins the room; throws Failure when Redis cannot be reached.
 */
export async function joinCluster(
  url: string,
  roomName: string,
  label: string,
  room: LocalRoom,
): Promise<Cluster> {
  const { createClient } = await loadRedisClient();
  const self = crypto.randomUUID().slice(0, 8);
  const channel = `chat:${roomName}:events`;
  const nickKey = (nick: string) => `chat:${roomName}:nick:${nick.toLowerCase()}`;
  const instances = new Map<string, Instance>();
  /** Instances given up on: if one comes back, its users are shown joining again. */
  const buried = new Set<string>();
  let started = false;
  let up = false;
  let closing = false;
  let seq = 0;

  const options = {
    url,
    // Published lines are never queued for later: while the link is down
    // they reach only this instance, and nothing arrives late or twice.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: CONNECT_TIMEOUT_MS,
      // The first connect fails fast (exit 1); a lost link retries forever.
      reconnectStrategy: (retries: number, cause: Error) =>
        started && !closing ? Math.min(100 * 2 ** retries, RECONNECT_MAX_MS) : cause,
    },
  };
  const publisher = createClient(options) as RedisClientType;
  const subscriber = publisher.duplicate() as RedisClientType;

  const publishRaw = (event: ClusterEvent | LinkEvent) => {
    if (!up) return;
    const envelope: Envelope = { ...event, from: self, label, seq: ++seq };
    publisher.publish(channel, JSON.stringify(envelope)).catch(() => {});
    if (event.type === "say") keepInHistory({ from: self, seq: envelope.seq, line: event.line });
  };

  // The room's history lives in Redis too, capped at --history lines, so a
  // restarted instance (or a new one) shows newcomers the same lines. Each
  // line is kept by the instance it was said on, with its sequence number.
  const historyKey = `chat:${roomName}:history`;
  const keepInHistory = (entry: HistoryEntry) => {
    if (room.historyLimit === 0) return;
    publisher.multi()
      .rPush(historyKey, JSON.stringify(entry))
      .lTrim(historyKey, -room.historyLimit, -1)
      .exec()
      .catch(() => {});
  };
  /** Lines said elsewhere while the history is being loaded at the start. */
  let heardWhileLoading: HistoryEntry[] | undefined = [];

  /**
   * Seeds the room's history from Redis, once, after subscribing: a line
   * said meanwhile is in the list, on the channel, or both (then kept once).
   */
  const loadHistory = async () => {
    const stored = room.historyLimit === 0 ? [] : await publisher.lRange(historyKey, 0, -1);
    const entries = stored.map(parseHistoryEntry).filter((e): e is HistoryEntry => e !== undefined);
    const known = new Set(entries.map(({ from, seq }) => `${from}:${seq}`));
    for (const entry of heardWhileLoading ?? []) {
      if (!known.has(`${entry.from}:${entry.seq}`)) entries.push(entry);
    }
    heardWhileLoading = undefined;
    room.seedHistory(entries.slice(-room.historyLimit).map(({ line }) => line));
  };

  const linkChanged = () => {
    const ready = publisher.isReady && subscriber.isReady;
    if (ready === up || !started || closing) return;
    up = ready;
    if (!up) {
      // Nothing is known of the others until the link is back.
      instances.clear();
      room.notice("* link to other servers lost");
      return;
    }
    room.notice("* link restored");
    announce();
    renew();
  };

  const roster = (): LinkEvent => ({
    type: "roster",
    nicks: room.announcedNicks(),
    away: room.localAway(),
  });

  const announce = () => {
    publishRaw(roster());
    publishRaw({ type: "hello" });
  };

  let renewing = false;
  const renew = async () => {
    const nicks = room.localNicks();
    if (!up || renewing || nicks.length === 0) return;
    renewing = true;
    try {
      const lost = await publisher.eval(RENEW_SCRIPT, {
        keys: nicks.map(nickKey),
        arguments: [self, String(SILENCE_LIMIT_MS)],
      }) as number[];
      for (const index of lost) room.nickLost(nicks[index - 1]);
    } catch {
      // The link dropped mid-call; the next heartbeat after it returns renews.
    } finally {
      renewing = false;
    }
  };

  const receive = (message: string) => {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message);
    } catch {
      return; // not ours
    }
    if (!envelope || typeof envelope !== "object" || envelope.from === self) return;
    let instance = instances.get(envelope.from);
    if (!instance) {
      const label = sanitizeText(String(envelope.label));
      instance = { label, seq: 0, lastHeard: 0, nicks: new Map(), away: new Map() };
      instances.set(envelope.from, instance);
      // A newcomer, or one this instance had given up on: learn who is there.
      if (envelope.type !== "roster" && envelope.type !== "hello") publishRaw({ type: "hello" });
    }
    if (!(envelope.seq > instance.seq)) return;
    instance.seq = envelope.seq;
    instance.lastHeard = Date.now();
    try {
      handle(envelope.from, instance, envelope);
    } catch {
      // A malformed event (anyone can publish on a Redis channel): ignored.
    }
  };

  const handle = (from: string, instance: Instance, event: ClusterEvent | LinkEvent) => {
    switch (event.type) {
      case "beat":
        return;
      case "hello":
        return publishRaw(roster());
      case "roster":
        instance.nicks = new Map(event.nicks.map((nick) => [nick.toLowerCase(), cleanNick(nick)]));
        instance.away = new Map(
          (event.away ?? []).map(([nick, reason]) => [nick.toLowerCase(), cleanNick(reason)]),
        );
        if (buried.delete(from)) {
          for (const nick of instance.nicks.values()) room.deliver(`* ${nick} joined`);
        }
        return;
      case "bye":
        return forget(from, event.reason);
      case "join":
        instance.nicks.set(event.nick.toLowerCase(), cleanNick(event.nick));
        return room.deliver(event.line);
      case "leave":
        instance.nicks.delete(event.nick.toLowerCase());
        instance.away.delete(event.nick.toLowerCase());
        return room.deliver(event.line);
      case "rename": {
        instance.nicks.delete(event.old.toLowerCase());
        instance.nicks.set(event.nick.toLowerCase(), cleanNick(event.nick));
        const away = instance.away.get(event.old.toLowerCase());
        instance.away.delete(event.old.toLowerCase());
        if (away !== undefined) instance.away.set(event.nick.toLowerCase(), away);
        return room.deliver(event.line);
      }
      case "away":
        if (event.reason === null) return void instance.away.delete(event.nick.toLowerCase());
        return void instance.away.set(event.nick.toLowerCase(), cleanNick(event.reason));
      case "say":
        if (!heardWhileLoading) return room.deliverSaid(event.line);
        heardWhileLoading.push({ from, seq: instance.seq, line: String(event.line) });
        return room.deliver(event.line); // kept once loadHistory has merged it
      case "private":
        return room.deliverPrivate(event.to, event.line);
      case "kick":
        return room.kick(event.nick);
    }
  };

  /** An instance is gone: its users are shown leaving, for `reason`. */
  const forget = (id: string, reason: string) => {
    const instance = instances.get(id);
    instances.delete(id);
    for (const nick of instance?.nicks.values() ?? []) {
      room.deliver(`* ${nick} left${reason ? ` (${reason})` : ""}`);
    }
  };

  /** Instances silent past the limit were killed or cut off. */
  const buryTheSilent = () => {
    if (!up) return;
    const now = Date.now();
    for (const [id, instance] of instances) {
      if (now - instance.lastHeard < SILENCE_LIMIT_MS) continue;
      buried.add(id);
      forget(id, "server lost");
    }
  };

  for (const client of [publisher, subscriber]) {
    client.on("error", () => linkChanged()); // reconnecting: the strategy decides
    client.on("end", linkChanged);
    client.on("ready", linkChanged);
  }
  try {
    await publisher.connect();
    await subscriber.connect();
    await subscriber.subscribe(channel, receive);
    await loadHistory();
  } catch (err) {
    disconnect(publisher, subscriber);
    const reason = err instanceof Error ? err.message : String(err);
    throw new Failure(
      `cannot reach Redis at ${displayUrl(url)} (${reason || "no answer"}); ` +
        "start redis-server there or fix --redis",
    );
  }
  started = true;
  up = true;
  announce();

  const heartbeat = setInterval(() => {
    publishRaw({ type: "beat" });
    renew();
  }, HEARTBEAT_MS);
  // Checked often, so a dead instance is noticed at most a quarter second
  // after its silence passes the limit.
  const watch = setInterval(buryTheSilent, HEARTBEAT_MS / 4);

  return {
    *remoteUsers() {
      for (const instance of instances.values()) {
        for (const [key, nick] of instance.nicks) {
          yield { nick, label: instance.label, away: instance.away.get(key) };
        }
      }
    },
    remoteCount() {
      let count = 0;
      for (const instance of instances.values()) count += instance.nicks.size;
      return count;
    },
    findRemote(nick) {
      const key = nick.toLowerCase();
      for (const instance of instances.values()) {
        const found = instance.nicks.get(key);
        if (found) return { nick: found, label: instance.label, away: instance.away.get(key) };
      }
      return undefined;
    },
    async claim(nick) {
      // While the link is down only local names count; renew() settles
      // any clash when it returns.
      if (!up) return true;
      try {
        const reply = await publisher.set(nickKey(nick), self, {
          condition: "NX",
          expiration: { type: "PX", value: SILENCE_LIMIT_MS },
        });
        return reply === "OK";
      } catch {
        return true;
      }
    },
    release(nick) {
      if (!up) return; // the key expires by itself
      publisher.eval(RELEASE_SCRIPT, { keys: [nickKey(nick)], arguments: [self] })
        .catch(() => {});
    },
    async nextGuestNumber() {
      if (!up) return undefined;
      try {
        return await publisher.incr(`chat:${roomName}:guests`);
      } catch {
        return undefined;
      }
    },
    publish: publishRaw,
    async close(reason) {
      clearInterval(heartbeat);
      clearInterval(watch);
      if (up) {
        // Published before the nicks are released, on the same connection:
        // the others see this instance's users leave, then the names free.
        const keys = room.localNicks().map(nickKey);
        const envelope: Envelope = { type: "bye", reason, from: self, label, seq: ++seq };
        const farewell = Promise.all([
          publisher.publish(channel, JSON.stringify(envelope)),
          keys.length ? publisher.eval(RELEASE_SCRIPT, { keys, arguments: [self] }) : undefined,
        ]).catch(() => {});
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([farewell, new Promise((resolve) => timer = setTimeout(resolve, 1000))]);
        clearTimeout(timer);
      }
      closing = true;
      up = false;
      disconnect(publisher, subscriber);
    },
  };
}

/** A line kept in the room's history in Redis, with who said it and its sequence number. */
interface HistoryEntry {
  from: string;
  seq: number;
  line: string;
}

/** A history entry as Redis keeps it, or undefined for anything else (anyone can write there). */
function parseHistoryEntry(text: string): HistoryEntry | undefined {
  try {
    const { from, seq, line } = JSON.parse(text);
    return typeof line === "string" ? { from: String(from), seq: Number(seq), line } : undefined;
  } catch {
    return undefined;
  }
}

/** Nicks from other instances are shown on terminals: no control characters. */
function cleanNick(nick: string): string {
  return sanitizeText(String(nick));
}

/** Drops the connections at once (destroy() throws on one never opened). */
function disconnect(...clients: RedisClientType[]): void {
  for (const client of clients) {
    try {
      client.destroy();
    } catch {
      // already closed
    }
  }
}
