/**
 * One message, the way the notes' `recv(1024)` meant it: everything up to a
 * newline, the peer's EOF, or a byte limit, however many TCP segments carry
 * it. Used by the one-shot scripts (`server.ts`, `client.ts`,
 * `reuse_server.ts`).
 *
 * TCP is a byte stream: one `recv()` returns whatever has arrived, which may
 * be half a message, or half a Chinese character. Here bytes are collected
 * first and decoded once, so a character split across reads comes out whole.
 *
 * @module
 */

import { paint } from "../utils.ts";
import { sanitizeText } from "./peer_text.ts";

/** What ended a message. */
export type MessageEnd = "newline" | "eof" | "size";

/** One message as received. */
export interface Message {
  /** The decoded text, without the line ending (invalid bytes are U+FFFD). */
  text: string;
  /**
   * Bytes that crossed the wire for it: the line ending included, as the
   * sender counts what it sent; at --size, every byte read.
   */
  byteLength: number;
  /** The line ending it came with: "\n", "\r\n", or "" (ended by EOF or --size). */
  lineEnding: "\n" | "\r\n" | "";
  /** What ended it: a newline, the peer's EOF, or the --size limit. */
  end: MessageEnd;
  /** Bytes each conn.read() returned: the note's one recv() got only the first. */
  reads: number[];
}

// Not fatal: invalid bytes become U+FFFD. ignoreBOM: a U+FEFF a peer sends
// at the start of a line is text like any other, not a marker to eat.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const NEWLINE = 0x0a;

/**
 * Reads one message: up to a newline, the peer's EOF, or `maxBytes`,
 * whichever comes first. A message cut at `maxBytes` is cut at a character
 * boundary. Returns null when the peer closed (or reset) before sending a
 * byte.
 */
export async function readMessage(conn: Deno.Conn, maxBytes: number): Promise<Message | null> {
  const buffer = new Uint8Array(maxBytes);
  let filled = 0;
  let end: MessageEnd = "size";
  const reads: number[] = [];
  while (filled < maxBytes) {
    let n: number | null;
    try {
      n = await conn.read(buffer.subarray(filled));
    } catch (err) {
      if (!(err instanceof Deno.errors.ConnectionReset)) throw err;
      n = null; // A reset peer is one that went away, like EOF.
    }
    if (n === null) {
      end = "eof";
      break;
    }
    reads.push(n);
    const newline = buffer.subarray(filled, filled + n).indexOf(NEWLINE);
    filled += n;
    if (newline !== -1) {
      filled = filled - n + newline;
      end = "newline";
      break;
    }
  }
  if (filled === 0 && end === "eof") return null;
  let body = buffer.subarray(0, end === "size" ? utf8Boundary(buffer) : filled);
  const crlf = end === "newline" && body.at(-1) === 0x0d;
  if (crlf) body = body.subarray(0, -1);
  const lineEnding = end !== "newline" ? "" : crlf ? "\r\n" : "\n";
  const byteLength = end === "newline" ? filled + 1 : filled;
  return { text: utf8.decode(body), byteLength, lineEnding, end, reads };
}

/** Prints `received: TEXT`, sanitised, with a note on stderr when --size stopped it. */
export function printReceived(message: Message, size: number): void {
  console.log(`received: ${sanitizeText(message.text)}`);
  if (message.end === "size") {
    const note = `(stopped at --size ${size} bytes; the rest was not read)`;
    console.error(paint("yellow", note, "stderr"));
  }
}

/**
 * The length of the longest prefix of `bytes` that does not end inside a
 * UTF-8 sequence. Continuation bytes look like 10xxxxxx; the lead byte
 * before them says how long the sequence is.
 */
export function utf8Boundary(bytes: Uint8Array): number {
  const len = bytes.length;
  for (let back = 1; back <= Math.min(4, len); back++) {
    const byte = bytes[len - back];
    if ((byte & 0xc0) === 0x80) continue; // continuation: keep looking back
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? len - back : len;
  }
  return len;
}
