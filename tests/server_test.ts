// Black-box tests of server.ts: spawn it on --port 0, talk real TCP.

import assert from "node:assert/strict";
import {
  connectClient,
  delay,
  resetAfterSending,
  runScript,
  send,
  spawnCommand,
  startServer,
  stopServer,
} from "./helpers.ts";

Deno.test("server: receives one message, replies, exits 0", async () => {
  const server = await startServer("server.ts");
  const client = await connectClient(server.port);
  assert.match(await server.stdout.next(), /^127\.0\.0\.1:\d+ connected$/);
  await client.send("hello\n");
  assert.equal(await client.lines.next(), "thank you!");
  await client.lines.end(); // the server closed the client
  assert.equal(await server.stdout.next(), "received: hello");
  await client.close();
  assert.equal((await server.exit()).code, 0);
});

Deno.test("server: --reply and \\r\\n line ending", async () => {
  const server = await startServer("server.ts", ["--reply", "谢谢"]);
  const client = await connectClient(server.port);
  await client.send("hi\r\n");
  assert.equal(await client.lines.next(), "谢谢");
  await server.stdout.waitFor("connected");
  assert.equal(await server.stdout.next(), "received: hi");
  await client.close();
  assert.equal((await server.exit()).code, 0);
});

Deno.test("server: Chinese split inside a character across two writes stays whole", async () => {
  const server = await startServer("server.ts");
  const client = await connectClient(server.port);
  const bytes = new TextEncoder().encode("你好，世界\n");
  await send(client.conn, bytes.subarray(0, 4)); // 你 is 3 bytes: cut inside 好
  await delay(150);
  await send(client.conn, bytes.subarray(4));
  assert.equal(await client.lines.next(), "thank you!");
  await server.stdout.waitFor("connected");
  assert.equal(await server.stdout.next(), "received: 你好，世界");
  await client.close();
  assert.equal((await server.exit()).code, 0);
});

Deno.test("server: a message in several segments is one message", async () => {
  const server = await startServer("server.ts");
  const client = await connectClient(server.port);
  client.conn.setNoDelay(true);
  for (const part of ["one ", "two ", "three\n"]) {
    await client.send(part);
    await delay(60);
  }
  assert.equal(await client.lines.next(), "thank you!");
  await server.stdout.waitFor("connected");
  assert.equal(await server.stdout.next(), "received: one two three");
  await client.close();
  assert.equal((await server.exit()).code, 0);
});

Deno.test("server: a message ends at the client's EOF (half-close)", async () => {
  const server = await startServer("server.ts");
  const client = await connectClient(server.port);
  await client.send("no newline");
  await client.conn.closeWrite();
  assert.equal(await client.lines.next(), "thank you!");
  await server.stdout.waitFor("connected");
  assert.equal(await server.stdout.next(), "received: no newline");
  await client.close();
  assert.equal((await server.exit()).code, 0);
});

Deno.test("server: --size cuts like recv(N), never inside a character", async () => {
  const server = await startServer("server.ts", ["--size", "7"]);
  const client = await connectClient(server.port);
  await client.send("ab你好cd\n"); // a b 你(3) 好(3): 7 bytes end inside 好
  assert.equal(await client.lines.next(), "thank you!");
  await server.stdout.waitFor("connected");
  assert.equal(await server.stdout.next(), "received: ab你");
  await client.close();
  assert.equal((await server.exit()).code, 0);
});

Deno.test("server: control characters and invalid UTF-8 are printed safely", async () => {
  const server = await startServer("server.ts");
  const client = await connectClient(server.port);
  await client.send(new Uint8Array([0x1b, 0x5b, 0x32, 0x4a, 0x41, 0xff, 0x07, 0x0a]));
  assert.equal(await client.lines.next(), "thank you!");
  await server.stdout.waitFor("connected");
  assert.equal(await server.stdout.next(), "received: \\x1b[2JA\uFFFD\\x07");
  await client.close();
  assert.equal((await server.exit()).code, 0);
});

Deno.test("server: a client that disconnects without sending is reported", async () => {
  const server = await startServer("server.ts");
  const client = await connectClient(server.port);
  await server.stdout.waitFor("connected");
  await client.close();
  assert.match(await server.stdout.next(), /closed the connection without sending anything$/);
  const status = await server.exit();
  assert.equal(status.code, 0);
  assert.doesNotMatch(server.stderr.text, /at |Error/);
});

Deno.test("server: a client that resets mid-message is reported, not a crash", async () => {
  const server = await startServer("server.ts");
  const reset = await resetAfterSending(server.port, "half a mes");
  assert.equal(reset.code, 0, reset.stderr);
  await server.stdout.waitFor("connected");
  assert.equal(await server.stdout.next(), "received: half a mes");
  // The message arrived; the reply could not be delivered: a failed exchange.
  assert.equal((await server.exit()).code, 1);
  assert.match(server.stderr.text, /^127\.0\.0\.1:\d+ went away before the reply could be sent$/);
});

Deno.test("server: works with a real nc client (the note's test)", async () => {
  const server = await startServer("server.ts");
  // -N: send FIN at the end of stdin, then print until the server closes.
  const nc = spawnCommand("nc", ["-N", "127.0.0.1", String(server.port)], { stdin: "piped" });
  await nc.write("hello from nc\n");
  await nc.closeStdin();
  assert.equal(await nc.stdout.next(), "thank you!");
  assert.match(await server.stdout.next(), /^127\.0\.0\.1:\d+ connected$/);
  assert.equal(await server.stdout.next(), "received: hello from nc");
  assert.equal((await server.exit()).code, 0);
  assert.equal((await nc.exit()).code, 0);
});

Deno.test("server: port in use exits 1 with an error: line", async () => {
  const first = await startServer("server.ts");
  const second = await runScript("server.ts", ["--port", String(first.port)]);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /^error: cannot listen on 127\.0\.0\.1:\d+: .*choose another --port/);
  assert.equal(second.stderr.trim().split("\n").length, 1);
  assert.equal(second.stdout, "");
  assert.equal((await stopServer(first)).code, 143);
});

Deno.test("server: bad flags exit 2 with usage on stderr", async () => {
  for (
    const args of [["--bogus"], ["--port", "70000"], ["--port", "abc"], ["--size", "0"], ["x"]]
  ) {
    const result = await runScript("server.ts", args);
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, /^error: /, args.join(" "));
    assert.match(result.stderr, /usage: deno run -A server\.ts/);
    assert.equal(result.stdout, "");
  }
});

Deno.test("server: --help prints usage and exits 0", async () => {
  const result = await runScript("server.ts", ["--help"]);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /^usage: deno run -A server\.ts/);
  assert.match(result.stdout, /--reply TEXT/);
});

Deno.test("server: SIGINT while waiting exits cleanly", async () => {
  const server = await startServer("server.ts");
  server.kill("SIGINT");
  const status = await server.exit();
  assert.equal(status.code, 130);
  assert.equal(server.stderr.text.trim(), "interrupted");
});

Deno.test("server: IPv6 host is printed in brackets", async () => {
  const server = await startServer("server.ts", ["--host", "::1"]);
  assert.equal(server.host, "::1");
  const client = await connectClient(server.port, "::1");
  await client.send("v6\n");
  assert.equal(await client.lines.next(), "thank you!");
  assert.match(await server.stdout.next(), /^\[::1\]:\d+ connected$/);
  await client.close();
  assert.equal((await server.exit()).code, 0);
});
