// Property tests (seeded fuzzing) of the framing and text helpers in utils.ts:
// createLineSplitter (the chat server's line framer), readMessage and
// utf8Boundary (the UTF-8-safe decoder of server.ts and client.ts) and
// sanitizeText, plus chat_client's receiver (lib/client_lines.ts: framer + sanitiser).
//
// Every run draws a fresh seed and prints it on failure; reproduce with
//   FUZZ_SEED=1234 deno test -A tests/fuzz_test.ts
// and scale the work with FUZZ_SCALE=10 (ten times the streams, say).

import assert from "node:assert/strict";
import { sanitizeText } from "../lib/peer_text.ts";
import { closeQuietly } from "../lib/net.ts";
import {
  createReceiver,
  MAX_LINE_BYTES,
  type Received,
  TOO_LONG_NOTICE,
} from "../lib/client_lines.ts";
import { createLineSplitter, LINE_TOO_LONG, type LineEvent } from "../lib/lines.ts";
import { type Message, readMessage, utf8Boundary } from "../lib/message.ts";

const encoder = new TextEncoder();
// Not fatal (invalid bytes become U+FFFD) and keeping a U+FEFF: a line that
// starts with one is text like any other (utils.ts decodes the same way).
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

// ------------------------------------------------------------ the seed ---

const SEED = Deno.env.has("FUZZ_SEED")
  ? Number(Deno.env.get("FUZZ_SEED")) >>> 0
  : crypto.getRandomValues(new Uint32Array(1))[0];
const SCALE = Math.max(0.01, Number(Deno.env.get("FUZZ_SCALE") ?? "1") || 1);
const scaled = (n: number) => Math.max(1, Math.round(n * SCALE));

/** mulberry32: a tiny, fast, well-mixed 32-bit PRNG; the same seed, the same run. */
class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** A 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + (this.u32() % (max - min + 1));
  }
  /** true with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.u32() % items.length];
  }
  /** Roughly log-uniform in [1, max]: as many small values as large ones. */
  logInt(max: number): number {
    const bits = Math.log2(max);
    return Math.min(max, Math.max(1, Math.floor(2 ** (this.u32() / 0x1_0000_0000 * bits))));
  }
}

/**
 * Runs `body` with its own generator derived from the seed and the test's
 * name, so one test can be replayed alone; a failure names the seed.
 */
async function seeded(name: string, body: (rng: Rng) => void | Promise<void>): Promise<void> {
  let hash = SEED;
  for (const char of name) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  try {
    await body(new Rng(hash));
  } catch (err) {
    console.error(`\nfuzz failure in "${name}": reproduce with FUZZ_SEED=${SEED}`);
    throw err;
  }
}

// ------------------------------------------------------- byte streams ---

