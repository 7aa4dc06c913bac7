// Black-box tests of client.ts: spawn it as a real process against server.ts,
// a real `nc -l` (the note's own test) and small servers written in the test
// that misbehave on purpose (split writes, no reply, control characters).

import assert from "node:assert/strict";
import {
  delay,
  freePort,
  runScript,
  type Script,
  send,
  spawnCommand,
  spawnScript,
  startServer,
  waitForListen,
} from "./helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A one-client server inside the test: accepts one connection on a port the
 * kernel picks, closes the listener and runs `handle` on the connection.
 * `finish()` returns what `handle` returned; if no client ever came, it
 * closes the listener after `timeoutMs`, which makes it reject.
 */
function oneShotServer<T>(handle: (conn: Deno.TcpConn) => Promise<T>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    closeQuietly(listener);
    try {
      return await handle(conn);
    } finally {
      conn.close();
    }
  })();
  return {
    port: listener.addr.port,
    async finish(timeoutMs = 5000): Promise<T> {
      const timer = setTimeout(() => closeQuietly(listener), timeoutMs);
      try {
        return await done;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

function closeQuietly(resource: { close(): void }) {
  try {
    resource.close();
  } catch {
    // Already closed.
  }
}

/** The client's line: bytes up to "\n" (excluded), or null at EOF before any byte. */
async function readLine(conn: Deno.Conn): Promise<string | null> {
  const bytes: number[] = [];
  const buffer = new Uint8Array(1024);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) return bytes.length ? decoder.decode(new Uint8Array(bytes)) : null;
    for (const byte of buffer.subarray(0, n)) {
      if (byte === 0x0a) return decoder.decode(new Uint8Array(bytes));
      bytes.push(byte);
    }
  }
}

/** Reads the client's line, then writes each part of the reply with a pause between. */
function replyInParts(parts: Uint8Array[], pauseMs: number) {
  return oneShotServer(async (conn) => {
    conn.setNoDelay(true); // each part its own segment
    const line = await readLine(conn);
    for (const [i, part] of parts.entries()) {
      if (i > 0) await delay(pauseMs);
      await send(conn, part);
    }
    return line;
  });
}

function runClient(port: number, args: string[], options: { stdin?: string } = {}) {
  // A client that hangs is killed well before runScript's default 20 s.
  return runScript("client.ts", ["--port", String(port), ...args], {
    ...options,
    timeoutMs: 10_000,
  });
}

Deno.test("client: sends --message to server.ts and prints its reply", async () => {
  const server = await startServer("server.ts");
  const client = await runClient(server.port, ["--message", "hello server"]);
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, "received: thank you!\n");
  assert.equal(client.stderr, "");
  assert.match(await server.stdout.next(), /^127\.0\.0\.1:\d+ connected$/);
  assert.equal(await server.stdout.next(), "received: hello server");
  assert.equal((await server.exit()).code, 0);
});

Deno.test("client: -m, Chinese text and server.ts --reply both ways", async () => {
  const server = await startServer("server.ts", ["--reply", "谢谢，收到了"]);
  const client = await runClient(server.port, ["-m", "你好，世界"]);
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, "received: 谢谢，收到了\n");
  await server.stdout.waitFor("connected");
  assert.equal(await server.stdout.next(), "received: 你好，世界");
  assert.equal((await server.exit()).code, 0);
});

Deno.test("client: without --message sends the first line of piped stdin, no prompt", async () => {
  const server = await startServer("server.ts");
  const client = await runClient(server.port, [], { stdin: "from stdin\nsecond line\n" });
  assert.equal(client.code, 0, client.stderr);
  // A pipe is not a terminal: no "Words: " prompt in the output.
  assert.equal(client.stdout, "received: thank you!\n");
  await server.stdout.waitFor("connected");
  assert.equal(await server.stdout.next(), "received: from stdin");
  assert.equal((await server.exit()).code, 0);
});

Deno.test("client: a last stdin line without a newline is still sent", async () => {
  const server = await startServer("server.ts");
  const client = await runClient(server.port, [], { stdin: "no newline at the end" });
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, "received: thank you!\n");
  await server.stdout.waitFor("connected");
  assert.equal(await server.stdout.next(), "received: no newline at the end");
  assert.equal((await server.exit()).code, 0);
});

Deno.test("client: works with a real nc -l server (the note's test)", async () => {
  const port = freePort();
  const nc = spawnCommand("nc", ["-l", "127.0.0.1", String(port)], { stdin: "piped" });
  let client: Script | undefined;
  let ok = false;
  try {
    await waitForListen(port); // reads /proc: connecting would use up nc's one connection
    client = spawnScript("client.ts", ["--port", String(port), "--message", "hi nc"]);
    assert.equal(await nc.stdout.next(), "hi nc"); // the client's line, newline-terminated
    await nc.write("reply typed into nc\n");
    assert.equal(await client.stdout.next(), "received: reply typed into nc");
    assert.equal((await client.exit()).code, 0, client.stderr.text);
    assert.equal(client.stderr.text, "");
    await nc.closeStdin();
    assert.equal((await nc.exit()).code, 0, nc.stderr.text); // the client closed: nc ends
    ok = true;
  } finally {
    if (!ok) {
      for (const proc of [nc, client]) {
        proc?.kill("SIGKILL");
        await proc?.exit();
      }
    }
  }
});

Deno.test("client: Chinese reply split inside a character across two writes is intact", async () => {
  const reply = encoder.encode("你好，世界\n");
  // 你 is 3 bytes: 4 bytes end inside 好.
  const server = replyInParts([reply.subarray(0, 4), reply.subarray(4)], 150);
  const client = await runClient(server.port, ["--message", "hi"]);
  assert.equal(await server.finish(), "hi");
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, "received: 你好，世界\n");
  assert.doesNotMatch(client.stdout, /\uFFFD/);
});

