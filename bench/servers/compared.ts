/**
 * bench/servers/compared.ts: the servers a scenario compares side by side,
 * one column each: chat_server.ts and its peers (ncat --chat, the Node relay,
 * the Go book's chat shape), and the Deno.listen floor, which relays nothing
 * and stands beside them in the idle scenario only. Another server to compare
 * is one more kind here and one more file beside chat.ts and ncat.ts.
 */

import { type ChatOptions, startChat } from "./chat.ts";
import { type Availability } from "./command.ts";
import { startDenoFloor } from "./deno_floor.ts";
import { ensureGoChat, startGoChat } from "./go_chat.ts";
import { ensureNcat, startNcat } from "./ncat.ts";
import { probeNode, startNodeRelay } from "./node_relay.ts";
import { type RunningServer } from "./process.ts";

export type ServerKind = "chat" | "ncat" | "node" | "go" | "floor" | "floor1";

/** Every kind, in column order. */
export const SERVER_KINDS: readonly ServerKind[] = [
  "chat",
  "ncat",
  "node",
  "go",
  "floor",
  "floor1",
];

/** The rooms chat_server.ts is compared with: each row's best of them is its "best peer". */
export const PEERS: readonly ServerKind[] = ["ncat", "node", "go"];

/** What each kind is, for notes and progress; the chat label becomes the --chat-script's file name. */
export const SERVER_LABEL: Record<ServerKind, string> = {
  chat: "chat_server.ts",
  ncat: "ncat --chat",
  node: "Node relay",
  go: "Go (gopl shape)",
  floor: "Deno.listen floor",
  floor1: "Deno.listen floor that tells its clients one line",
};

/** Column headings (SERVER_LABEL spelled out above each table): the tables stay narrow. */
export const SERVER_COLUMN: Record<ServerKind, string> = {
  chat: "chat",
  ncat: "ncat",
  node: "node",
  go: "go",
  floor: "floor",
  floor1: "floor+1",
};

export function isServerKind(name: string): name is ServerKind {
  return name in SERVER_LABEL;
}

export async function startServer(
  kind: ServerKind,
  chat: ChatOptions = {},
): Promise<RunningServer> {
  switch (kind) {
    case "chat":
      return await startChat(chat);
    case "ncat":
      return await startNcat();
    case "node":
      return await startNodeRelay();
    case "go":
      return await startGoChat();
    case "floor":
      return await startDenoFloor("hold");
    case "floor1":
      return await startDenoFloor("notice");
  }
}

/**
 * Whether `kind` can run here, making it so where the bench can: ncat and go
 * are installed with apt-get when missing (as root), the Go peer is built;
 * node must be there. chat_server.ts and the floor need only Deno.
 */
export async function ensureServer(
  kind: ServerKind,
  log: (line: string) => void,
): Promise<Availability> {
  switch (kind) {
    case "chat":
    case "floor":
    case "floor1":
      return { ok: true, version: `Deno ${Deno.version.deno}` };
    case "ncat":
      return await ensureNcat(log);
    case "node":
      return await probeNode();
    case "go":
      return await ensureGoChat(log);
  }
}