/** Grows a byte array by appending; cheaper than concatenating arrays. */
class Bytes {
  #buffer = new Uint8Array(1024);
  length = 0;
  push(...bytes: number[]): void {
    this.#room(bytes.length);
    for (const byte of bytes) this.#buffer[this.length++] = byte;
  }
  append(bytes: Uint8Array): void {
    this.#room(bytes.length);
    this.#buffer.set(bytes, this.length);
    this.length += bytes.length;
  }
  fill(byte: number, count: number): void {
    this.#room(count);
    this.#buffer.fill(byte, this.length, this.length + count);
    this.length += count;
  }
  bytes(): Uint8Array {
    return this.#buffer.slice(0, this.length);
  }
  #room(extra: number): void {
    if (this.length + extra <= this.#buffer.length) return;
    const bigger = new Uint8Array(Math.max(this.#buffer.length * 2, this.length + extra));
    bigger.set(this.#buffer.subarray(0, this.length));
    this.#buffer = bigger;
  }
}

const CJK = "你好世界聊天服务器客户端中文字符测试";
const SAMPLES_2 = ["é", "ß", "©", "Ж", "ש", "\u0085", "\u009b", "\u0080", "\u009f"]; // C1 too
const SAMPLES_3 = [
  ...CJK,
  "€",
  "\u202e", // RIGHT-TO-LEFT OVERRIDE
  "\u202a",
  "\u2066",
  "\u2069",
  "\u200d", // ZWJ
  "\ufeff",
];
const SAMPLES_4 = ["😀", "👩", "🎉", "𝄞", "𠀀", "\u{10ffff}"];
/** Bytes that are never valid UTF-8 where they stand. */
const INVALID = [
  [0x80],
  [0xbf],
  [0xc0, 0x80], // overlong NUL
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80], // overlong
  [0xed, 0xa0, 0x80], // a UTF-16 surrogate
  [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
  [0xf5],
  [0xf8, 0x88, 0x80, 0x80, 0x80], // old 5-byte form
  [0xfe],
  [0xff],
  [0xe4, 0xbd], // 你 without its last byte
  [0xf0, 0x9f, 0x98], // 😀 without its last byte
  [0xc3], // é without its last byte
];

interface StreamShape {
  /** Whether invalid UTF-8 may appear. */
  invalid: boolean;
  /** Lines around this length are made often, to probe the limit exactly. */
  maxLine: number;
}

/**
 * A random byte stream: ASCII runs, 2/3/4-byte characters, \n, \r\n, lone \r,
 * C0 and C1 controls, DEL, bidi overrides, invalid bytes and cut sequences,
 * and lines of exactly maxLine - 2 .. maxLine + 2 bytes (with or without \r).
 */
function randomStream(rng: Rng, length: number, shape: StreamShape): Uint8Array {
  const out = new Bytes();
  while (out.length < length) {
    const roll = rng.int(0, 99);
    if (roll < 25) {
      for (let i = rng.int(1, 24); i > 0; i--) out.push(rng.int(0x20, 0x7e));
    } else if (roll < 35) {
      out.push(0x0a);
    } else if (roll < 39) {
      out.push(0x0d, 0x0a);
    } else if (roll < 42) {
      out.push(0x0d);
    } else if (roll < 50) {
      out.append(encoder.encode(rng.pick(SAMPLES_2)));
    } else if (roll < 60) {
      out.append(encoder.encode(rng.pick(SAMPLES_3)));
    } else if (roll < 66) {
      out.append(encoder.encode(rng.pick(SAMPLES_4)));
    } else if (roll < 73) {
      out.push(rng.int(0x00, 0x1f)); // C0, \t \n \r included
    } else if (roll < 75) {
      out.push(0x7f, 0x1b, 0x5b); // DEL, ESC [
    } else if (roll < 82) {
      if (shape.invalid) out.append(new Uint8Array(rng.pick(INVALID)));
    } else if (roll < 86) {
      // A line right at the limit, in ASCII or in 3-byte characters.
      out.push(0x0a);
      const target = Math.max(0, shape.maxLine + rng.int(-2, 2));
      if (rng.chance(0.5)) out.fill(0x78, target);
      else {
        const start = out.length;
        while (out.length - start + 3 <= target) out.append(encoder.encode("好"));
        out.fill(0x79, target - (out.length - start));
      }
      if (rng.chance(0.3)) out.push(0x0d);
      out.push(0x0a);
    } else if (roll < 88) {
      // A long run without a newline: makes the framer drop bytes.
      out.fill(rng.int(0x41, 0x5a), rng.logInt(Math.max(2, shape.maxLine * 4)));
    } else if (roll < 90) {
      out.push(0x0a, 0x0a); // empty lines
    } else {
      for (let i = rng.int(1, 6); i > 0; i--) {
        out.append(encoder.encode(String.fromCodePoint(rng.int(0x20, 0xd7ff))));
      }
    }
  }
  return out.bytes();
}

/** Cuts `length` bytes into chunk sizes: all single bytes, small, or 1 B .. 64 KiB. */
function randomChunks(rng: Rng, length: number): number[] {
  const mode = rng.int(0, 9);
  const sizes: number[] = [];
  for (let left = length; left > 0;) {
    const size = mode === 0 ? 1 : mode < 3 ? rng.int(1, 8) : rng.logInt(64 * 1024);
    const take = Math.min(left, size);
    sizes.push(take);
    left -= take;
    if (rng.chance(0.01)) sizes.push(0); // an empty read is legal too
  }
  return sizes;
}

function* cut(stream: Uint8Array, sizes: number[]): Generator<Uint8Array> {
  let offset = 0;
  for (const size of sizes) {
    yield stream.subarray(offset, offset + size);
    offset += size;
  }
}

const MAX_LINES = [1, 2, 3, 4, 5, 7, 16, 64, 100, 1000, 4096, 65_536];

// ------------------------------------------------------------ oracles ---

/**
 * The reference split: the whole stream on 0x0A, one trailing 0x0D stripped,
 * a non-fatal decode; over maxLine bytes is LINE_TOO_LONG. The unterminated
 * fragment at the end is no line, except that one already past maxLine + 1
 * bytes (room for a \r) is reported at once, before its newline comes: the
 * framer must not wait for a newline that a hostile peer never sends. At the
 * end of the stream (`ended`: the framer was given null), a fragment within
 * the limit is the last line.
 */
function referenceLines(stream: Uint8Array, maxLine: number, ended = false): LineEvent[] {
  const lines: LineEvent[] = [];
  const finish = (line: Uint8Array) => {
    if (line.at(-1) === 0x0d) line = line.subarray(0, -1);
    lines.push(line.length > maxLine ? LINE_TOO_LONG : decoder.decode(line));
  };
  for (let start = 0;;) {
    const newline = stream.indexOf(0x0a, start);
    if (newline === -1) {
      const fragment = stream.subarray(start);
      if (fragment.length > maxLine + 1) lines.push(LINE_TOO_LONG);
      else if (ended && fragment.length > 0) finish(fragment);
      return lines;
    }
    finish(stream.subarray(start, newline));
    start = newline + 1;
  }
}

// Written out here, not imported: C0 but tab, DEL, C1, bidi embeddings,
// overrides and isolates.
// deno-lint-ignore no-control-regex
const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

/**
 * sanitizeText leaves no control character and changes nothing else: walking
 * input and output together, each unsafe character became one escape naming
 * it (\r, \n, \xHH or \uHHHH) and every other character is unchanged.
 */
function checkSanitized(raw: string): void {
  const safe = sanitizeText(raw);
  const leftover = UNSAFE.exec(safe);
  assert.equal(
    leftover,
    null,
    `sanitizeText let U+${leftover?.[0].codePointAt(0)?.toString(16)} through`,
  );
  const escape = /\\(r|n|x[0-9a-f]{2}|u[0-9a-f]{4})/y;
  let at = 0;
  for (const char of raw) {
    if (UNSAFE.test(char)) {
      escape.lastIndex = at;
      const match = escape.exec(safe);
      assert.ok(match, `no escape for U+${char.codePointAt(0)!.toString(16)} in ${show(safe)}`);
      const body = match[1];
      const named = body === "r"
        ? "\r"
        : body === "n"
        ? "\n"
        : String.fromCharCode(parseInt(body.slice(1), 16));
      assert.equal(named, char, `the escape ${match[0]} names another character`);
      at += match[0].length;
    } else {
      assert.equal(safe.slice(at, at + char.length), char, `sanitizeText changed ${show(char)}`);
      at += char.length;
    }
  }
  assert.equal(at, safe.length, "sanitizeText added text");
}

/** Output already sanitised: no control character left in it. */
function checkSanitizedOutput(safe: string): void {
  assert.equal(UNSAFE.exec(safe), null, `a control character in ${show(safe)}`);
}

function show(value: LineEvent | undefined): string {
  if (value === LINE_TOO_LONG) return "LINE_TOO_LONG";
  if (value === undefined) return "(nothing)";
  const json = JSON.stringify(value);
  return json.length > 120 ? `${json.slice(0, 117)}...` : json;
}

function assertSameEvents(got: LineEvent[], want: LineEvent[], context: string): void {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) {
      assert.fail(
        `${context}: event ${i} of ${want.length} differs: got ${show(got[i])}, want ${
          show(want[i])
        }`,
      );
    }
  }
}

/** UTF-8 lead byte lengths as utf8Boundary reads them (F8-FF are invalid: 4, like F0). */
function leadLength(byte: number): number {
  return byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
}
const isContinuation = (byte: number) => (byte & 0xc0) === 0x80;

/**
 * What utf8Boundary must give, as properties of decoding rather than a copy
 * of its algorithm:
 * - it drops at most 3 bytes, and only an unfinished sequence: a lead byte
 *   followed by fewer continuation bytes than it announces;
 * - the kept prefix ends on a character boundary: decoding it alone yields
 *   exactly the start of what a streaming decoder yields for all the bytes
 *   (no U+FFFD from a cut character);
 * - nothing real is dropped: the dropped tail decodes to U+FFFD only, and
 *   prefix + tail decode like the whole.
 */
function checkBoundary(bytes: Uint8Array, boundary: number, context: string): void {
  const len = bytes.length;
  assert.ok(
    boundary >= Math.max(0, len - 3) && boundary <= len,
    `${context}: ${boundary} of ${len}`,
  );
  if (boundary < len) {
    const tail = bytes.subarray(boundary);
    assert.ok(tail[0] >= 0xc0, `${context}: dropped tail starts with 0x${tail[0].toString(16)}`);
    assert.ok(
      tail.subarray(1).every(isContinuation),
      `${context}: dropped tail is not one sequence`,
    );
    assert.ok(tail.length < leadLength(tail[0]), `${context}: dropped a finished sequence`);
  } else if (len > 0) {
    // Nothing dropped: then the end is not an unfinished sequence.
    let back = 1;
    while (back <= Math.min(3, len) && isContinuation(bytes[len - back])) back++;
    if (back <= len && back <= 4) {
      const lead = bytes[len - back];
      assert.ok(
        !(lead >= 0xc0 && leadLength(lead) > back),
        `${context}: kept an unfinished sequence at the end`,
      );
    }
  }
  const prefix = decoder.decode(bytes.subarray(0, boundary));
  const streamed = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes, { stream: true });
  assert.ok(streamed.startsWith(prefix), `${context}: the cut split a character`);
  const tailText = decoder.decode(bytes.subarray(boundary));
  assert.match(tailText, /^\uFFFD*$/, `${context}: a real character was dropped`);
  assert.equal(prefix + tailText, decoder.decode(bytes), `${context}: the cut changed the text`);
}

