// Tests of chat_server.ts's operator console on a real terminal (tmux): the
// readiness line comes first, untouched; the operator's chat line is shown
// once, as the log shows everyone's; a command keeps its echo above its
// answer; a long paste is fast; Ctrl+C and /quit leave nothing behind (no
// prompt before the shell's next line, the terminal out of raw mode).

import assert from "node:assert/strict";
import { connectClient, ROOT } from "./helpers.ts";
import { openTerminal, type Terminal } from "./tmux.ts";

/**
 * chat_server.ts on a terminal, any free port. When it exits, the shell
 * prints its exit status and whether the terminal was left in raw mode.
 */
async function serverOnTerminal(): Promise<{ term: Terminal; port: number }> {
  const command = `'${Deno.execPath()}' run -A '${ROOT}chat_server.ts' --port 0; ` +
    `echo "exit=$?"; stty -a | grep -q -- -icanon && echo tty=raw || echo tty=cooked; sleep 60`;
  const term = await openTerminal(command, { columns: 100, rows: 20 });
  const rows = await term.waitFor("the readiness line", (r) => r[0].includes("listening"), 15_000);
  const port = Number(/:(\d+)$/.exec(rows[0])?.[1]);
  return { term, port };
}

/** The rows up to the last non-empty one. */
const shown = (rows: string[]) => rows.slice(0, rows.findLastIndex((row) => row !== "") + 1);

Deno.test("console: the readiness line is first; the operator's line is shown once; /quit leaves a clean terminal", async () => {
  const { term, port } = await serverOnTerminal();
  const client = await connectClient(port);
  try {
    const first = (await term.screen())[0];
    assert.equal(first, `listening on 127.0.0.1:${port}`); // no "> " before it
    await term.waitFor("the join", (rows) => rows.some((row) => row.includes("joined")));

    await term.type("hi all");
    await term.press("Enter");
    assert.equal(await client.lines.waitFor("hi all"), "<server> hi all");
    let rows = await term.waitFor("the log line", (r) => r.some((row) => row.includes("hi all")));
    // Once, as the log line; not also as "> hi all".
    assert.deepEqual(rows.filter((row) => row.includes("hi all")).length, 1, rows.join("\n"));
    assert.ok(rows.some((row) => /^\d\d:\d\d:\d\d <server> hi all$/.test(row)), rows.join("\n"));

    // A command keeps its echo, its answer below it.
    await term.type("/who");
    await term.press("Enter");
    rows = await term.waitFor("the answer", (r) => r.some((row) => row.includes("* online")));
    const echo = rows.indexOf("> /who");
    assert.ok(echo > 0, rows.join("\n"));
    assert.match(rows[echo + 1], /^\d\d:\d\d:\d\d \* online \(1\): guest\d+$/);
    assert.equal(shown(rows).at(-1), ">"); // the prompt, ready again (trailing space trimmed)

    await term.type("/quit");
    await term.press("Enter");
    assert.equal(await client.lines.waitFor("shutting down"), "* server shutting down");
    rows = await term.waitFor("the exit", (r) => r.some((row) => row.startsWith("tty=")));
    const exit = rows.findIndex((row) => row.includes("exit="));
    assert.equal(rows[exit], "exit=0", rows.join("\n")); // on a clean line
    assert.equal(rows[exit + 1], "tty=cooked");
    assert.ok(!rows.slice(0, exit).some((row) => row === ">"), rows.join("\n"));
  } finally {
    client.conn.close();
    await term.close();
  }
});

Deno.test("console: a 5,000-character paste shows at once; Ctrl+C leaves a clean terminal", async () => {
  const { term } = await serverOnTerminal();
  try {
    // node:readline took 8.7 s here.
    const paste = "y".repeat(4990) + "0123456789";
    const started = Date.now();
    await term.type(paste);
    const rows = await term.waitFor(
      "the paste's end",
      (r) => r.some((row) => row.endsWith("6789")),
    );
    const took = Date.now() - started;
    assert.ok(took < 1000, `the paste took ${took} ms to show`);
    assert.match(shown(rows).at(-1)!, /^> <y+0123456789$/);
    const history = await term.screen(true);
    assert.equal(history.filter((row) => row.includes("yyyyyyyyyy")).length, 1, "stale copies");

    await term.press("C-c");
    const after = await term.waitFor("the exit", (r) => r.some((row) => row.startsWith("tty=")));
    const exit = after.findIndex((row) => row.includes("exit="));
    assert.equal(after[exit], "exit=0", after.join("\n"));
    assert.equal(after[exit + 1], "tty=cooked");
    assert.ok(!after.some((row) => row.includes("yyyyyyyyyy")), "the input is erased at exit");
  } finally {
    await term.close();
  }
});
