// In-process tests of join and leave batching (lib/presence.ts).

import assert from "node:assert/strict";
import { Presence, type PresenceBatch } from "../lib/presence.ts";
import { SlabEncoder } from "../lib/slab_encoder.ts";
import { settle } from "./fake_conn.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function presenceFor(roomSize: number) {
  const delivered: { line: string; at: number }[] = [];
  const batches: PresenceBatch[] = [];
  const presence = new Presence({
    roomSize: () => roomSize,
    encoder: new SlabEncoder(),
    deliver: (line, at) => delivered.push({ line, at }),
    deliverBatch: (batch) => batches.push(batch),
  });
  return { presence, delivered, batches };
}

Deno.test("presence: a small room hears each join and leave at once", () => {
  const { presence, delivered, batches } = presenceFor(10);
  presence.announce("* ann joined", 7, true);
  presence.announce("* bob left", 9, false);
  assert.deepEqual(delivered, [{ line: "* ann joined", at: 7 }, { line: "* bob left", at: 9 }]);
  assert.equal(batches.length, 0);
});

Deno.test("presence: a big room gets one batch, in the order things happened", async () => {
  const { presence, delivered, batches } = presenceFor(500);
  presence.announce("* bob joined", 2, true); // bob arrived second, but spoke first
  presence.announce("* ann joined", 1, true); // ann was announced when her wait ran out
  presence.announce("* cy left", 3, false);
  assert.equal(delivered.length + batches.length, 0, "gathered, not sent");
  presence.seal();
  presence.seal(); // nothing more to send
  assert.equal(batches.length, 1);
  const [batch] = batches;
  assert.equal(text(batch.bytes), "* ann joined\n* bob joined\n* cy left\n");
  assert.equal(text(batch.shareFrom(0)), "* ann joined\n* bob joined\n* cy left\n");
  assert.equal(text(batch.shareFrom(1)), "* bob joined\n* cy left\n", "ann: after her");
  assert.equal(text(batch.shareFrom(2)), "* cy left\n", "bob: his welcome counted ann");
  assert.equal(batch.shareFrom(3).length, 0);
  await settle();
});

Deno.test("presence: a batch goes out by itself after its wait", async () => {
  const { presence, batches } = presenceFor(300);
  presence.announce("* ann joined", 1, true);
  await settle(300);
  assert.equal(batches.length, 1);
});

Deno.test("presence: in a room of over 1,000 a batch names ten and counts the rest", () => {
  const { presence, batches } = presenceFor(2000);
  for (let i = 0; i < 15; i++) presence.announce(`* p${i} joined`, i + 1, true);
  for (let i = 0; i < 3; i++) presence.announce(`* q${i} left`, 100 + i, false);
  presence.seal();
  const lines = text(batches[0].bytes).split("\n").slice(0, -1);
  assert.equal(lines.length, 11);
  assert.equal(lines[10], "* 5 more joined, 3 more left (/who lists everyone)");
  assert.equal(batches[0].shareFrom(12).length, 0, "one arrived among the counted: none of it");
  assert.equal(text(batches[0].shareFrom(9)).split("\n")[0], "* p9 joined");
});