// ------------------------------------------------- createLineSplitter ---

Deno.test("fuzz createLineSplitter: random streams in random chunks give the reference lines", async () => {
  await seeded("splitter", (rng) => {
    const streams = scaled(3000);
    let bytes = 0;
    let lines = 0;
    for (let i = 0; i < streams; i++) {
      const maxLine = rng.chance(0.8) ? rng.pick(MAX_LINES) : rng.int(1, 5000);
      const invalid = rng.chance(0.6);
      const length = rng.chance(0.04) ? rng.int(64 * 1024, 200 * 1024) : rng.logInt(8 * 1024);
      const stream = randomStream(rng, length, { invalid, maxLine });
      const sizes = randomChunks(rng, stream.length);
      const ended = rng.chance(0.5); // the end of the stream is signalled (null)
      const split = createLineSplitter(maxLine);
      const got: LineEvent[] = [];
      for (const chunk of cut(stream, sizes)) got.push(...split(chunk));
      if (ended) got.push(...split(null));
      const context = `stream ${i} (${stream.length} bytes, maxLine ${maxLine}, ` +
        `${sizes.length} chunks${ended ? ", then EOF" : ""})`;
      assertSameEvents(got, referenceLines(stream, maxLine, ended), context);
      for (const line of got) {
        if (line === LINE_TOO_LONG) continue;
        assert.ok(encoder.encode(line).length <= maxLine * 3, context); // U+FFFD is 3 bytes
        // Valid input: no character may ever come out broken.
        if (!invalid) assert.ok(!line.includes("\uFFFD"), `${context}: a broken character`);
        checkSanitized(line);
      }
      bytes += stream.length;
      lines += got.length;
    }
    console.log(
      `  ${streams} streams, ${(bytes / 1e6).toFixed(1)} MB, ${lines} lines, seed ${SEED}`,
    );
  });
});

