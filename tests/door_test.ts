// In-process tests of the room password's gate (lib/password.ts) and flood
// control's bucket (lib/rate_limit.ts).

import assert from "node:assert/strict";
import { PASSWORD_PROMPT, PasswordGate } from "../lib/password.ts";
import { LineBucket } from "../lib/rate_limit.ts";
import { settle } from "./fake_conn.ts";

const line = (text: string) => new TextEncoder().encode(text);

Deno.test("password: /pass RIGHT admits; anything else is the prompt again", () => {
  const gate = new PasswordGate("s3cret 密码", () => {});
  assert.deepEqual(gate.check(line("/who")), {
    admitted: false,
    reply: PASSWORD_PROMPT,
    close: false,
  });
  assert.deepEqual(gate.check(line("hello")).admitted, false);
  assert.deepEqual(gate.check(line("/pass s3cret 密码")), { admitted: true });
});

Deno.test("password: a wrong one is answered every time; the third closes", () => {
  const gate = new PasswordGate("right", () => {});
  const wrong = (guess: string) => gate.check(line(`/pass ${guess}`));
  assert.deepEqual(wrong("nope"), { admitted: false, reply: "! wrong password", close: false });
  assert.deepEqual(wrong("RIGHT"), { admitted: false, reply: "! wrong password", close: false });
  assert.deepEqual(wrong(""), { admitted: false, reply: "! wrong password", close: true });
  gate.dispose();
});

Deno.test("password: no answer before the deadline closes the connection", async () => {
  let expired = false;
  const gate = new PasswordGate("right", () => expired = true, 50);
  await settle(20);
  assert.equal(expired, false);
  await settle(60);
  assert.equal(expired, true);
  gate.dispose();
});

Deno.test("flood control: bursts of 2N, then N a second; told once until refilled", () => {
  const bucket = new LineBucket(10, 0);
  for (let i = 0; i < 20; i++) assert.deepEqual(bucket.take(0), { waitMs: 0, warn: false });
  const first = bucket.take(0);
  assert.equal(first.warn, true, "over it: told");
  assert.equal(Math.round(first.waitMs), 100, "the 21st line waits a tenth of a second");
  const second = bucket.take(0);
  assert.equal(second.warn, false, "told once");
  assert.equal(Math.round(second.waitMs), 200);
  // Refilled halfway (1 s later) and over again: not told again yet.
  for (let i = 0; i < 8; i++) bucket.take(1000);
  assert.equal(bucket.take(1000).warn, false);
  assert.equal(bucket.take(1000).warn, false);
  // Refilled completely (2 s of nothing), then over again: told again.
  for (let i = 0; i < 20; i++) assert.equal(bucket.take(5000).warn, false);
  assert.equal(bucket.take(5000).warn, true);
});

Deno.test("password: blanks around the file's line are not part of it; a blank line is refused", async () => {
  const { readPasswordFile } = await import("../lib/password.ts");
  const { UsageError } = await import("../utils.ts");
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "  abc \t\nsecond\n");
    const secret = await readPasswordFile(file);
    assert.equal(secret, "abc");
    assert.deepEqual(new PasswordGate(secret, () => {}).check(line("/pass  abc ")), {
      admitted: true,
    });
    await Deno.writeTextFile(file, "   \n");
    await assert.rejects(() => readPasswordFile(file), UsageError);
  } finally {
    await Deno.remove(file);
  }
});
