// Black-box tests of states.ts: runs (--json, the table, --watch, --demo)
// against sockets the test opens itself. The /proc/net/tcp parser is tested
// in proc_net_tcp_test.ts.

import assert from "node:assert/strict";
import type { DemoStep } from "../lib/timeline.ts";
import { freePort, runScript, spawnScript } from "./helpers.ts";

const linux = Deno.build.os === "linux";

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
      const sockets = JSON.parse(result.stdout) as {
        local: { hostname: string; port: number };
        remote: { hostname: string; port: number };
        state: string;
      }[];
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
      assert.match(lines[0], /^LOCAL\s+REMOTE\s+STATE\s+MEANING$/);
      // Other tests' connections may have used this number as their
      // ephemeral port and linger in TIME_WAIT: ours is the LISTEN line.
      const listen = new RegExp(
        `^127\\.0\\.0\\.1:${port}\\s+0\\.0\\.0\\.0:\\*\\s+LISTEN\\s+服务器端`,
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
  name: "states: --demo --json observes each state on the right end, fakes none",
  ignore: !linux,
  async fn() {
    const result = await runScript("states.ts", ["--demo", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const demo = JSON.parse(result.stdout) as {
      steps: DemoStep[];
      observed: string[];
      notObserved: string[];
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
    // What loopback is too fast for is labelled, never faked.
    assert.deepEqual(step("syn-rcvd").observed, { client: [], server: [] });
    assert.ok(demo.notObserved.includes("SYN_RCVD"));
    for (const s of demo.steps) {
      assert.ok(s.title && s.note && s.expected.client.length && s.expected.server.length, s.id);
    }
  },
});

Deno.test({
  name: "states: --demo prints each step's segments and both ends' states",
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
    assert.match(out, /^\s+client 127\.0\.0\.1:\d+\s+TIME_WAIT$/m);
    assert.match(out, /^\s+server 127\.0\.0\.1:\d+\s+TIME_WAIT$/m);
    assert.match(out, /^\s+server -\s+not observed\s+\(textbook: SYN_RCVD\)$/m);
    assert.match(out, /^Not observed: SYN_RCVD, CLOSING/m);
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
