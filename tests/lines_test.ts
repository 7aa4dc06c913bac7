// Unit tests of lib/lines.ts: line framing on bytes.

import assert from "node:assert/strict";
import { createLineSplitter, LINE_TOO_LONG, type LineEvent } from "../lib/lines.ts";

const encoder = new TextEncoder();

function splitLines(maxLine: number, chunks: (string | Uint8Array | null)[]): LineEvent[] {
  const split = createLineSplitter(maxLine);
  return chunks.flatMap((chunk) =>
    split(typeof chunk === "string" ? encoder.encode(chunk) : chunk)
  );
}

Deno.test("createLineSplitter: lines across chunks, \\r\\n, several lines in one chunk", () => {
  assert.deepEqual(splitLines(100, ["he", "llo\nwor", "ld\r\n", "a\nb\n\n", "rest"]), [
    "hello",
    "world",
    "a",
    "b",
    "",
  ]);
  assert.deepEqual(splitLines(100, []), []);
  assert.deepEqual(splitLines(100, [new Uint8Array()]), []);
});

Deno.test("createLineSplitter: fed one byte at a time, characters come out whole", () => {
  const bytes = encoder.encode("你好，世界 😀\r\n👨‍👩‍👧\n");
  const oneByOne = [...bytes].map((byte) => new Uint8Array([byte]));
  assert.deepEqual(splitLines(100, oneByOne), ["你好，世界 😀", "👨‍👩‍👧"]);
});

Deno.test("createLineSplitter: an overlong line is reported once, the next line is fine", () => {
  // maxLine 5: "12345" fits (with or without \r), "123456" does not.
  assert.deepEqual(splitLines(5, ["12345\n", "12345\r\n", "123456\n", "ok\n"]), [
    "12345",
    "12345",
    LINE_TOO_LONG,
    "ok",
  ]);
  // Overlong across many chunks: one event, its bytes dropped, then lines again.
  assert.deepEqual(splitLines(5, ["abc", "def", "ghi", "jkl\nafter\n"]), [LINE_TOO_LONG, "after"]);
  assert.deepEqual(splitLines(5, ["x".repeat(50), "y".repeat(50), "\n", "z\n"]), [
    LINE_TOO_LONG,
    "z",
  ]);
  assert.deepEqual(splitLines(3, ["abc\r", "d\n"]), [LINE_TOO_LONG]); // \r not before \n counts
});

Deno.test("createLineSplitter: null (EOF) yields the unfinished last line, once", () => {
  assert.deepEqual(splitLines(100, ["done\nhalf a li", "ne", null]), ["done", "half a line"]);
  assert.deepEqual(splitLines(100, ["done\n", null]), ["done"]); // nothing unfinished
  assert.deepEqual(splitLines(100, [null]), []);
  assert.deepEqual(splitLines(5, ["toolong", "still", null]), [LINE_TOO_LONG]); // dropped
  const split = createLineSplitter(100);
  assert.deepEqual(split(encoder.encode("tail")), []);
  assert.deepEqual(split(null), ["tail"]);
  assert.deepEqual(split(null), []); // already handed out
  assert.deepEqual(split(encoder.encode("again\n")), ["again"]); // usable afterwards
  // The limit and the \r rule hold for the unfinished line too.
  assert.deepEqual(splitLines(3, ["abcd", null]), [LINE_TOO_LONG]);
  assert.deepEqual(splitLines(3, ["abc\r", null]), ["abc"]);
});

Deno.test("createLineSplitter: a U+FEFF at the start of a line is kept", () => {
  assert.deepEqual(splitLines(100, ["\uFEFFhi\n", "\uFEFF"]), ["\uFEFFhi"]);
  assert.deepEqual(splitLines(100, ["\uFEFF", null]), ["\uFEFF"]);
});
