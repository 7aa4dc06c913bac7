// Black-box tests of reuse_server.ts: serve clients in a row, leave a
// TIME_WAIT on the server's port, restart on that port at once; and the
// --demo that shows EADDRINUSE without SO_REUSEADDR.

import assert from "node:assert/strict";
import { readTcpSockets } from "../lib/proc_net_tcp.ts";
import {
  connectClient,
  delay,
  resetAfterSending,
  runScript,
  startServer,
  stopServer,
} from "./helpers.ts";

const linux = Deno.build.os === "linux";

/** One exchange the way a polite client does it: send, read the reply, wait for EOF, close. */
async function exchange(port: number, text: string): Promise<string> {
  const client = await connectClient(port);
  try {
    await client.send(`${text}\n`);
    const reply = await client.lines.next();
    await client.lines.end(); // the server closes first
    return reply;
  } finally {
    await client.close();
  }
}

/** Waits (bounded) until /proc shows a TIME_WAIT whose local port is `port`: the server's side. */
async function serverTimeWait(port: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    const sockets = await readTcpSockets();
    if (sockets.some((s) => s.state === "TIME_WAIT" && s.local.port === port)) return true;
    await delay(10);
  }
  return false;
}

Deno.test("reuse_server: serves two clients in a row, then restarts at once on the same port", async () => {
  const server = await startServer("reuse_server.ts");
  const { port } = server;
  for (const word of ["first", "second"]) {
    assert.equal(await exchange(port, word), "thank you!");
    assert.match(await server.stdout.next(), /^127\.0\.0\.1:\d+ connected$/);
    assert.equal(await server.stdout.next(), `received: ${word}`);
    const closed = await server.stdout.next();
    if (linux) {
      assert.match(
        closed,
        /^closed 127\.0\.0\.1:\d+ first \(kernel: \w+\): this side ends in TIME_WAIT$/,
      );
    }
  }
  const stopped = await stopServer(server);
  assert.equal(stopped.code, 0, server.stderr.text);
  assert.equal(server.stderr.text, "stopped");

  if (linux) {
    // The note's problem is really there: the server closed first, its port is in TIME_WAIT.
    assert.ok(await serverTimeWait(port), `no TIME_WAIT on port ${port}`);
  }
  const again = await startServer("reuse_server.ts", ["--port", String(port)]);
  assert.equal(again.port, port); // bound over the TIME_WAIT without error
  assert.equal(await exchange(port, "third"), "thank you!");
  await again.stdout.waitFor("received: third");
  assert.equal((await stopServer(again)).code, 0);
});

Deno.test({
  name: "reuse_server: when the client closes first, the server says the TIME_WAIT is the client's",
  ignore: !linux,
  async fn() {
    const server = await startServer("reuse_server.ts");
    const client = await connectClient(server.port);
    const clientPort = client.conn.localAddr.port;
    await client.send("no newline");
    await client.conn.closeWrite(); // the client's FIN ends the message: it goes first
    assert.equal(await client.lines.next(), "thank you!");
    await client.lines.end();
    await client.close();
    await server.stdout.waitFor("received: no newline");
    assert.match(
      await server.stdout.next(),
      /^closed 127\.0\.0\.1:\d+, which had closed first \(kernel: (LAST_ACK|CLOSED)\): the TIME_WAIT is on its side$/,
    );
    const sockets = await readTcpSockets();
    assert.ok(sockets.some((s) => s.state === "TIME_WAIT" && s.local.port === clientPort));
    assert.equal((await stopServer(server)).code, 0);
  },
});

Deno.test("reuse_server: a client that sends nothing or resets ends only its own turn", async () => {
  const server = await startServer("reuse_server.ts", ["--reply", "谢谢"]);
  const silent = await connectClient(server.port);
  await server.stdout.waitFor("connected");
  await silent.close();
  assert.match(await server.stdout.next(), /closed the connection without sending anything$/);

  const reset = await resetAfterSending(server.port, "half a mes");
  assert.equal(reset.code, 0, reset.stderr);
  await server.stdout.waitFor("received: half a mes");

  assert.equal(await exchange(server.port, "still here?"), "谢谢");
  await server.stdout.waitFor("received: still here?");
  assert.equal((await stopServer(server)).code, 0);
  assert.doesNotMatch(server.stderr.text, /at |Error/);
});

Deno.test("reuse_server: Ctrl+C (SIGINT) while waiting stops it with exit 0", async () => {
  const server = await startServer("reuse_server.ts");
  server.kill("SIGINT");
  assert.equal((await server.exit()).code, 0);
  assert.equal(server.stderr.text, "stopped");
});

Deno.test("reuse_server: SO_REUSEADDR does not share a port with a live listener", async () => {
  const first = await startServer("reuse_server.ts");
  const second = await runScript("reuse_server.ts", ["--port", String(first.port)]);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /^error: cannot listen on 127\.0\.0\.1:\d+: address already in use/);
  assert.equal(second.stderr.trim().split("\n").length, 1);
  assert.equal((await stopServer(first)).code, 0);
});

Deno.test({
  name: "reuse_server: --demo shows EADDRINUSE without SO_REUSEADDR and success with it",
  ignore: !linux,
  async fn() {
    const result = await runScript("reuse_server.ts", ["--demo"]);
    assert.equal(result.code, 0, result.stderr);
    const out = result.stdout;
    const port = /^1\. A server on 127\.0\.0\.1:(\d+) /m.exec(out)?.[1];
    assert.ok(port, out);
    assert.match(
      out,
      new RegExp(`^\\s+127\\.0\\.0\\.1:${port}\\s+127\\.0\\.0\\.1:\\d+\\s+TIME_WAIT`, "m"),
    );
    assert.match(
      out,
      /^\s+\(a\) socket\(\), bind\(\) without SO_REUSEADDR:\s+bind\(\) failed: EADDRINUSE \(errno 98\) "Address already in use"$/m,
    );
    assert.match(
      out,
      /^\s+\(b\) socket\(\), setsockopt\(SO_REUSEADDR, 1\), bind\(\), listen\(\):\s+ok$/m,
    );
    assert.match(out, /^\s+\(c\) Deno\.listen\(\).*:\s+ok$/m);
  },
});

Deno.test("reuse_server: bad flags exit 2; --help explains SO_REUSEADDR", async () => {
  for (
    const args of [["--bogus"], ["--backlog", "0"], ["--port", "x"], ["--demo", "--host", "::1"]]
  ) {
    const result = await runScript("reuse_server.ts", args);
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, /^error: /, args.join(" "));
    assert.match(result.stderr, /usage: deno run -A reuse_server\.ts/);
    assert.equal(result.stdout, "");
  }
  const help = await runScript("reuse_server.ts", ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /SO_REUSEADDR/);
  assert.match(help.stdout, /--backlog N/);
});
