/**
 * bench/servers/chat.ts: the server under test, `deno run -A chat_server.ts
 * --port 0 --max-clients 20000 --max-rate 0` (or another script given with
 * --chat-script), ready when it prints its `listening on` line.
 */

import { type RunningServer, startAnnounced } from "./process.ts";

export interface ChatOptions {
  script?: string;
  /** Extra deno flags before the script, e.g. --v8-flags=... or --cpu-prof. */
  denoFlags?: string[];
  /** Extra chat_server flags, e.g. --max-queue N or --redis URL. */
  args?: string[];
  /**
   * Keep chat_server's flood control (--max-rate, 20 lines a second per
   * client by default). Off unless asked: the scenarios measure what the
   * room can relay, and their senders are far faster than a person.
   */
  floodControl?: boolean;
}

/** chat_server.ts --port 0 --max-clients 20000 --max-rate 0 (+args); waits for its readiness line. */
export async function startChat(options: ChatOptions = {}): Promise<RunningServer> {
  const script = options.script ?? "chat_server.ts";
  const args = [
    "run",
    "-A",
    ...(options.denoFlags ?? []),
    script,
    "--port",
    "0",
    "--max-clients",
    "20000",
    ...(options.floodControl ? [] : ["--max-rate", "0"]),
    ...(options.args ?? []),
  ];
  const label = `deno ${args.join(" ")}`;
  return await startAnnounced("chat", "chat_server", Deno.execPath(), args, label);
}
