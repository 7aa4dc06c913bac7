// In-process tests of the chat server's read sizes (lib/read_buffer.ts).

import assert from "node:assert/strict";
import {
  nextReadSize,
  READ_BUFFER_COMMANDS,
  READ_BUFFER_MIN,
  READ_BUFFER_RUNS,
} from "../lib/read_buffer.ts";

/** The sizes a sender's reads go through when every read fills its buffer. */
function growth(allInRuns: boolean): number[] {
  const sizes = [READ_BUFFER_MIN];
  for (let i = 0; i < 6; i++) {
    const size = sizes.at(-1)!;
    sizes.push(nextReadSize(size, size, allInRuns));
  }
  return sizes;
}

Deno.test("read buffer: a flood of plain lines grows it to 64 KiB, eight times at a step", () => {
  assert.deepEqual(growth(true), [128, 1024, 8192, 65536, 65536, 65536, 65536]);
  assert.equal(READ_BUFFER_RUNS, 64 * 1024);
});

Deno.test("read buffer: commands never get more than 4 KiB a read", () => {
  assert.deepEqual(growth(false), [128, 1024, 4096, 4096, 4096, 4096, 4096]);
  // A big buffer from a flood shrinks at once when its read held commands.
  assert.equal(nextReadSize(READ_BUFFER_RUNS, READ_BUFFER_RUNS, false), READ_BUFFER_COMMANDS);
  assert.equal(nextReadSize(READ_BUFFER_RUNS, 10_000, false), READ_BUFFER_COMMANDS);
});

Deno.test("read buffer: a small read brings it back to 128 bytes; a middling one keeps it", () => {
  assert.equal(nextReadSize(READ_BUFFER_RUNS, 40, true), READ_BUFFER_MIN);
  assert.equal(nextReadSize(READ_BUFFER_RUNS, READ_BUFFER_MIN, true), READ_BUFFER_MIN);
  assert.equal(nextReadSize(READ_BUFFER_RUNS, 10_000, true), READ_BUFFER_RUNS);
  // A full read of the smallest buffer grows it (128 bytes read of 128).
  assert.equal(nextReadSize(READ_BUFFER_MIN, READ_BUFFER_MIN, false), 1024);
});
