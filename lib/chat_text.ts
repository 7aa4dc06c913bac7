/**
 * What a chat line from a client is, from its bytes: most lines are
 * printable ASCII and can be relayed as they came, with no decoding,
 * sanitising or encoding; the rest are decoded and sanitised once.
 *
 * @module
 */

import { sanitizeText } from "../utils.ts";

const SLASH = 0x2f;
// Not fatal: invalid bytes become U+FFFD.
const utf8 = new TextDecoder();

/**
 * True when `bytes` are printable ASCII and tabs only: text sanitizeText
 * would leave as it is, so it can be relayed without decoding it.
 */
export function isPlainAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if ((byte < 0x20 && byte !== 0x09) || byte > 0x7e) return false;
  }
  return true;
}

/**
 * A chat line to relay as bytes: printable ASCII, not a command, not blank.
 * Anything else (commands, blank lines, UTF-8, control characters) takes
 * the way through {@linkcode decodeLine}.
 */
export function isPlainChat(raw: Uint8Array): boolean {
  return raw.length > 0 && raw[0] !== SLASH && !isBlank(raw) && isPlainAscii(raw);
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
