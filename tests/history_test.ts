// The history ring (lib/history.ts) on its own.

import assert from "node:assert/strict";
import { History } from "../lib/history.ts";

const line = (text: string) => new TextEncoder().encode(`${text}\n`);
const texts = (lines: Uint8Array[]) => lines.map((l) => new TextDecoder().decode(l).trimEnd());

Deno.test("history: the last N lines, oldest first, across many wraps", () => {
  const history = new History(3);
  assert.deepEqual(history.recent(), []);
  history.record(line("a"));
  history.record(line("b"));
  assert.deepEqual(texts(history.recent()), ["a", "b"]);
  for (let i = 0; i < 10; i++) history.record(line(`n${i}`));
  assert.deepEqual(texts(history.recent()), ["n7", "n8", "n9"]);
});

Deno.test("history: a limit of 0 keeps nothing", () => {
  const history = new History(0);
  history.record(line("a"));
  assert.deepEqual(history.recent(), []);
});
