// Black-box tests of states.ts: runs (--json, the table, --state, --watch,
// --demo) against sockets the test opens itself, and without -A. The
// /proc/net/tcp parser is tested in proc_net_tcp_test.ts, the steps that need
// FFI without it in states_ffi_test.ts.

import assert from "node:assert/strict";
import type { DemoStep } from "../lib/timeline.ts";
import { delay, freePort, ROOT, run, runScript, spawnScript } from "./helpers.ts";
import { openTerminal } from "./tmux.ts";

const linux = Deno.build.os === "linux";

/** A socket as `states.ts --json` prints it (the fields these tests read). */
interface JsonSocket {
  local: { hostname: string; port: number };
  remote: { hostname: string; port: number };
  state: string;
  timer: string | null;
  timerSeconds: number | null;
  retransmits: number;
  pid: number | null;
  process: string | null;
}

/**
 * A listener of this process with one connection whose client closed
 * first: the client's side waits in TIME_WAIT. The listener is still open.
 */
async function timeWaitOnClient(): Promise<{ listener: Deno.TcpListener; clientPort: number }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await listener.accept();
  client.close();
  await server.read(new Uint8Array(16)); // the client's FIN
  server.close(); // its FIN: the client's side goes TIME_WAIT
  return { listener, clientPort: client.localAddr.port };
}

