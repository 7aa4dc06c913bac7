/**
 * The chat's lines as chat_client.ts sees them: bytes from the server framed
 * into safe lines, what kind each line is, what it says about the client's
 * own nick, and how the room sees a line the client sends (the server does
 * not echo it back).
 *
 * Only text conventions live here, no sockets and no terminal: the wire
 * protocol's first characters ("* " notice, "! " error, "<nick> " chat) and
 * chat_server.ts's welcome, which names the client and the longest line the
 * server takes. nc and ncat peers send plain lines.
 *
 * @module
 */

import { sanitizeText } from "./peer_text.ts";
import { createLineSplitter, LINE_TOO_LONG } from "./lines.ts";

/** Longest server line shown; a longer one is dropped as it arrives. */
export const MAX_LINE_BYTES = 64 * 1024;

/** Shown, as the client's own notice, in place of a line over MAX_LINE_BYTES. */
export const TOO_LONG_NOTICE = "! (a line over 64 KiB from the server was not shown)";

/** A received line: the server's, or the client's own notice in its place. */
export type Received = { server: string } | { local: string };

/**
 * Turns received bytes into lines to show. Each line is sanitised here, once,
 * so nothing later can print raw peer text. Pass `null` at EOF for the last
 * line the server did not finish.
 */
export function createReceiver(): (chunk: Uint8Array | null) => Received[] {
  const split = createLineSplitter(MAX_LINE_BYTES);
  return (chunk) =>
    split(chunk).map((line) =>
      line === LINE_TOO_LONG ? { local: TOO_LONG_NOTICE } : { server: sanitizeText(line) }
    );
}

/** What a server line is, from its first characters; a terminal colours each kind. */
export type LineKind = "notice" | "error" | "private" | "other" | "plain";

/** The kind of `line`: notice, error, private message, someone's chat line, or plain text. */
export function classifyLine(line: string): LineKind {
  if (line.startsWith("* ")) return "notice";
  if (line.startsWith("! ")) return "error";
  if (/^<[^<>\s]+> \(private\) /.test(line)) return "private";
  if (/^<[^<>\s]+> /.test(line)) return "other";
  return "plain";
}

/** The nick the server says we have, from its welcome or a rename notice. */
export function nickFromNotice(line: string): string | undefined {
  return /^\* (?:welcome, you are|you are now) (\S+)$/.exec(line)?.[1];
}

/** chat_server.ts's first line: only it answers /ping, so only it is pinged. */
export function isWelcome(line: string): boolean {
  return /^\* welcome, you are \S+$/.test(line);
}

/**
 * chat_server.ts --password-file's first line: it admits (and welcomes) a
 * client only after "/pass PASSWORD".
 */
export function isPasswordPrompt(line: string): boolean {
  return /^\* password required: \/pass /.test(line);
}

/**
 * The longest line chat_server.ts accepts, from the end of its welcome
 * ("* type /help for commands; lines up to 4096 bytes"): a longer one would
 * be refused, so the client does not send it.
 */
export function lineLimitFromNotice(line: string): number | undefined {
  const bytes = /^\* .*\blines up to (\d+) bytes$/.exec(line)?.[1];
  return bytes === undefined ? undefined : Number(bytes);
}

/**
 * How the room shows the line `typed` by `nick`: chat text as `<nick> text`,
 * `/me action` as `* nick action`. The server echoes neither back, so the
 * client shows this itself. Other commands get an answer instead: undefined.
 */
export function asOthersSeeIt(typed: string, nick: string): string | undefined {
  if (!typed.startsWith("/")) return `<${nick}> ${typed}`;
  const action = /^\/me\s+(\S.*)$/.exec(typed)?.[1];
  return action === undefined ? undefined : `* ${nick} ${action}`;
}

/** chat_server.ts's answer to a wrong "/pass PASSWORD" (the third also closes). */
export function isWrongPassword(line: string): boolean {
  return line === "! wrong password";
}

// chat_server.ts notices that start with a nick-shaped word but are the
// server talking to us ("* you are now NAME", "* online (2): NAME, bob"):
// our own name in them is not someone calling us.
const SERVER_NOTICE = /^\* (?:welcome,|you |online \(|type |pong|banned |unbanned |password )/;

/**
 * The speaker and text of a line someone else may have written: `<nick> text`,
 * `<nick> (private) text` or an action `* nick text`; undefined for others.
 */
function spokenLine(line: string): { speaker: string; text: string } | undefined {
  const chat = /^<([^<>\s]+)> (?:\(private\) )?([\s\S]*)$/.exec(line);
  if (chat) return { speaker: chat[1], text: chat[2] };
  if (SERVER_NOTICE.test(line)) return undefined;
  const action = /^\* ([\w-]+) ([\s\S]*)$/.exec(line);
  return action ? { speaker: action[1], text: action[2] } : undefined;
}

/**
 * True when someone else's line (chat, private message or /me action) names
 * `nick` as a word: any case, but not inside a longer word ("alice" is not
 * in "malice" or "alice_2"). Our own lines and server notices never mention us.
 */
export function mentionsNick(line: string, nick: string | undefined): boolean {
  if (nick === undefined) return false;
  const spoken = spokenLine(line);
  if (!spoken || spoken.speaker.toLowerCase() === nick.toLowerCase()) return false;
  const escaped = nick.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  // Nick characters (letters, digits, "_" and "-") around it would make it another word.
  return new RegExp(`(?<![\\p{L}\\p{N}_-])${escaped}(?![\\p{L}\\p{N}_-])`, "iu").test(spoken.text);
}