Deno.test("fuzz createLineSplitter: valid UTF-8 cut at every possible offset never splits a character", async () => {
  await seeded("splitter-valid", (rng) => {
    for (let i = 0; i < scaled(120); i++) {
      const stream = randomStream(rng, rng.int(1, 300), { invalid: false, maxLine: 4096 });
      const strict = new TextDecoder("utf-8", { fatal: true });
      const reference = referenceLines(stream, 4096);
      // Two chunks, cut at each offset in turn, and byte by byte.
      for (let at = 0; at <= stream.length; at++) {
        const split = createLineSplitter(4096);
        const got = [...split(stream.subarray(0, at)), ...split(stream.subarray(at))];
        assertSameEvents(got, reference, `stream ${i} cut at ${at}`);
      }
      const split = createLineSplitter(4096);
      const got = [...stream].flatMap((byte) => split(new Uint8Array([byte])));
      assertSameEvents(got, reference, `stream ${i} byte by byte`);
      for (const line of got) {
        if (line !== LINE_TOO_LONG) strict.decode(encoder.encode(line)); // round-trips
      }
      // The stream was valid, so no line may hold U+FFFD.
      assert.ok(got.every((l) => l === LINE_TOO_LONG || !l.includes("\uFFFD")), `stream ${i}`);
    }
  });
});

