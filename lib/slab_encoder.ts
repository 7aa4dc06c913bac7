/**
 * Outgoing chat lines, encoded into shared slabs: one allocation per 1 MiB
 * instead of one per line, and lines encoded one after the other lie side
 * by side, so a client's queue of them is usually one run of bytes that
 * {@linkcode joinLines} hands to a single `write()` without copying.
 *
 * A line is a view into a slab; a slab is never written to again where a
 * line lies, so views stay valid for as long as any queue holds them.
 *
 * @module
 */

const encoder = new TextEncoder();
const NEWLINE = 0x0a;
// Big slabs make long runs: a reader far behind in a flood of 1 KiB lines
// gets its queue in a few writes of views rather than many (64 KiB slabs: 2.0M
// lines relayed a second, 1 MiB: 2.4M). An idle room holds one slab.
const SLAB_BYTES = 1024 * 1024;
// A line bigger than this gets its own buffer, so one long line does not
// cut a run of short ones.
const OWN_BUFFER_OVER = 16 * 1024;
const NOTHING = new Uint8Array();

/** Encodes lines, each ending in `\n`, into shared slabs. */
export class SlabEncoder {
  #slab = new Uint8Array(SLAB_BYTES);
  #used = 0;

  /** `${line}\n` as UTF-8. */
  encodeLine(line: string): Uint8Array {
    const most = line.length * 3 + 1; // UTF-8 takes at most 3 bytes per UTF-16 unit
    if (most > OWN_BUFFER_OVER) return encoder.encode(`${line}\n`);
    const out = this.#reserve(most);
    return this.#finish(out, encoder.encodeInto(line, out).written);
  }

  /**
   * `${prefix}` then `bytes` then `\n`: a relayed line whose text needs no
   * decoding (printable ASCII), after the sender's name.
   */
  encodePrefixed(prefix: string, bytes: Uint8Array): Uint8Array {
    const out = this.#reserve(prefix.length * 3 + bytes.length + 1);
    const { written } = encoder.encodeInto(prefix, out);
    out.set(bytes, written);
    return this.#finish(out, written + bytes.length);
  }

  /** Room for `most` bytes: the rest of the slab, or a new slab, or their own. */
  #reserve(most: number): Uint8Array {
    if (most > OWN_BUFFER_OVER) return new Uint8Array(most);
    if (this.#used + most > SLAB_BYTES) {
      this.#slab = new Uint8Array(SLAB_BYTES); // the old one lives on in the views of it
      this.#used = 0;
    }
    return this.#slab.subarray(this.#used);
  }

  /** Ends the line reserved as `out` after `length` bytes with \n; keeps only that much. */
  #finish(out: Uint8Array, length: number): Uint8Array {
    out[length] = NEWLINE;
    if (out.buffer !== this.#slab.buffer) return out.subarray(0, length + 1);
    const start = this.#used;
    this.#used += length + 1;
    return this.#slab.subarray(start, this.#used);
  }
}

/**
 * Where the run of `lines` from `from` that lie side by side in one buffer
 * ends (after at least one line): a run one view can carry (see viewOf).
 */
export function adjacentRun(lines: Uint8Array[], from: number): number {
  const first = lines[from];
  let next = first.byteOffset + first.length;
  let end = from + 1;
  while (end < lines.length) {
    const piece = lines[end];
    if (piece.buffer !== first.buffer || piece.byteOffset !== next) break;
    next += piece.length;
    end++;
  }
  return end;
}

/** `lines[from, end)`, which lie side by side (see adjacentRun), as one view. */
export function viewOf(lines: Uint8Array[], from: number, end: number): Uint8Array {
  const first = lines[from];
  if (end - from === 1) return first;
  const last = lines[end - 1];
  return new Uint8Array(
    first.buffer,
    first.byteOffset,
    last.byteOffset + last.length - first.byteOffset,
  );
}

/**
 * The lines as one buffer: a view of them where they lie side by side in
 * one slab (lines encoded one after the other, the usual case), else a copy.
 */
export function joinLines(lines: Uint8Array[]): Uint8Array {
  let first: Uint8Array | undefined;
  let total = 0;
  let adjacent = true;
  for (const piece of lines) {
    if (piece.length === 0) continue;
    first ??= piece;
    adjacent &&= piece.buffer === first.buffer && piece.byteOffset === first.byteOffset + total;
    total += piece.length;
  }
  if (!first) return NOTHING;
  if (adjacent) return new Uint8Array(first.buffer, first.byteOffset, total);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const piece of lines) {
    joined.set(piece, offset);
    offset += piece.length;
  }
  return joined;
}
