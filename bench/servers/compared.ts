/**
 * bench/servers/compared.ts: the servers a scenario compares side by side,
 * one column each: chat_server.ts and ncat --chat. Another server to compare
 * is one more kind here and one more file beside chat.ts and ncat.ts.
 */

import { type ChatOptions, startChat } from "./chat.ts";
import { startNcat } from "./ncat.ts";
import { type RunningServer } from "./process.ts";

export type ServerKind = "chat" | "ncat";

/** Column headings; the chat label becomes the --chat-script's file name. */
export const SERVER_LABEL: Record<ServerKind, string> = {
  chat: "chat_server.ts",
  ncat: "ncat --chat",
};

export function isServerKind(name: string): name is ServerKind {
  return name in SERVER_LABEL;
}

export async function startServer(
  kind: ServerKind,
  chat: ChatOptions = {},
): Promise<RunningServer> {
  return kind === "chat" ? await startChat(chat) : await startNcat();
}