Deno.test("fuzz createLineSplitter: a 256 MiB line is reported once and never buffered", () => {
  const maxLine = 4096;
  const split = createLineSplitter(maxLine);
  const chunk = new Uint8Array(64 * 1024).fill(0x78); // the same chunk, over and over
  const before = Deno.memoryUsage();
  const events: LineEvent[] = [];
  let peakRss = before.rss;
  for (let i = 0; i < 4096; i++) {
    events.push(...split(chunk));
    if (i % 256 === 0) peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
  }
  events.push(...split(encoder.encode("\r\nafter\n")));
  assert.deepEqual(events, [LINE_TOO_LONG, "after"]);
  // A framer that kept the line would hold 256 MiB; this one holds maxLine + 1.
  const growth = peakRss - before.rss;
  assert.ok(growth < 32 * 1024 * 1024, `RSS grew by ${(growth / 1048576).toFixed(1)} MiB`);
  // And the limit is exact: maxLine bytes (+ \r) pass, one more does not.
  const exact = createLineSplitter(maxLine);
  const ok = encoder.encode("y".repeat(maxLine) + "\r\n" + "z".repeat(maxLine + 1) + "\n");
  assert.deepEqual(exact(ok), ["y".repeat(maxLine), LINE_TOO_LONG]);
});

// ---------------------------------------------------------- utf8Boundary ---

Deno.test("fuzz utf8Boundary: every 0-2 byte input, representative 3-4 byte inputs", () => {
  const all = new Uint8Array(2);
  checkBoundary(new Uint8Array(), utf8Boundary(new Uint8Array()), "empty");
  for (let a = 0; a < 256; a++) {
    const one = new Uint8Array([a]);
    checkBoundary(one, utf8Boundary(one), `[${a}]`);
    for (let b = 0; b < 256; b++) {
      all[0] = a;
      all[1] = b;
      checkBoundary(all, utf8Boundary(all), `[${a}, ${b}]`);
    }
  }
  // One byte from each class: ASCII, continuation, valid and invalid leads.
  const classes = [
    0x00,
    0x41,
    0x7f,
    0x80,
    0xbf,
    0xc0,
    0xc2,
    0xdf,
    0xe0,
    0xe4,
    0xed,
    0xef,
    0xf0,
    0xf4,
    0xf5,
    0xff,
  ];
  const four = new Uint8Array(4);
  for (const a of classes) {
    for (const b of classes) {
      for (const c of classes) {
        for (const d of classes) {
          four.set([a, b, c, d]);
          checkBoundary(four.subarray(0, 3), utf8Boundary(four.subarray(0, 3)), `[${a},${b},${c}]`);
          checkBoundary(four, utf8Boundary(four), `[${a},${b},${c},${d}]`);
        }
      }
    }
  }
});

