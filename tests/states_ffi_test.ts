// The demo's steps that need libc through FFI (SYN_RCVD with
// TCP_DEFER_ACCEPT, the SO_LINGER reset), where FFI is not available. On
// Linux states.ts always runs with -A (reading /proc needs it), so this is
// tested here, below the script: what openLibc() says without --allow-ffi or
// off Linux, and what a step does with that answer (skipped, saying why,
// nothing marked observed).

import assert from "node:assert/strict";
import { Lab } from "../lib/lab.ts";
import { ipv6Bytes, openLibc } from "../lib/libc.ts";
import { RESET_STEPS } from "../lib/reset_steps.ts";
import { SYN_RCVD_STEPS } from "../lib/rare_steps.ts";
import { runStep } from "../lib/step.ts";
import { formatStep } from "../lib/step_text.ts";
import { ROOT, run } from "./helpers.ts";

const NO_FFI = "libc is called through FFI, which needs --allow-ffi (included in -A)";

Deno.test("states ffi: openLibc says why it cannot be used: not Linux", () => {
  assert.equal(
    openLibc("darwin"),
    "Linux's libc is called through FFI, and on darwin the socket constants and errno differ",
  );
});

Deno.test("states ffi: openLibc without --allow-ffi says so, and never prompts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "states_ffi_" });
  try {
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `import { openLibc } from "${new URL("lib/libc.ts", `file://${ROOT}`)}";\n` +
        `const libc = openLibc("linux");\n` +
        `console.log(typeof libc === "string" ? libc : "loaded");\n`,
    );
    // No permission at all: a prompt would hang (stdin is null) or fail the run.
    const result = await run(Deno.execPath(), ["run", probe]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${NO_FFI}\n`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("states ffi: without libc the FFI steps are skipped, saying why, nothing observed", async () => {
  const lab = new Lab("127.0.0.1", 0, NO_FFI);
  try {
    const linger = RESET_STEPS.find((step) => step.id === "linger")!;
    for (const row of [...SYN_RCVD_STEPS, linger]) {
      const step = await runStep(row, lab);
      assert.equal(step.skipped, `${row.needsLibc} needs libc: ${NO_FFI}`, row.id);
      assert.deepEqual(step.observed, { client: [], server: [] }, row.id);
      assert.equal(step.error, null);
      assert.match(step.note, /^Skipped, so nothing here is observed: .* needs --allow-ffi/);
      const text = formatStep(step, 12).join("\n");
      assert.match(text, /^ {6}server - +skipped {2}\(textbook: /m, row.id);
      assert.match(text, /--allow-ffi \(included in -A\)\./, row.id);
      assert.ok(step.timeline.every((r) =>
        r.kind !== "states" || !r.server ||
        r.server.seen === "not observed"
      ));
    }
    assert.match(SYN_RCVD_STEPS[0].needsLibc!, /TCP_DEFER_ACCEPT/);
  } finally {
    lab.closeAll();
  }
});

Deno.test("states ffi: ipv6Bytes reads the addresses a demo may listen on", () => {
  assert.deepEqual([...ipv6Bytes("::1")], [...Array(15).fill(0), 1]);
  assert.deepEqual(
    [...ipv6Bytes("fd00::2")],
    [0xfd, 0, ...Array(13).fill(0), 2],
  );
  assert.deepEqual([...ipv6Bytes("::")], Array(16).fill(0));
  assert.throws(() => ipv6Bytes("1::2::3"), /not an IPv6 address/);
  assert.throws(() => ipv6Bytes("fe80::zz"), /not an IPv6 address/);
});