/** `states.ts --json` with `args`: the sockets it printed. */
async function jsonSockets(args: string[]): Promise<JsonSocket[]> {
  const result = await runScript("states.ts", [...args, "--json"]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

Deno.test({
  name: "states: --json lists the sockets this test just opened",
  ignore: !linux,
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr;
    const client = await Deno.connect({ hostname: "127.0.0.1", port });
    const server = await listener.accept();
    try {
      const result = await runScript("states.ts", ["--port", String(port), "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const sockets = JSON.parse(result.stdout) as JsonSocket[];
      const find = (localPort: number, remotePort: number) =>
        sockets.find((s) => s.local.port === localPort && s.remote.port === remotePort)?.state;
      assert.equal(find(port, 0), "LISTEN");
      assert.equal(find(client.localAddr.port, port), "ESTABLISHED");
      assert.equal(find(port, client.localAddr.port), "ESTABLISHED");
      assert.ok(sockets.every((s) => s.local.port === port || s.remote.port === port));
    } finally {
      client.close();
      server.close();
      listener.close();
    }
  },
});

Deno.test({
  name: "states: the table shows each state with the note's meaning",
  ignore: !linux,
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr;
    try {
      const result = await runScript("states.ts", ["--port", String(port)]);
      assert.equal(result.code, 0, result.stderr);
      const lines = result.stdout.trimEnd().split("\n");
      assert.match(lines[0], /^LOCAL\s+REMOTE\s+STATE\s+TIMER\s+PROCESS\s+MEANING$/);
      // Other tests' connections may have used this number as their
      // ephemeral port and linger in TIME_WAIT: ours is the LISTEN line,
      // no timer, owned by this test's process.
      const listen = new RegExp(
        `^127\\.0\\.0\\.1:${port}\\s+0\\.0\\.0\\.0:\\*\\s+LISTEN\\s+-\\s+${Deno.pid}/deno\\s+服务器端`,
      );
      assert.ok(lines.slice(1).some((line) => listen.test(line)), result.stdout);
    } finally {
      listener.close();
    }
    const empty = await runScript("states.ts", ["--port", String(port)]);
    if (empty.stdout.startsWith("LOCAL")) { // only such leftovers, not our listener
      assert.ok(!empty.stdout.includes("LISTEN"), empty.stdout);
    } else {
      assert.equal(empty.stdout, `no TCP sockets with port ${port}\n`);
    }
  },
});

Deno.test({
  name: "states: --watch marks a new socket and its change, exits 0 on SIGTERM",
  ignore: !linux,
  async fn() {
    const port = freePort();
    const watch = spawnScript("states.ts", ["--watch", "--port", String(port), "--interval", "20"]);
    try {
      // The first snapshot: none, or other tests' TIME_WAIT leftovers on this number.
      await watch.stdout.waitFor(new RegExp(`TCP sockets with port ${port}`), 15_000);
      const listener = Deno.listen({ hostname: "127.0.0.1", port });
      await watch.stdout.waitFor(
        new RegExp(`^\\* 127\\.0\\.0\\.1:${port}\\s+0\\.0\\.0\\.0:\\*\\s+LISTEN`),
      );
      listener.close();
      await watch.stdout.waitFor(
        new RegExp(`^\\* 127\\.0\\.0\\.1:${port}\\s.*CLOSED \\(was LISTEN\\)`),
      );
    } finally {
      watch.kill("SIGTERM");
    }
    assert.equal((await watch.exit()).code, 0);
    assert.equal(watch.stderr.text, "");
  },
});

Deno.test({
  name: "states: --demo --json observes every state on the right end, fakes none",
  ignore: !linux,
  async fn() {
    const result = await runScript("states.ts", ["--demo", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const demo = JSON.parse(result.stdout) as {
      steps: DemoStep[];
      observed: string[];
      notObserved: string[];
      everyState: boolean;
    };
    const step = (id: string) => {
      const found = demo.steps.find((s) => s.id === id);
      assert.ok(found, `no step ${id}`);
      return found;
    };
    const saw = (id: string, end: "client" | "server", state: string) =>
      assert.ok(
        (step(id).observed[end] as string[]).includes(state),
        `${id}: ${end} showed ${step(id).observed[end].join(", ") || "nothing"}, not ${state}`,
      );

    saw("listen", "server", "LISTEN");
    saw("handshake", "client", "ESTABLISHED");
    saw("handshake", "server", "ESTABLISHED");
    assert.deepEqual(step("handshake").segments.map((s) => `${s.from}>${s.to} ${s.segment}`), [
      "client>server SYN",
      "server>client SYN+ACK",
      "client>server ACK",
    ]);
    // The client closes first: it waits for the server's FIN, then in TIME_WAIT.
    saw("client-close", "client", "FIN_WAIT_2");
    saw("client-close", "server", "CLOSE_WAIT");
    saw("server-close", "client", "TIME_WAIT");
    assert.equal(step("server-close").observed.server.at(-1), "CLOSED");
    // The mirror case: now the server's side is left in TIME_WAIT.
    saw("server-close-first", "server", "FIN_WAIT_2");
    saw("server-close-first", "client", "CLOSE_WAIT");
    saw("client-close-last", "server", "TIME_WAIT");
    assert.ok(!step("client-close-last").observed.client.includes("TIME_WAIT"));
    // The short-lived states, caught with full queues.
    saw("syn-sent", "client", "SYN_SENT");
    saw("fin-wait-1", "client", "FIN_WAIT_1");
    saw("last-ack", "server", "LAST_ACK");
    // SYN_RCVD, held by TCP_DEFER_ACCEPT: the server's half while the client's is ESTABLISHED.
    assert.deepEqual(step("syn-rcvd").observed, { client: ["ESTABLISHED"], server: ["SYN_RCVD"] });
    saw("syn-rcvd-data", "server", "ESTABLISHED");
    // CLOSING: both FINs held back, then one end reads the other's first.
    saw("closing-fill", "client", "FIN_WAIT_1");
    saw("closing-fill", "server", "FIN_WAIT_1");
    const closing = step("closing").observed;
    assert.ok([...closing.client, ...closing.server].includes("CLOSING"), JSON.stringify(closing));
    saw("closing-end", "client", "TIME_WAIT");
    saw("closing-end", "server", "TIME_WAIT");
    // TIME_WAIT's 2MSL timer, as the kernel had it.
    for (const [id, end] of [["server-close", "client"], ["closing-end", "server"]] as const) {
      const timer = step(id).timers[end];
      assert.equal(timer?.state, "TIME_WAIT", id);
      assert.equal(timer?.timer, "timewait", id);
      assert.ok(
        timer.timerSeconds! > 0 && timer.timerSeconds! <= 60,
        `${id}: ${timer.timerSeconds}`,
      );
    }
    // The resets: the error each end really got, and no TIME_WAIT anywhere.
    const errors = ["refused", "abort", "linger"].map((id) =>
      `${step(id).errorEnd} ${step(id).error}`
    );
    assert.deepEqual(errors, ["client ECONNREFUSED", "client ECONNRESET", "server ECONNRESET"]);
    for (const id of ["refused", "abort", "linger"]) {
      assert.deepEqual(step(id).observed, { client: ["CLOSED"], server: ["CLOSED"] }, id);
      assert.ok(step(id).segments.some((s) => s.segment === "RST"), id);
      assert.ok(step(id).note.includes("No TIME_WAIT on either end"), id);
    }
    // Every state of the list, seen: nothing left to explain away.
    assert.deepEqual(demo.notObserved, []);
    assert.equal(demo.everyState, true);
    for (const s of demo.steps) {
      assert.ok(s.title && s.note && s.expected.client.length && s.expected.server.length, s.id);
      assert.equal(s.skipped, null, s.id);
    }
  },
});

Deno.test({
  name: "states: --demo prints each step's segments, both ends' states and timers, the errors",
  ignore: !linux,
  async fn() {
    const result = await runScript("states.ts", ["--demo"]);
    assert.equal(result.code, 0, result.stderr);
    const out = result.stdout;
    assert.match(
      out,
      /^\s+client --- SYN -+> server\n\s+client <-- SYN\+ACK -+ server\n\s+client --- ACK -+> server$/m,
    );
    assert.match(out, /^\s+client --- FIN -+> server\n\s+client <-- ACK -+ server$/m);
    assert.match(out, /^\s+client 127\.0\.0\.1:\d+\s+(FIN_WAIT_1 -> )?FIN_WAIT_2/m);
    assert.match(out, /^\s+server 127\.0\.0\.1:\d+\s+CLOSE_WAIT$/m);
    assert.match(out, /^\s+client 127\.0\.0\.1:\d+\s+TIME_WAIT \(\d+\.\d s left\)$/m);
    assert.match(out, /^\s+server 127\.0\.0\.1:\d+\s+TIME_WAIT \(\d+\.\d s left\)$/m);
    assert.match(out, /^\s+server 127\.0\.0\.1:\d+\s+SYN_RCVD \(timer: retransmit /m);
    assert.match(out, /^\s+client 127\.0\.0\.1:\d+\s+CLOSING/m);
    assert.match(out, /^\s+client <-- RST -+ server$/m);
    assert.match(out, /^ {6}the client's call failed: ECONNREFUSED$/m);
    assert.match(out, /^ {6}the server's call failed: ECONNRESET$/m);
    assert.match(out, /^Seen in \/proc: LISTEN, SYN_SENT, SYN_RCVD, ESTABLISHED, FIN_WAIT_1, /m);
    assert.match(out, /^That is every state of the notes' list/m);
    assert.doesNotMatch(out, /^Not observed|^Skipped/m);
    assert.ok(!out.includes("\x1b["), "NO_COLOR and a pipe: plain text");
  },
});

Deno.test({
  name: "states: --demo works over IPv6 loopback (/proc/net/tcp6)",
  ignore: !linux,
  async fn() {
    const result = await runScript("states.ts", ["--demo", "--json", "--host", "::1"]);
    assert.equal(result.code, 0, result.stderr);
    const { steps } = JSON.parse(result.stdout) as { steps: DemoStep[] };
    const handshake = steps.find((s) => s.id === "handshake")!;
    assert.match(handshake.addresses.server!, /^\[::1\]:\d+$/);
    assert.deepEqual(handshake.observed, { client: ["ESTABLISHED"], server: ["ESTABLISHED"] });
  },
});

Deno.test("states: bad flags exit 2 with usage on stderr", async () => {
  for (
    const args of [
      ["--bogus"],
      ["--port", "70000"],
      ["--port", "0"],
      ["--interval", "0"],
      ["--watch", "--json"],
      ["--demo", "--watch"],
      ["--demo", "--state", "listen"],
      ["--state", "waiting"],
      ["--state"],
    ]
  ) {
    const result = await runScript("states.ts", args);
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, /^error: /, args.join(" "));
    assert.match(result.stderr, /usage: deno run -A states\.ts/);
    assert.equal(result.stdout, "");
  }
});

Deno.test("states: --help explains the states and the flags", async () => {
  const result = await runScript("states.ts", ["--help"]);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /^usage: deno run -A states\.ts/);
  assert.match(result.stdout, /--watch/);
  assert.match(result.stdout, /--demo/);
});

Deno.test({
  name: "states: --json gives each socket its kernel timer and its owning process",
  ignore: !linux,
  async fn() {
    const { listener, clientPort } = await timeWaitOnClient();
    const { port } = listener.addr;
    try {
      const sockets = await jsonSockets(["--port", String(port)]);
      const listen = sockets.find((s) => s.state === "LISTEN" && s.local.port === port);
      // A listener has no timer; this test's process holds it.
      assert.deepEqual(
        [listen?.timer, listen?.timerSeconds, listen?.pid, listen?.process],
        [null, null, Deno.pid, "deno"],
      );
      const waiting = sockets.find((s) => s.local.port === clientPort && s.remote.port === port);
      assert.equal(waiting?.state, "TIME_WAIT");
      // TIME_WAIT: the 2MSL timer, counting down from 60 s; no process holds it any more.
      assert.equal(waiting.timer, "timewait");
      assert.ok(
        waiting.timerSeconds! > 0 && waiting.timerSeconds! <= 60,
        `${waiting.timerSeconds}`,
      );
      assert.deepEqual([waiting.pid, waiting.process], [null, null]);

      const table = await runScript("states.ts", ["--port", String(port), "--state", "TIME_WAIT"]);
      assert.match(
        table.stdout,
        new RegExp(
          `^127\\.0\\.0\\.1:${clientPort}\\s+127\\.0\\.0\\.1:${port}\\s+` +
            "TIME_WAIT\\s+timewait \\d+\\.\\d s\\s+-\\s+收到了对方的FIN",
          "m",
        ),
      );
    } finally {
      listener.close();
    }
  },
});

Deno.test({
  name: "states: --state keeps only the states named, spelt as the notes or as ss does",
  ignore: !linux,
  async fn() {
    const { listener } = await timeWaitOnClient();
    const { port } = listener.addr;
    try {
      const states = async (...names: string[]) =>
        (await jsonSockets(["--port", String(port), ...names.flatMap((n) => ["--state", n])]))
          .map((s) => s.state);
      const waiting = await states("time-wait");
      assert.ok(waiting.length >= 1 && waiting.every((s) => s === "TIME_WAIT"), waiting.join());
      assert.deepEqual(await states("Listen"), ["LISTEN"]);
      const both = await states("LISTEN", "time_wait");
      assert.ok(both.includes("LISTEN") && both.includes("TIME_WAIT"), both.join());
      assert.deepEqual(await states("syn-recv"), []); // the kernel's name for SYN_RCVD

      const none = await runScript("states.ts", ["--port", String(port), "--state", "closing"]);
      assert.equal(none.stdout, `no TCP sockets with port ${port} in CLOSING\n`);
      const bad = await runScript("states.ts", ["--state", "TIMEWAIT2"]);
      assert.equal(bad.code, 2);
      assert.match(
        bad.stderr,
        /^error: --state: no state 'TIMEWAIT2'; the states: CLOSED, LISTEN, SYN_SENT, SYN_RCVD, ESTABLISHED, FIN_WAIT_1, CLOSE_WAIT, FIN_WAIT_2, CLOSING, LAST_ACK, TIME_WAIT\n/,
      );
    } finally {
      listener.close();
    }
  },
});

Deno.test({
  name: "states: without -A, one error line saying to use -A, exit 1, no prompt",
  ignore: !linux,
  async fn() {
    const script = `${ROOT}states.ts`;
    for (const args of [[], ["--demo"], ["--watch"]]) {
      const result = await run(Deno.execPath(), ["run", "--allow-read", script, ...args]);
      assert.equal(result.code, 1, args.join(" "));
      assert.equal(result.stdout, "");
      assert.match(
        result.stderr,
        /^error: reading \/proc needs all permissions .*deno run -A states\.ts\n$/,
      );
    }
    // --help needs nothing.
    const help = await run(Deno.execPath(), ["run", script, "--help"]);
    assert.equal(help.code, 0);
    // On a terminal Deno would prompt for a permission instead: it must not.
    const terminal = await openTerminal(
      `${Deno.execPath()} run --allow-read ${script} --state bogus; echo "exit=$?"; sleep 60`,
      { columns: 160, rows: 10 },
    );
    try {
      const rows = await terminal.waitFor(
        "the exit status",
        (r) => r.some((l) => l.startsWith("exit=")),
      );
      const screen = rows.join("\n");
      assert.match(screen, /^error: reading \/proc needs all permissions/m);
      assert.match(screen, /^exit=1$/m);
      assert.doesNotMatch(screen, /requests|Allow\?/);
    } finally {
      await terminal.close();
    }
  },
});

Deno.test({
  name: "states: --watch on a terminal counts TIME_WAIT's 2MSL down",
  ignore: !linux,
  async fn() {
    const { listener, clientPort } = await timeWaitOnClient();
    listener.close();
    const terminal = await openTerminal(
      `${Deno.execPath()} run -A ${ROOT}states.ts --watch --port ${clientPort} --state time-wait ` +
        "--interval 100",
      { columns: 200, rows: 10 },
    );
    try {
      const left = async (below: number) => {
        let seconds = NaN;
        await terminal.waitFor(`a TIME_WAIT with under ${below} s left`, (rows) => {
          const match = rows.join("\n").match(/TIME_WAIT\s+timewait (\d+) s/);
          seconds = match ? Number(match[1]) : NaN;
          return seconds < below;
        }, 10_000);
        return seconds;
      };
      const first = await left(61);
      await delay(1000);
      assert.ok((await left(first)) < first, "the timer did not count down");
    } finally {
      await terminal.close();
    }
  },
});
