// In-process tests of join and leave batching (lib/presence.ts).

import assert from "node:assert/strict";
import { Presence, type PresenceBatch } from "../lib/presence.ts";
import { SlabEncoder } from "../lib/slab_encoder.ts";
import { settle } from "./fake_conn.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function presenceFor(roomSize: number) {
  const broadcasts: { line: string; except?: string }[] = [];
  const batches: PresenceBatch<string>[] = [];
  const presence = new Presence<string>({
    roomSize: () => roomSize,
    encoder: new SlabEncoder(),
    broadcast: (line, except) => broadcasts.push({ line, except }),
    deliverBatch: (batch) => batches.push(batch),
  });
  return { presence, broadcasts, batches };
}

Deno.test("presence: a small room hears each join at once, the newcomer excepted", () => {
  const { presence, broadcasts, batches } = presenceFor(10);
  presence.announce("* ann joined", "ann");
  presence.announce("* bob left");
  assert.deepEqual(broadcasts, [
    { line: "* ann joined", except: "ann" },
    { line: "* bob left", except: undefined },
  ]);
  assert.equal(batches.length, 0);
});

Deno.test("presence: a big room gets one batch; a newcomer only what came after it", async () => {
  const { presence, broadcasts, batches } = presenceFor(500);
  presence.announce("* ann joined", "ann");
  presence.announce("* bob joined", "bob");
  presence.announce("* cy left");
  assert.equal(broadcasts.length + batches.length, 0, "gathered, not sent");
  presence.seal();
  presence.seal(); // nothing more to send
  assert.equal(batches.length, 1);
  const [batch] = batches;
  assert.equal(text(batch.bytes), "* ann joined\n* bob joined\n* cy left\n");
  assert.equal(text(batch.shareOf.get("ann")!), "* bob joined\n* cy left\n");
  assert.equal(text(batch.shareOf.get("bob")!), "* cy left\n");
  await settle();
});

Deno.test("presence: a batch goes out by itself after its wait", async () => {
  const { presence, batches } = presenceFor(300);
  presence.announce("* ann joined", "ann");
  await settle(300);
  assert.equal(batches.length, 1);
});

Deno.test("presence: in a room of over 1,000 a batch names ten and counts the rest", () => {
  const { presence, batches } = presenceFor(2000);
  for (let i = 0; i < 15; i++) presence.announce(`* p${i} joined`, `p${i}`);
  for (let i = 0; i < 3; i++) presence.announce(`* q${i} left`);
  presence.seal();
  const lines = text(batches[0].bytes).split("\n").slice(0, -1);
  assert.equal(lines.length, 11);
  assert.equal(lines[10], "* 5 more joined, 3 more left (/who lists everyone)");
  assert.equal(batches[0].shareOf.get("p12")!.length, 0, "a counted newcomer gets none of it");
});
