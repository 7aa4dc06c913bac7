/**
 * What a chat line from a client is, from its bytes: most lines are
 * printable ASCII and can be relayed as they came, with no decoding,
 * sanitising or encoding; the rest are decoded and sanitised once.
 *
 * @module
 */

import { sanitizeText } from "./peer_text.ts";

const SLASH = 0x2f;
// Not fatal: invalid bytes become U+FFFD.
const utf8 = new TextDecoder();

/**
 * True when `bytes` are printable ASCII and tabs only: text sanitizeText
 * would leave as it is, so it can be relayed without decoding it.
 */
export function isPlainAscii(bytes: Uint8Array): boolean {
  if (bytes.length >= WORDWISE_FROM) return isPlainAsciiWordwise(bytes);
  return isPlainAsciiRange(bytes, 0, bytes.length);
}

function isPlainAsciiRange(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const byte = bytes[i];
    if ((byte < 0x20 && byte !== 0x09) || byte > 0x7e) return false;
  }
  return true;
}

// A big line (a paste) is checked four bytes at a time: relaying 1 KiB lines,
// the byte-by-byte loop was a sixteenth of the server's CPU. Below this, the
// word view costs more than it saves.
const WORDWISE_FROM = 256;
const ONES = 0x01010101;
const HIGH_BITS = 0x80808080;

/** isPlainAscii, a 32-bit word at a time where the bytes are aligned to one. */
function isPlainAsciiWordwise(bytes: Uint8Array): boolean {
  const head = Math.min(bytes.length, (4 - (bytes.byteOffset & 3)) & 3);
  const count = (bytes.length - head) >> 2;
  const tail = head + count * 4;
  if (!isPlainAsciiRange(bytes, 0, head) || !isPlainAsciiRange(bytes, tail, bytes.length)) {
    return false;
  }
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset + head, count);
  for (let i = 0; i < count; i++) {
    const word = words[i];
    // A byte of 0x80 or more, or of 0x7f, fails; one below 0x20 may be a tab.
    if ((word & HIGH_BITS) !== 0 || hasZeroByte(word ^ 0x7f7f7f7f)) return false;
    if (hasByteBelow(word, 0x20) && !isPlainAsciiRange(bytes, head + i * 4, head + i * 4 + 4)) {
      return false;
    }
  }
  return true;
}

/** Some byte of `word` (all under 0x80) is below `n` (at most 0x80). */
function hasByteBelow(word: number, n: number): boolean {
  return ((word - ONES * n) & ~word & HIGH_BITS) !== 0;
}

function hasZeroByte(word: number): boolean {
  return ((word - ONES) & ~word & HIGH_BITS) !== 0;
}

/**
 * A chat line to relay as bytes: printable ASCII, not a command, not blank.
 * Anything else (commands, blank lines, UTF-8, control characters) takes
 * the way through {@linkcode decodeLine}.
 */
export function isPlainChat(raw: Uint8Array): boolean {
  return raw.length > 0 && raw[0] !== SLASH && !isBlank(raw) && isPlainAscii(raw);
}

/**
 * The run of plain chat lines (isPlainChat) in `lines` from `from` on, up to
 * the first line that is something else (a command, a line too long).
 */
export function plainRun(lines: readonly (Uint8Array | symbol)[], from: number): Uint8Array[] {
  const run: Uint8Array[] = [];
  for (let i = from; i < lines.length; i++) {
    const line = lines[i];
    if (typeof line === "symbol" || !isPlainChat(line)) break;
    run.push(line);
  }
  return run;
}

const NICK_COMMAND = new TextEncoder().encode("/nick");

/** True for a `/nick` command line, told from its bytes. */
export function isNickCommand(raw: Uint8Array): boolean {
  if (raw.length < NICK_COMMAND.length) return false;
  for (let i = 0; i < NICK_COMMAND.length; i++) if (raw[i] !== NICK_COMMAND[i]) return false;
  return raw.length === NICK_COMMAND.length || raw[NICK_COMMAND.length] === 0x20 ||
    raw[NICK_COMMAND.length] === 0x09;
}

/** A line's text, decoded (invalid bytes become U+FFFD) and safe to show. */
export function decodeLine(raw: Uint8Array): string {
  return sanitizeText(utf8.decode(raw));
}

function isBlank(raw: Uint8Array): boolean {
  return raw.every((byte) => byte === 0x20 || byte === 0x09);
}

/**
 * A command line's first word and the rest, trimmed:
 * "word rest of line" -> ["word", "rest of line"].
 */
export function splitWord(line: string): [string, string] {
  const match = /^(\S+)\s*(.*)$/.exec(line.trim());
  return match ? [match[1], match[2].trim()] : ["", ""];
}