Deno.test("fuzz utf8Boundary: random text cut anywhere keeps the longest whole prefix", async () => {
  await seeded("boundary", (rng) => {
    const strict = new TextDecoder("utf-8", { fatal: true });
    for (let i = 0; i < scaled(50_000); i++) {
      const invalid = rng.chance(0.5);
      const stream = randomStream(rng, rng.logInt(64), { invalid, maxLine: 16 });
      const cutAt = rng.int(0, stream.length);
      const bytes = stream.subarray(0, cutAt);
      const boundary = utf8Boundary(bytes);
      checkBoundary(bytes, boundary, `case ${i}`);
      if (!invalid) {
        // Valid text: exactly the last character boundary at or before the cut.
        strict.decode(bytes.subarray(0, boundary));
        let expected = cutAt;
        while (expected < stream.length && isContinuation(stream[expected])) expected--;
        assert.equal(boundary, expected, `case ${i}`);
      }
    }
  });
});

// ----------------------------------------------------------- readMessage ---

/**
 * A Deno.Conn stand-in whose reads return the stream in exactly the chunks
 * given (never more than the buffer offered), then EOF or a reset. It also
 * counts how many bytes the reader took: readMessage must never take more
 * than maxBytes.
 */
class ScriptedConn {
  taken = 0;
  #chunks: Uint8Array[];
  constructor(stream: Uint8Array, sizes: number[], readonly ending: "eof" | "reset") {
    this.#chunks = [...cut(stream, sizes)].filter((c) => c.length > 0);
  }
  read(buffer: Uint8Array): Promise<number | null> {
    const chunk = this.#chunks[0];
    if (!chunk) {
      if (this.ending === "reset") return Promise.reject(new Deno.errors.ConnectionReset("reset"));
      return Promise.resolve(null);
    }
    const n = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    this.taken += n;
    return Promise.resolve(n);
  }
}

/**
 * The reference for one readMessage: the first newline within maxBytes ends
 * it (one \r before it stripped); else maxBytes bytes end it, cut back to a
 * character boundary; else EOF (or a reset) does; nothing at all is null.
 */
function checkMessage(
  got: Message | null,
  stream: Uint8Array,
  maxBytes: number,
  context: string,
): void {
  const window = stream.subarray(0, maxBytes);
  const newline = window.indexOf(0x0a);
  if (newline === -1 && stream.length === 0) return assert.equal(got, null, context);
  assert.ok(got, `${context}: null for a non-empty stream`);
  let body: Uint8Array;
  let wire: number; // what crossed the wire for it: its line ending too
  if (newline !== -1) {
    body = window.subarray(0, newline);
    if (body.at(-1) === 0x0d) body = body.subarray(0, -1);
    wire = newline + 1;
    assert.equal(got.end, "newline", context);
  } else if (stream.length < maxBytes) {
    body = stream;
    wire = stream.length;
    assert.equal(got.end, "eof", context);
  } else {
    assert.equal(got.end, "size", context);
    const kept = [0, 1, 2, 3].map((back) => window.length - back)
      .find((k) => k >= 0 && decoder.decode(window.subarray(0, k)) === got.text) ?? -1;
    checkBoundary(window, kept, `${context}: size cut`);
    body = window.subarray(0, kept);
    wire = maxBytes;
  }
  assert.equal(got.byteLength, wire, context);
  assert.equal(got.text, decoder.decode(body), context);
  assert.ok(got.byteLength <= maxBytes, context);
  checkSanitized(got.text);
}

Deno.test("fuzz readMessage: random streams in random reads give the reference message", async () => {
  await seeded("readMessage", async (rng) => {
    for (let i = 0; i < scaled(10_000); i++) {
      const maxBytes = rng.chance(0.5) ? rng.int(1, 16) : rng.logInt(8192);
      const stream = randomStream(rng, rng.logInt(3 * maxBytes), {
        invalid: rng.chance(0.6),
        maxLine: maxBytes,
      }).subarray(rng.chance(0.05) ? Infinity : 0); // sometimes nothing at all
      const sizes = randomChunks(rng, stream.length);
      const conn = new ScriptedConn(stream, sizes, rng.chance(0.2) ? "reset" : "eof");
      const got = await readMessage(conn as unknown as Deno.Conn, maxBytes);
      const context = `case ${i} (${stream.length} bytes, maxBytes ${maxBytes}, ${conn.ending})`;
      checkMessage(got, stream, maxBytes, context);
      assert.ok(conn.taken <= maxBytes, `${context}: read ${conn.taken} bytes`);
    }
  });
});

