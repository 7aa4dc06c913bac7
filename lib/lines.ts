/**
 * Line framing over a TCP byte stream, for the chat (server, client) and
 * anything else that speaks lines: bytes in, whole lines out.
 *
 * TCP delivers bytes, not messages: one read may hold half a line, two
 * lines, or a Chinese character cut in the middle. The splitter cuts on the
 * byte `\n` before decoding (0x0a never occurs inside a UTF-8 sequence), so
 * no character is ever cut, whatever the segments were, and it bounds how
 * much an unfinished line may hold.
 *
 * @module
 */

// Not fatal: invalid bytes become U+FFFD. ignoreBOM: a U+FEFF a peer sends
// at the start of a line is text like any other, not a marker to eat.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const NEWLINE = 0x0a;

/** Marks a line that went over the limit and was discarded. */
export const LINE_TOO_LONG: unique symbol = Symbol("line too long");
/** A decoded line, or LINE_TOO_LONG in place of one that was dropped. */
export type LineEvent = string | typeof LINE_TOO_LONG;

/**
 * Frames a byte stream into lines ending in `\n` (`\r\n` accepted). Splitting
 * happens on bytes, before decoding: 0x0a never occurs inside a UTF-8
 * sequence, so no character is ever cut, whatever the TCP segments were.
 * A line over `maxLine` bytes is reported once as LINE_TOO_LONG and its bytes
 * are dropped as they arrive: at most `maxLine` + 1 bytes are ever held.
 * Pass `null` (what conn.read() returns at EOF) to end the stream: that
 * yields the unfinished last line, if any, for peers that want it.
 */
export function createLineSplitter(
  maxLine: number,
): (chunk: Uint8Array | null) => LineEvent[] {
  const split = createByteLineSplitter(maxLine);
  return (chunk) => split(chunk).map((line) => line === LINE_TOO_LONG ? line : utf8.decode(line));
}

/** A line as bytes (without its line ending), or LINE_TOO_LONG. */
export type ByteLineEvent = Uint8Array | typeof LINE_TOO_LONG;

/**
 * A buffer holding `used` bytes with room for `more`: `buffer` if it has it,
 * else a bigger copy (doubling, at most `most`). Sized to the fragments it
 * holds, not to the longest line: a busy sender's lines are cut at almost
 * every read, and a buffer of --max-line bytes each time was most of what
 * relaying a push allocated.
 */
function roomFor(
  buffer: Uint8Array | undefined,
  used: number,
  more: number,
  most: number,
): Uint8Array {
  const needed = used + more;
  if (buffer && buffer.length >= needed) return buffer;
  const grown = new Uint8Array(Math.min(most, Math.max(256, 2 * needed)));
  if (buffer) grown.set(buffer.subarray(0, used));
  return grown;
}

/**
 * createLineSplitter's lines as bytes, undecoded, for a caller that can
 * relay them as they are. A line may be a view into `chunk`: use it before
 * reading into that buffer again.
 */
export function createByteLineSplitter(
  maxLine: number,
): (chunk: Uint8Array | null) => ByteLineEvent[] {
  let partial: Uint8Array | undefined; // bytes of an unfinished line, allocated on demand
  let partialLength = 0;
  let discarding = false; // inside an overlong line, waiting for its newline
  const finishLine = (line: Uint8Array): ByteLineEvent => {
    if (line.at(-1) === 0x0d) line = line.subarray(0, -1);
    return line.length > maxLine ? LINE_TOO_LONG : line;
  };
  return (chunk) => {
    if (chunk === null) {
      const events: ByteLineEvent[] = discarding || partialLength === 0
        ? []
        : [finishLine(partial!.subarray(0, partialLength))];
      partial = undefined;
      partialLength = 0;
      discarding = false;
      return events;
    }
    const events: ByteLineEvent[] = [];
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      if (discarding) {
        discarding = newline === -1;
      } else if (partialLength + end - start > maxLine + 1) { // + 1: room for a \r
        events.push(LINE_TOO_LONG);
        partial = undefined;
        partialLength = 0;
        discarding = newline === -1;
      } else if (newline === -1) {
        partial = roomFor(partial, partialLength, end - start, maxLine + 1);
        partial.set(chunk.subarray(start, end), partialLength);
        partialLength += end - start;
      } else {
        let line = chunk.subarray(start, end);
        if (partialLength > 0) {
          partial = roomFor(partial, partialLength, line.length, maxLine + 1);
          partial.set(line, partialLength);
          line = partial.subarray(0, partialLength + line.length);
          partial = undefined;
          partialLength = 0;
        }
        events.push(finishLine(line));
      }
      start = end + 1;
    }
    return events;
  };
}
