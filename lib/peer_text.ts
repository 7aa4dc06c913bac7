/**
 * Text from a peer, made safe to print or relay: whatever a peer sends, it
 * can never move another user's cursor, clear their screen or fake a line
 * on their terminal. Every script that shows or relays peer text uses it.
 *
 * @module
 */

// C0 controls but tab, DEL, C1 controls, and the bidirectional overrides that
// let a line display as something other than what it says.
// deno-lint-ignore no-control-regex
const UNSAFE_CHARS = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Makes peer text safe to print or relay: control characters become visible
 * escapes (`\x1b`, `\r`, `\u0085`), so a peer can never move another user's
 * cursor, clear their screen or fake a line. Chinese and emoji pass through.
 */
export function sanitizeText(text: string): string {
  return text.replace(UNSAFE_CHARS, (char) => {
    if (char === "\r") return "\\r";
    if (char === "\n") return "\\n";
    const code = char.charCodeAt(0);
    return code < 0x80
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
