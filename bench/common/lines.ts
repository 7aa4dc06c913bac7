/**
 * bench/common/lines.ts: splitting a child's or a socket's byte stream into
 * text lines (for the bench's own plumbing, not the chat protocol under test).
 */

/** Splits a byte stream into text lines and hands each to `onLine`. */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of stream) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) !== -1) {
        onLine(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    }
  } catch {
    // The process went away: end of stream.
  }
  if (buffer) onLine(buffer);
}
