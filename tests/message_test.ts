// Unit tests of lib/message.ts: one message the way the note's recv() meant
// it, over a real loopback connection pair, and the UTF-8 boundary it cuts at.

import assert from "node:assert/strict";
import { type Message, readMessage, utf8Boundary } from "../lib/message.ts";
import { delay, send, withPair } from "./helpers.ts";

const encoder = new TextEncoder();

// ----------------------------------------------------------------- utf8 ---

Deno.test("utf8Boundary: every cut of a string mixing 1-4 byte characters", () => {
  const sample = "a©你😀b€𝄞z"; // 1, 2, 3, 4, 1, 3, 4, 1 bytes
  const bytes = encoder.encode(sample);
  const boundaries = new Set([0]);
  let offset = 0;
  for (const char of sample) boundaries.add(offset += encoder.encode(char).length);
  assert.equal(offset, bytes.length);
  const strict = new TextDecoder("utf-8", { fatal: true });
  for (let cut = 0; cut <= bytes.length; cut++) {
    const prefix = bytes.subarray(0, cut);
    const expected = Math.max(...[...boundaries].filter((b) => b <= cut));
    const got = utf8Boundary(prefix);
    assert.equal(got, expected, `cut at ${cut}`);
    strict.decode(prefix.subarray(0, got)); // throws on a broken character
  }
});

Deno.test("utf8Boundary: empty input and a buffer of only continuation bytes", () => {
  assert.equal(utf8Boundary(new Uint8Array()), 0);
  // Not UTF-8 at all: nothing to keep whole, so nothing is cut.
  assert.equal(utf8Boundary(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80])), 5);
});

// --------------------------------------------------------------- framing ---

/** A message without its per-read sizes, which depend on segment timing. */
function withoutReads(message: Message | null) {
  if (!message) return message;
  const { reads, ...rest } = message;
  assert.ok(reads.length >= 1 && reads.every((n) => n > 0));
  return rest;
}

Deno.test("readMessage: ends at a newline, not in the text but counted in the bytes", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, "hello\nafter");
    assert.deepEqual(withoutReads(await readMessage(reader, 1024)), {
      text: "hello",
      byteLength: 6,
      lineEnding: "\n",
      end: "newline",
    });
  });
});

Deno.test("readMessage: \\r\\n is stripped like \\n", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, "hi\r\n");
    assert.deepEqual(withoutReads(await readMessage(reader, 1024)), {
      text: "hi",
      byteLength: 4,
      lineEnding: "\r\n",
      end: "newline",
    });
  });
});

Deno.test("readMessage: ends at the peer's EOF (half-close) without a newline", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, "no newline");
    await writer.closeWrite();
    assert.deepEqual(withoutReads(await readMessage(reader, 1024)), {
      text: "no newline",
      byteLength: 10,
      lineEnding: "",
      end: "eof",
    });
  });
});

Deno.test("readMessage: ends at maxBytes, cut at a character boundary", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, "ab你好cd\n"); // a b 你(3) 好(3): 7 bytes end inside 好
    assert.deepEqual(withoutReads(await readMessage(reader, 7)), {
      text: "ab你",
      byteLength: 7,
      lineEnding: "",
      end: "size",
    });
  });
  await withPair(async (writer, reader) => {
    await send(writer, "abcdefgh");
    assert.deepEqual(withoutReads(await readMessage(reader, 4)), {
      text: "abcd",
      byteLength: 4,
      lineEnding: "",
      end: "size",
    });
  });
});

Deno.test("readMessage: null when the peer closes without sending", async () => {
  await withPair(async (writer, reader) => {
    writer.close();
    assert.equal(await readMessage(reader, 1024), null);
  });
  await withPair(async (writer, reader) => {
    await writer.closeWrite();
    assert.equal(await readMessage(reader, 1024), null);
  });
});

Deno.test("readMessage: an empty line is a message, not null", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, "\n");
    assert.deepEqual(withoutReads(await readMessage(reader, 1024)), {
      text: "",
      byteLength: 1,
      lineEnding: "\n",
      end: "newline",
    });
  });
});

Deno.test("readMessage: a character split across two writes comes out whole", async () => {
  await withPair(async (writer, reader) => {
    writer.setNoDelay(true);
    const bytes = encoder.encode("你好，世界\n");
    const reading = readMessage(reader, 1024);
    await send(writer, bytes.subarray(0, 4)); // inside 好
    await delay(150); // the reader sees the first part on its own
    await send(writer, bytes.subarray(4));
    const message = await reading;
    assert.deepEqual(withoutReads(message), {
      text: "你好，世界",
      byteLength: 16,
      lineEnding: "\n",
      end: "newline",
    });
    assert.deepEqual(message?.reads, [4, 12], "two reads: what one recv() would have split");
  });
});

Deno.test("readMessage: a message in several segments is one message", async () => {
  await withPair(async (writer, reader) => {
    writer.setNoDelay(true);
    const reading = readMessage(reader, 1024);
    for (const part of ["one ", "two ", "three\nfour"]) {
      await send(writer, part);
      await delay(30);
    }
    assert.equal((await reading)?.text, "one two three");
  });
});

Deno.test("readMessage: invalid UTF-8 becomes U+FFFD, valid text around it survives", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, new Uint8Array([0x41, 0xff, 0x42, 0xe4, 0xbd, 0x43, 0x0a]));
    const message = await readMessage(reader, 1024);
    assert.equal(message?.text, "A\uFFFDB\uFFFDC");
    assert.equal(message?.byteLength, 7, "what crossed the wire, the newline too");
  });
});

/** Feeds `chunks` (text or bytes) to a fresh splitter; all events in order. */