Deno.test("fuzz readMessage: over real loopback connections, randomly segmented", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await seeded("readMessage-tcp", async (rng) => {
      for (let i = 0; i < scaled(400); i++) {
        const maxBytes = rng.pick([1, 2, 3, 4, 7, 64, 1024, 4096, rng.int(1, 5000)]);
        const stream = randomStream(rng, rng.logInt(2 * maxBytes + 8), {
          invalid: rng.chance(0.5),
          maxLine: maxBytes,
        });
        const sizes = randomChunks(rng, stream.length);
        const pauses = sizes.map(() => rng.chance(0.15));
        const [writer, reader] = await Promise.all([
          Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
          listener.accept(),
        ]);
        writer.setNoDelay(true); // each write its own segment
        const writing = (async () => {
          try {
            let k = 0;
            for (const chunk of cut(stream, sizes)) {
              let rest = chunk;
              while (rest.length) rest = rest.subarray(await writer.write(rest));
              // A pause lets the segment go out alone; reads then see the cut.
              if (pauses[k++]) await new Promise((resolve) => setTimeout(resolve, 1));
            }
            await writer.closeWrite();
          } catch {
            // The reader had its message and closed: the rest is not needed.
          }
        })();
        try {
          const got = await readMessage(reader, maxBytes);
          checkMessage(
            got,
            stream,
            maxBytes,
            `case ${i} (${stream.length} bytes, maxBytes ${maxBytes})`,
          );
        } finally {
          closeQuietly(reader);
          await writing;
          closeQuietly(writer);
        }
      }
    });
  } finally {
    listener.close();
  }
});

// --------------------------------------------------------- U+FEFF kept ---

Deno.test("framing keeps a U+FEFF that starts a line (no BOM stripping per line)", async () => {
  // A TextDecoder left at ignoreBOM: false drops a U+FEFF at the start of
  // every decode() call: at the start of each line, or of each piece of a
  // long line cut in pieces. It is a character the peer sent.
  const split = createLineSplitter(64);
  assert.deepEqual(split(encoder.encode("\uFEFFa\n\uFEFF\uFEFFb\r\nc\uFEFF\n\uFEFFtail")), [
    "\uFEFFa",
    "\uFEFF\uFEFFb",
    "c\uFEFF",
  ]);
  assert.deepEqual(split(null), ["\uFEFFtail"]);
  const conn = new ScriptedConn(encoder.encode("\uFEFFhi\n"), [2, 3], "eof");
  assert.equal((await readMessage(conn as unknown as Deno.Conn, 100))?.text, "\uFEFFhi");
});

// ------------------------------------------------ chat_client's receiver ---

// chat_client's receiver: the shared framer, then sanitizeText on every line.
Deno.test({
  name: "fuzz chat_client createReceiver: the reference lines, sanitised; over 64 KiB a notice",
  fn: async () => {
    const maxLine = MAX_LINE_BYTES;
    await seeded("chat-client-receiver", (rng) => {
      for (let i = 0; i < scaled(400); i++) {
        const stream = randomStream(
          rng,
          rng.chance(0.05) ? rng.int(64_000, 200_000) : rng.logInt(16_384),
          {
            invalid: rng.chance(0.5),
            maxLine,
          },
        );
        const receive = createReceiver();
        const got: Received[] = [];
        for (const chunk of cut(stream, randomChunks(rng, stream.length))) {
          got.push(...receive(chunk));
        }
        got.push(...receive(null));
        const want = referenceLines(stream, maxLine, true).map((line) =>
          line === LINE_TOO_LONG ? { local: TOO_LONG_NOTICE } : { server: sanitizeText(line) }
        );
        const context = `stream ${i} (${stream.length} bytes)`;
        assert.equal(got.length, want.length, context);
        for (let j = 0; j < want.length; j++) {
          assert.deepEqual(got[j], want[j], `${context}: line ${j}`);
        }
        for (const line of got) if ("server" in line) checkSanitizedOutput(line.server);
      }
    });
  },
});
