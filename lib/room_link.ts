/**
 * What a chat room and the other instances sharing it (`--redis`) say to
 * each other: the events one instance publishes, what the room offers the
 * link, and what the link offers the room. Types only: the room depends on
 * these, not on the Redis client, which `lib/cluster.ts` loads only with
 * `--redis`.
 *
 * @module
 */

/** What happened among one instance's clients, as told to the others. */
export type ClusterEvent =
  | { type: "say"; line: string }
  | { type: "join"; nick: string; line: string }
  | { type: "leave"; nick: string; line: string }
  | { type: "rename"; old: string; nick: string; line: string }
  | { type: "private"; to: string; line: string }
  | { type: "kick"; nick: string }
  | { type: "away"; nick: string; reason: string | null };

/** What the cluster needs from the local room. */
export interface LocalRoom {
  /** How many public lines the room keeps for newcomers (--history). */
  historyLimit: number;
  /** A line from another instance, for every local client. */
  deliver(line: string): void;
  /** A public line said on another instance: delivered, and kept for newcomers. */
  deliverSaid(line: string): void;
  /** The room's recent public lines as Redis kept them, oldest first, once at the start. */
  seedHistory(lines: string[]): void;
  /** A private line for the local client called `nick`, if there is one. */
  deliverPrivate(nick: string, line: string): void;
  /** Another instance's operator kicked `nick`, if it is a local client. */
  kick(nick: string): void;
  /** A notice about the link itself, for every local client. */
  notice(line: string): void;
  /** The nicks of the local clients, now (held in Redis: announced or not). */
  localNicks(): string[];
  /** The nicks of the local clients the room has been told of (for the roster). */
  announcedNicks(): string[];
  /** The local clients that are away, with their reasons ("" for none). */
  localAway(): [nick: string, reason: string][];
  /** A local nick turned out to be held elsewhere (claimed while the link was down). */
  nickLost(nick: string): void;
}

/** A user connected to another instance. */
export interface RemoteUser {
  /** The user's nick. */
  nick: string;
  /** The listening address of the user's instance. */
  label: string;
  /** Why the user is away ("" for no reason), or undefined when not away. */
  away?: string;
}

/** This instance's view of the other instances sharing the room. */
export interface Cluster {
  /** Users on other instances, as far as this one knows (walked lazily). */
  remoteUsers(): Iterable<RemoteUser>;
  /** How many remoteUsers() would give. */
  remoteCount(): number;
  /** The user called `nick` on another instance, if any. */
  findRemote(nick: string): RemoteUser | undefined;
  /** Claims `nick` in the whole room; false if another instance holds it. */
  claim(nick: string): Promise<boolean>;
  /** Gives up a nick this instance held. */
  release(nick: string): void;
  /** A room-wide guest number, or undefined while the link is down. */
  nextGuestNumber(): Promise<number | undefined>;
  /** Tells the other instances. */
  publish(event: ClusterEvent): void;
  /** Says goodbye (the others show this instance's users as left), then disconnects. */
  close(reason: string): Promise<void>;
}

/**
 * How `lib/cluster.ts` joins a room: connects to Redis at `url`, joins the
 * room `roomName` as the instance listening at `label`, and reaches the
 * local clients through `room`.
 */
export type JoinCluster = (
  url: string,
  roomName: string,
  label: string,
  room: LocalRoom,
) => Promise<Cluster>;
