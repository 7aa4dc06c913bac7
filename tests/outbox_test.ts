// In-process tests of the chat's write path (lib/outbox.ts, lib/slab_encoder.ts):
// fake connections, so the writes themselves can be counted and held.

import assert from "node:assert/strict";
import { PacedOutboxes } from "../lib/outbox.ts";
import { joinLines, SlabEncoder } from "../lib/slab_encoder.ts";
import { FakeConn, settle } from "./fake_conn.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function group(maxQueue = 1 << 20, roomSize = 2) {
  return new PacedOutboxes({ maxQueue, roomSize: () => roomSize });
}

Deno.test("outbox: lines queued in one turn leave in one write, in order", async () => {
  const outboxes = group();
  const conn = new FakeConn();
  const outbox = outboxes.open(conn);
  for (const line of ["one", "two", "three"]) assert.equal(outbox.send(line), true);
  await settle();
  assert.equal(conn.writes.length, 1);
  assert.equal(text(conn.writes[0]), "one\ntwo\nthree\n");
  outbox.close();
});

Deno.test("outbox: a partial write is finished before anything else goes", async () => {
  const conn = new FakeConn();
  conn.maxWrite = 3;
  const outbox = group().open(conn);
  outbox.send("abcdefgh");
  outbox.flushNow();
  outbox.send("next");
  await settle(5);
  assert.deepEqual(conn.lines(), ["abcdefgh", "next"]);
  assert.ok(conn.writes.every((w) => w.length <= 3));
  outbox.close();
});

Deno.test("outbox: past twice --max-queue, taking nothing for 0.1 s, it overflows and closes", async () => {
  const conn = new FakeConn();
  conn.stuck = true;
  const outbox = group(100).open(conn);
  const line = (char: string, n: number) => new TextEncoder().encode(char.repeat(n));
  const start = performance.now();
  assert.equal(outbox.deliver(line("x", 150), start), true, "past --max-queue only: still kept");
  assert.equal(
    outbox.deliver(line("w", 60), start + 50),
    true,
    "past twice, but it just took some",
  );
  assert.ok(!conn.closed);
  assert.equal(
    outbox.deliver(line("y", 60), start + 150),
    false,
    "nothing taken for 0.15 s: dropped",
  );
  assert.ok(outbox.closed && conn.closed);
  assert.equal(outbox.send("after"), true, "a closed outbox ignores further lines");
  await settle();
});

Deno.test("outbox: past --max-queue with nothing taken for 1 s it overflows", () => {
  const conn = new FakeConn();
  conn.stuck = true;
  const outbox = group(100).open(conn);
  const line = new TextEncoder().encode("z".repeat(60) + "\n");
  const start = performance.now();
  assert.equal(outbox.deliver(line, start), true);
  assert.equal(outbox.deliver(line, start + 500), true, "past --max-queue, but not stalled yet");
  assert.equal(outbox.deliver(line, start + 1500), false, "nothing taken for 1.5 s: stalled");
  assert.ok(conn.closed);
});

Deno.test("outbox: readers wait while a reader that is reading is behind", async () => {
  const outboxes = group(100);
  const conn = new FakeConn();
  conn.stuck = true;
  const outbox = outboxes.open(conn);
  assert.equal(outboxes.caughtUp(), undefined, "nobody behind: nothing to wait for");
  outbox.send("w".repeat(150));
  const wait = outboxes.caughtUp();
  assert.ok(wait instanceof Promise, "behind and recently taking output: wait");
  let released = false;
  wait.then(() => released = true);
  await settle(20);
  assert.equal(released, false);
  conn.unstick();
  await settle(30);
  assert.equal(released, true, "caught up: the readers go on");
  outbox.close();
});

Deno.test("outbox: a leaver's queue drains before its connection closes", async () => {
  const conn = new FakeConn();
  const outbox = group().open(conn);
  outbox.send("last words");
  outbox.closeAfterDrain(2000);
  assert.equal(conn.closed, false);
  await settle();
  assert.equal(conn.closed, true);
  assert.deepEqual(conn.lines(), ["last words"]);
});

Deno.test("outbox: a failed write forgets the queue; a leaver whose write failed is closed", async () => {
  const conn = new FakeConn();
  conn.stuck = true;
  const outbox = group().open(conn);
  outbox.send("in flight");
  outbox.flushNow();
  outbox.send("queued behind it");
  outbox.closeAfterDrain(60_000); // the grace timer must not be what closes it
  conn.unstickWithError();
  await settle();
  assert.equal(conn.writes.length, 0, "nothing written after the failure");
  assert.equal(outbox.closed, true);
});

Deno.test("outbox: receivers of the same lines in a round share one joined buffer", async () => {
  const outboxes = group();
  const conns = [new FakeConn(), new FakeConn(), new FakeConn()];
  const boxes = conns.map((conn) => outboxes.open(conn));
  const lines = ["a", "b"].map((line) => outboxes.encoder.encodeLine(line));
  for (const box of boxes) for (const line of lines) box.deliver(line);
  await settle();
  const buffers = new Set(conns.map((conn) => conn.writes[0].buffer));
  assert.equal(conns[0].lines().join(","), "a,b");
  assert.equal(buffers.size, 1, "written from the same bytes, no copy per receiver");
  for (const box of boxes) box.close();
});

Deno.test("slab encoder: lines lie side by side and join without a copy", () => {
  const encoder = new SlabEncoder();
  const first = encoder.encodeLine("你好");
  const second = encoder.encodePrefixed("<bob> ", new TextEncoder().encode("hi"));
  assert.equal(text(first), "你好\n");
  assert.equal(text(second), "<bob> hi\n");
  const joined = joinLines([first, second]);
  assert.equal(joined.buffer, first.buffer, "a view of the slab");
  assert.equal(text(joined), "你好\n<bob> hi\n");
  const long = encoder.encodeLine("l".repeat(20_000));
  assert.notEqual(long.buffer, first.buffer, "a long line gets its own buffer");
  assert.equal(text(joinLines([first, long])), `你好\n${"l".repeat(20_000)}\n`);
});

Deno.test("outbox: a big queue goes out run by run, as views of its slabs, whole and in order", async () => {
  const outboxes = group(8 << 20);
  const conn = new FakeConn();
  const outbox = outboxes.open(conn);
  const elsewhere = new SlabEncoder(); // lines that do not lie beside the room's
  const expected: string[] = [];
  for (let i = 0; i < 300; i++) {
    const line = `${i}:${"p".repeat(1000)}`;
    expected.push(line);
    outbox.deliver(i % 100 === 99 ? elsewhere.encodeLine(line) : outboxes.encoder.encodeLine(line));
  }
  await settle(5);
  assert.deepEqual(conn.lines(), expected);
  assert.ok(conn.writes.length > 1, "more than one write: no copy of the whole queue");
  const copies = conn.writes.filter((w) => w.buffer.byteLength === w.length);
  assert.ok(copies.every((w) => w.length <= 64 * 1024), "a copy carries at most 64 KiB");
  assert.ok(conn.writes.some((w) => w.length > 64 * 1024), "long runs go out as views");
  outbox.close();
});
