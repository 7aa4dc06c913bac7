// Every script, misused as a newcomer would: each bad flag gets the
// project's own one-line message, exit status 2, and the whole synopsis
// (every form of the command), never parseArgs' own wording.

import assert from "node:assert/strict";
import { SCRIPTS } from "../tools/compile.ts";
import { ROOT, run } from "./helpers.ts";

function script(name: string, args: string[]) {
  return run(Deno.execPath(), ["run", "-A", `${ROOT}${name}`, ...args], { timeoutMs: 30_000 });
}

Deno.test("usage: a bad flag shows the whole synopsis, every form of the command", async () => {
  await Promise.all(SCRIPTS.map(async (name) => {
    const [help, bad] = await Promise.all([script(name, ["--help"]), script(name, ["--bogus"])]);
    assert.equal(help.code, 0, `${name} --help`);
    const synopsis = help.stdout.slice(0, help.stdout.indexOf("\n\n"));
    assert.match(synopsis, /^usage: /);
    assert.equal(bad.code, 2, `${name} --bogus: ${bad.stderr}`);
    assert.equal(
      bad.stderr,
      `error: unknown option '--bogus'\n${synopsis}\nRun with --help for details.\n`,
      name,
    );
  }));
});

Deno.test("usage: the forms a short synopsis used to lose are shown", async () => {
  const [reuse, states, chat] = await Promise.all([
    script("reuse_server.ts", ["--bogus"]),
    script("states.ts", ["--demo", "--watch"]),
    script("chat_server.ts", ["--max-line", "0"]),
  ]);
  assert.match(reuse.stderr, /\[--explain\]/);
  assert.match(reuse.stderr, /reuse_server\.ts --demo/);
  assert.equal(states.code, 2);
  assert.match(states.stderr, /states\.ts --demo/);
  assert.match(chat.stderr, /^error: --max-line must be a whole number 1 or more, got '0'\n/);
  assert.match(chat.stderr, /--redis URL \[--room NAME\]/);
});

Deno.test("usage: values that look like flags, and missing values, get our own messages", async () => {
  const cases: [string, string[], string][] = [
    ["server.ts", ["--size", "-1"], "error: --size must be a whole number 1 or more, got '-1'"],
    ["server.ts", ["-p"], "error: -p/--port needs a value"],
    ["server.ts", ["--explain=yes"], "error: --explain takes no value"],
    ["client.ts", ["--port", "-5"], "error: --port must be a whole number 1-65535, got '-5'"],
    [
      "chat_client.ts",
      ["--timeout", "-1"],
      "error: --timeout must be a whole number 0-86400, got '-1'",
    ],
    ["chat_server.ts", ["--max-queue"], "error: --max-queue needs a value"],
    ["states.ts", ["--interval", "-3"], "error: --interval must be a whole number"],
    ["reuse_server.ts", ["extra"], "error: unexpected argument 'extra'"],
  ];
  await Promise.all(cases.map(async ([name, args, message]) => {
    const result = await script(name, args);
    assert.equal(result.code, 2, `${name} ${args.join(" ")}: ${result.stderr}`);
    assert.ok(
      result.stderr.startsWith(message),
      `${name} ${args.join(" ")}: ${result.stderr.split("\n")[0]}`,
    );
    assert.doesNotMatch(result.stderr, /ambiguous|argument missing|<value>/);
  }));
});

Deno.test("usage: with --allow-net only, an error on a terminal is one plain line, no prompt", async () => {
  const { openTerminal } = await import("./tmux.ts");
  const terminal = await openTerminal(
    `'${Deno.execPath()}' run --allow-net '${ROOT}server.ts' --bogus; echo "exit=$?"; sleep 30`,
    { columns: 100, rows: 10 },
  );
  try {
    const screen = await terminal.waitFor("the exit status", (rows) => rows.includes("exit=2"));
    assert.equal(screen[0], "error: unknown option '--bogus'");
    assert.ok(
      !screen.some((row) => /Deno requests|Allow\?|env access/.test(row)),
      screen.join("\n"),
    );
  } finally {
    await terminal.close();
  }
});

Deno.test("usage: states.ts --state CLOSED is refused; reuse_server --demo without -A says why first", async () => {
  const closed = await script("states.ts", ["--state", "closed"]);
  assert.equal(closed.code, 2);
  assert.match(closed.stderr, /^error: --state CLOSED: a closed socket is no socket at all/);
  const demo = await run(Deno.execPath(), ["run", "-N", `${ROOT}reuse_server.ts`, "--demo"]);
  assert.equal(demo.code, 1);
  assert.equal(demo.stdout, "", "nothing is staged before the permission is known");
  assert.match(
    demo.stderr,
    /^error: --demo reads \/proc, which needs all permissions .*deno run -A/,
  );
});

Deno.test("usage: colours on a terminal with --allow-net only, from NO_COLOR and the terminal", async () => {
  const { runInTerminal } = await import("./helpers.ts");
  const program = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      program,
      `import { paint } from ${JSON.stringify(`${ROOT}utils.ts`)};\n` +
        `console.log(JSON.stringify(paint(["inverse", "cyan"], "hi")));\n`,
    );
    const tty = await runInTerminal(Deno.execPath(), ["run", "-N", program]);
    assert.equal(tty.code, 0, tty.output);
    assert.match(tty.output, /\\u001b\[7m\\u001b\[36mhi/, "coloured, and nothing asked");
    const piped = await run(Deno.execPath(), ["run", "-N", program]);
    assert.equal(piped.stdout, '"hi"\n', "never into a pipe");
  } finally {
    await Deno.remove(program);
  }
});
