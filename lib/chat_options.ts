/**
 * `chat_server.ts`'s flags, checked: what the room, its door and its
 * listener are made with. Every bad value is a usage error (exit 2) that
 * names its flag; files named by flags are read here, once, at the start.
 *
 * @module
 */

import { type Options, parseIntFlag, UsageError } from "../utils.ts";
import { readFlagFile, readFlagFileLines } from "./flag_files.ts";
import { readPasswordFile } from "./password.ts";
import type { TlsKeyPair } from "./tls_server.ts";

/** The chat server's own flags, for parseFlags (besides --host, --port, --help). */
export const CHAT_FLAGS = {
  "max-clients": { type: "string", default: "10000" },
  "max-line": { type: "string", default: "4096" },
  "max-queue": { type: "string", default: String(1024 * 1024) },
  "idle-timeout": { type: "string", default: "0" },
  history: { type: "string", default: "50" },
  motd: { type: "string" },
  "password-file": { type: "string" },
  "max-rate": { type: "string", default: "20" },
  redis: { type: "string" },
  room: { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
} as const satisfies Options;

/** The flags' values as parseFlags gives them (strings; undefined when not given). */
export type ChatFlagValues = { [K in keyof typeof CHAT_FLAGS]: string | undefined };

/** What the flags ask for, checked. */
export interface ChatOptions {
  /** Clients at once (--max-clients). */
  maxClients: number;
  /** Longest line accepted (--max-line). */
  maxLine: number;
  /** Unsent bytes a client may leave unread (--max-queue). */
  maxQueue: number;
  /** Seconds of silence before a client is closed; 0: never (--idle-timeout). */
  idleSecs: number;
  /** Public lines a newcomer is shown (--history). */
  history: number;
  /** The message of the day's lines (--motd). */
  motd: string[];
  /** The room password (--password-file), if any. */
  password?: string;
  /** Lines a second per client; 0: no limit (--max-rate). */
  maxRate: number;
  /** The certificate and key to speak TLS with (--tls-cert, --tls-key), if any. */
  tls?: TlsKeyPair;
  /** The Redis URL and room shared with other instances (--redis, --room), if any. */
  cluster?: { url: string; room: string };
}

/** Checks every chat flag; reads the files they name. */
export async function chatOptions(flags: ChatFlagValues): Promise<ChatOptions> {
  const number = (flag: keyof typeof CHAT_FLAGS, min: number, max?: number) =>
    parseIntFlag(flags[flag] ?? "", `--${flag}`, min, max);
  return {
    maxClients: number("max-clients", 1),
    maxLine: number("max-line", 1),
    maxQueue: number("max-queue", 1),
    idleSecs: number("idle-timeout", 0, 86_400 * 365),
    history: number("history", 0, 10_000),
    motd: flags.motd === undefined ? [] : await readFlagFileLines(flags.motd, "--motd"),
    password: flags["password-file"] === undefined
      ? undefined
      : await readPasswordFile(flags["password-file"]),
    maxRate: number("max-rate", 0, 1_000_000),
    tls: await readTlsFlags(flags["tls-cert"], flags["tls-key"]),
    cluster: clusterFlags(flags.redis, flags.room),
  };
}

async function readTlsFlags(certFile?: string, keyFile?: string): Promise<TlsKeyPair | undefined> {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) {
    throw new UsageError("--tls-cert FILE and --tls-key FILE go together: give both, or neither");
  }
  const cert = await readFlagFile(certFile, "--tls-cert");
  const key = await readFlagFile(keyFile, "--tls-key");
  return { cert, key, certFile, keyFile };
}

const ROOM_NAME_PATTERN = /^[\w.-]{1,64}$/;

/** Checks --redis and --room; the Redis client itself judges the rest. */
function clusterFlags(redis?: string, room?: string): { url: string; room: string } | undefined {
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