Deno.test("client: a reply in several segments is one reply", async () => {
  const parts = ["one ", "two ", "three\n"].map((part) => encoder.encode(part));
  const server = replyInParts(parts, 60);
  const client = await runClient(server.port, ["--message", "hi"]);
  assert.equal(await server.finish(), "hi");
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, "received: one two three\n");
});

Deno.test("client: a reply ended by the server's close (no newline) is printed", async () => {
  const server = replyInParts([encoder.encode("bye, no newline")], 0);
  const client = await runClient(server.port, ["--message", "hi"]);
  assert.equal(await server.finish(), "hi");
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, "received: bye, no newline\n");
});

Deno.test("client: --size cuts the reply like recv(N), never inside a character", async () => {
  // a b 你(3) 好(3): 7 bytes end inside 好.
  const server = replyInParts([encoder.encode("ab你好cd\n")], 0);
  const client = await runClient(server.port, ["--message", "hi", "--size", "7"]);
  assert.equal(await server.finish(), "hi");
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, "received: ab你\n");
});

Deno.test("client: a server that closes without replying is an error, exit 1", async () => {
  const server = oneShotServer((conn) => readLine(conn)); // reads, then closes: no reply
  const client = await runClient(server.port, ["--message", "anyone there?"]);
  assert.equal(await server.finish(), "anyone there?");
  assert.equal(client.code, 1);
  assert.equal(client.stdout, "");
  assert.match(
    client.stderr,
    /^error: 127\.0\.0\.1:\d+ closed the connection without replying\n$/,
  );
});

Deno.test("client: a server that closes at once, before the message, is an error, exit 1", async () => {
  const server = oneShotServer(() => Promise.resolve());
  const client = await runClient(server.port, ["--message", "too late"]);
  await server.finish();
  assert.equal(client.code, 1);
  assert.equal(client.stdout, "");
  // Which one depends on whether the close or the write wins; both are one clean line.
  assert.match(client.stderr, /^error: 127\.0\.0\.1:\d+ closed the connection [a-z ]+\n$/);
});

Deno.test("client: connection refused exits 1 with one error: line", async () => {
  const port = freePort(); // nothing listens there
  const client = await runClient(port, ["--message", "hello?"]);
  assert.equal(client.code, 1);
  assert.equal(client.stdout, "");
  assert.match(client.stderr, new RegExp(`^error: cannot connect to 127\\.0\\.0\\.1:${port}: `));
  assert.match(client.stderr, /is the server running\?/);
  assert.equal(client.stderr.trim().split("\n").length, 1);
});

Deno.test("client: bad flags exit 2 with error: and the usage line on stderr", async () => {
  const cases = [
    ["--bogus"],
    ["--port", "99999"],
    ["--port", "0"],
    ["--port", "abc"],
    ["--size", "0"],
    ["--host", ""],
    ["--port"],
    ["positional"],
    ["--message", "two\nlines"],
  ];
  const results = await Promise.all(cases.map((args) => runScript("client.ts", args)));
  for (const [i, result] of results.entries()) {
    const label = cases[i].join(" ");
    assert.equal(result.code, 2, label);
    assert.match(result.stderr, /^error: /, label);
    assert.match(result.stderr, /\nusage: deno run -A client\.ts /, label);
    assert.equal(result.stdout, "", label);
  }
  assert.match(results[2].stderr, /--port must be a whole number 1-65535, got '0'/);
  assert.match(results[8].stderr, /--message must be one line/);
});

Deno.test("client: --help prints the usage on stdout and exits 0", async () => {
  for (const flag of ["--help", "-h"]) {
    const result = await runScript("client.ts", [flag]);
    assert.equal(result.code, 0, flag);
    assert.match(result.stdout, /^usage: deno run -A client\.ts /, flag);
    assert.match(result.stdout, /--message/, flag);
    assert.equal(result.stderr, "", flag);
  }
});

Deno.test("client: empty stdin and no --message exits 2 before connecting", async () => {
  // Nothing listens on this port: a client that connected first would exit 1
  // (refused); with nothing to send it must not try at all.
  const client = await runScript("client.ts", ["--port", String(freePort())], { stdin: "" });
  assert.equal(client.code, 2);
  assert.equal(client.stdout, "");
  assert.match(client.stderr, /^error: no message/);
  assert.match(client.stderr, /\nusage: deno run -A client\.ts /);
});

Deno.test("client: control characters in the reply are escaped, invalid UTF-8 is U+FFFD", async () => {
  const reply = new Uint8Array([
    ...encoder.encode("A"),
    0x1b, // ESC: would start a terminal escape sequence
    ...encoder.encode("[2J"),
    0xff, // never valid in UTF-8
    0x07, // BEL
    ...encoder.encode("fake\rline\u202e"),
    0x0a,
  ]);
  const server = replyInParts([reply], 0);
  const client = await runClient(server.port, ["--message", "hi"]);
  await server.finish();
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, "received: A\\x1b[2J\uFFFD\\x07fake\\rline\\u202e\n");
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(client.stdout, /[\x00-\x08\x0b-\x1f\x7f]/);
});

Deno.test("client: [::1] host in brackets reaches an IPv6 server", async () => {
  const server = await startServer("server.ts", ["--host", "::1"]);
  const client = await runClient(server.port, ["--host", "[::1]", "-m", "over v6"]);
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, "received: thank you!\n");
  assert.match(await server.stdout.next(), /^\[::1\]:\d+ connected$/);
  assert.equal(await server.stdout.next(), "received: over v6");
  assert.equal((await server.exit()).code, 0);
});
