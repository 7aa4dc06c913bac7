// Fault injection: chat clients, chat_client.ts, server.ts and client.ts run
// through tests/fault_proxy.ts, which delays, trickles, splits, black-holes,
// half-closes and resets connections. The assertions: a broken client is
// removed, everyone else keeps chatting with no line lost or reordered, and
// no byte-level accident ever reaches a user as a broken character.

import assert from "node:assert/strict";
import { FaultProxy, type Faults } from "./fault_proxy.ts";
import {
  type ChatClient,
  type Client,
  delay,
  joinChatAs,
  type Server,
  spawnScript,
  startServer,
  stopServer,
} from "./helpers.ts";

const encoder = new TextEncoder();

// --------------------------------------------------------------- helpers ---

/** Joins (the three welcome lines), takes `nick`, waits for the confirmation. */
function joinAs(port: number, nick: string): Promise<ChatClient> {
  return joinChatAs(port, nick);
}

/** Lines received from `nick`, without the "<nick> " prefix. */
function linesFrom(client: Client, nick: string): string[] {
  const prefix = `<${nick}> `;
  return client.lines.lines.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}

/** Waits (bounded) until `client` has `count` lines from `nick`. */
async function waitForLines(client: Client, nick: string, count: number, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (linesFrom(client, nick).length < count) {
    if (Date.now() > deadline) {
      const got = linesFrom(client, nick).length;
      throw new Error(`only ${got} of ${count} lines from ${nick} within ${timeoutMs} ms`);
    }
    await delay(20);
  }
}

/** Waits (bounded) until a line matching `pattern` has been received, anywhere. */
async function waitForLine(client: Client, pattern: RegExp, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const line = client.lines.lines.find((l) => pattern.test(l));
    if (line !== undefined) return line;
    if (Date.now() > deadline) {
      throw new Error(`no line matching ${pattern} within ${timeoutMs} ms:\n${client.lines.text}`);
    }
    await delay(20);
  }
}

/**
 * Two steady clients sending numbered lines to each other every `everyMs`
 * until stopped; then each must have the other's lines, all and in order.
 */
function steadyChat(a: ChatClient, b: ChatClient, everyMs = 20) {
  let running = true;
  const sent = new Map<string, string[]>([[a.nick, []], [b.nick, []]]);
  const talk = async (from: ChatClient) => {
    for (let i = 0; running; i++) {
      const text = `${from.nick} line ${i} 你好 🎉`;
      await from.send(`${text}\n`);
      sent.get(from.nick)!.push(text);
      await delay(everyMs);
    }
  };
  const talking = Promise.all([talk(a), talk(b)]);
  return {
    async stopAndCheck() {
      running = false;
      await talking;
      for (const [from, to] of [[a, b], [b, a]]) {
        const expected = sent.get(from.nick)!;
        await waitForLines(to, from.nick, expected.length);
        assert.deepEqual(linesFrom(to, from.nick), expected, `${from.nick} -> ${to.nick}`);
      }
      return sent.get(a.nick)!.length + sent.get(b.nick)!.length;
    },
  };
}

/** A fresh client can still join and get an answer. */
async function assertServerAnswers(server: Server) {
  const probe = await joinAs(server.port, `probe${Date.now() % 100000}`);
  await probe.send("/ping still-here\n");
  assert.equal(await probe.lines.waitFor("pong"), "* pong still-here");
  await probe.close();
}

async function finish(server: Server, proxy: FaultProxy, ...clients: Client[]) {
  for (const client of clients) await client.close();
  await proxy.close();
  const status = await stopServer(server);
  assert.equal(status.code, 0, server.stderr.text);
}

// ------------------------------------------------------ the proxy itself ---

/** An echo server on loopback, for checking the proxy byte for byte. */
function echoServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.TcpConn[] = [];
  const serving = (async () => {
    const echoes: Promise<void>[] = [];
    for await (const conn of listener) {
      conns.push(conn);
      echoes.push((async () => {
        const buffer = new Uint8Array(4096);
        try {
          while (true) {
            const n = await conn.read(buffer);
            if (n === null) break;
            let rest = buffer.subarray(0, n);
            while (rest.length) rest = rest.subarray(await conn.write(rest));
          }
          await conn.closeWrite();
        } catch {
          // Reset or closed by the test.
        }
      })());
    }
    await Promise.all(echoes);
  })();
  return {
    port: listener.addr.port,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await serving;
    },
  };
}

/** Reads everything until EOF (or a reset, reported as such). */
async function readAll(conn: Deno.Conn): Promise<{ bytes: Uint8Array; reset: boolean }> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  let reset = false;
  while (true) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch (err) {
      reset = err instanceof Deno.errors.ConnectionReset;
      break;
    }
    if (n === null) break;
    parts.push(buffer.slice(0, n));
  }
  const bytes = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return { bytes, reset };
}

Deno.test("fault proxy: delay, trickle and splits deliver the exact bytes both ways", async () => {
  const echo = echoServer();
  const payload = encoder.encode("你好，世界 👩‍💻 ok\r\n".repeat(20) + "end");
  const plans: Faults[] = [
    {},
    { delayMs: 30 },
    { trickle: true, trickleMs: 0 },
    { splitAt: [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233] },
  ];
  const proxy = FaultProxy.start(echo.port, { faults: (i) => ({ up: plans[i], down: plans[i] }) });
  try {
    for (let i = 0; i < plans.length; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
      const reading = readAll(conn);
      let rest = payload;
      while (rest.length) rest = rest.subarray(await conn.write(rest));
      await conn.closeWrite();
      const { bytes } = await reading;
      conn.close();
      assert.deepEqual(bytes, payload, `plan ${JSON.stringify(plans[i])}`);
      const link = await proxy.link(i);
      await link.done;
      assert.equal(link.up.forwarded, payload.length);
      assert.equal(link.down.forwarded, payload.length);
      if (plans[i].trickle) assert.equal(link.up.writes, payload.length, "one write per byte");
      if (plans[i].splitAt) assert.ok(link.up.writes >= 13, `${link.up.writes} writes`);
    }
  } finally {
    await proxy.close();
    await echo.close();
  }
});

Deno.test("fault proxy: reset is a RST, half-close a FIN, a black hole forwards nothing", async () => {
  const echo = echoServer();
  const proxy = FaultProxy.start(echo.port, {
    faults: (i) =>
      i === 0 ? { up: { resetAfter: 5 } } : i === 1 ? { up: { halfCloseAfter: 4 } } : {},
  });
  try {
    // Reset after 5 bytes: the echo of those may arrive, then the RST. A
    // write after a RST fails (after a FIN it would not, on the first try).
    const reset = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await reset.write(encoder.encode("0123456789"));
    const afterReset = await readAll(reset);
    assert.ok(afterReset.bytes.length <= 5);
    assert.ok(afterReset.reset, "the read ended in ConnectionReset: a RST, not a FIN");
    await assert.rejects(async () => {
      for (let i = 0; i < 5; i++) await reset.write(encoder.encode("more"));
    });
    reset.close();
    assert.equal((await proxy.link(0)).ending, "reset");

    // Half-close after 4 bytes: the echo server sees EOF after "abcd" and
    // closes; the rest is dropped by the proxy.
    const half = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await half.write(encoder.encode("abcdefgh"));
    assert.equal(new TextDecoder().decode((await readAll(half)).bytes), "abcd");
    half.close();

    // A black hole: nothing comes back, however long we wait (bounded here).
    const hole = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    const link = await proxy.link(2);
    link.blackhole();
    await hole.write(encoder.encode("anyone there?\n"));
    const reply = hole.read(new Uint8Array(100));
    const nothing = await Promise.race([reply.then(() => "data"), delay(500).then(() => "none")]);
    assert.equal(nothing, "none");
    hole.close();
    await reply.catch(() => {});
    assert.equal(link.up.forwarded, 0);
  } finally {
    await proxy.close();
    await echo.close();
  }
});

// ---------------------------------------------------- chat under faults ---

// The chat servers here run with flood control off (--max-rate 0): these tests are about
// faults on the wire, and some push lines faster than a person types.
Deno.test("fault chat: a client reset mid-line is removed; the others lose nothing", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0"]);
  const proxy = FaultProxy.start(server.port);
  const a = await joinAs(server.port, "alice");
  const b = await joinAs(server.port, "bob");
  const c = await joinAs(proxy.port, "carol");
  const chat = steadyChat(a, b);
  const link = await proxy.link(0);
  // carol's next line is cut after 5 bytes by a RST both ways.
  link.up.faults = { resetAfter: link.up.forwarded + 5 };
  await c.send("half a line that never ends\n");
  await c.lines.end();
  assert.equal(await waitForLine(a, /^\* carol left/), "* carol left");
  await waitForLine(b, /^\* carol left/);
  await delay(200); // steady chat goes on after the reset
  const lines = await chat.stopAndCheck();
  assert.ok(lines > 10, `${lines} lines`);
  assert.ok(!a.lines.text.includes("half"), "a fragment without its newline is no line");
  assert.equal(link.ending, "reset");
  await assertServerAnswers(server);
  await finish(server, proxy, a, b, c);
});

// A black hole (the route dies: no FIN, no RST, nothing) cannot be seen by
// TCP on the server's side for a long time. The chat server has no
// application heartbeat; what removes such a client is:
// - --idle-timeout SECS: the client sends nothing, so after SECS seconds
//   (checked every second) it is told and removed: "* NAME left (idle)";
// - --max-queue BYTES, when others chat: its unread output piles up in the
//   kernel buffers, then in its queue, and past BYTES: "* NAME left (too slow)".
// TCP keep-alive is on for server sockets but uses the kernel's defaults
// (/proc/sys/net/ipv4/tcp_keepalive_time, 7200 s to the first probe, here
// 9 probes 75 s apart), which Deno cannot change per socket: ~2 h 11 min.

Deno.test("fault chat: a black-holed client is removed by --idle-timeout 2; others lose nothing", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0", "--idle-timeout", "2"]);
  const proxy = FaultProxy.start(server.port);
  const a = await joinAs(server.port, "alice");
  const b = await joinAs(server.port, "bob");
  const c = await joinAs(proxy.port, "carol");
  const chat = steadyChat(a, b, 50); // alice and bob speak, so they are never idle
  (await proxy.link(0)).blackhole();
  const started = Date.now();
  assert.equal(await waitForLine(a, /^\* carol left/, 10_000), "* carol left (idle)");
  const took = Date.now() - started;
  await waitForLine(b, /^\* carol left/);
  await delay(200);
  await chat.stopAndCheck();
  assert.ok(took < 10_000, `removed after ${took} ms`);
  assert.ok(!c.lines.text.includes("alice line"), "nothing reached carol through the hole");
  await assertServerAnswers(server);
  await finish(server, proxy, a, b, c);
});

Deno.test("fault chat: a black-holed client is dropped by --max-queue when others chat", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0", "--max-queue", "65536"]);
  const proxy = FaultProxy.start(server.port);
  const sender = await joinAs(server.port, "sender");
  const reader = await joinAs(server.port, "reader");
  const c = await joinAs(proxy.port, "carol");
  (await proxy.link(0)).blackhole();
  const line = "z".repeat(999);
  const batch = encoder.encode(`${line}\n`.repeat(50));
  let sent = 0;
  let scanned = 0;
  let received = 0;
  let dropped = false;
  // Kernel buffers (server send + proxy receive) take a few MB first; stop
  // as soon as the drop is seen, at 40 MB at most. The reader is held to the
  // same 64 KiB limit, so the sender waits for it to catch up after each
  // batch: a busy test process must not get the reader dropped too.
  while (!dropped && sent < 40_000) {
    await sender.send(batch);
    sent += 50;
    const deadline = Date.now() + 15_000;
    while (received < sent && Date.now() < deadline) {
      await delay(1);
      const lines = reader.lines.lines;
      for (; scanned < lines.length; scanned++) {
        if (lines[scanned].startsWith("<sender> ")) received++;
        else if (lines[scanned].startsWith("* carol left")) dropped = true;
      }
    }
  }
  assert.equal(await waitForLine(reader, /^\* carol left/), "* carol left (too slow)");
  await waitForLines(reader, "sender", sent, 30_000);
  const got = linesFrom(reader, "sender");
  assert.equal(got.length, sent);
  assert.ok(got.every((l) => l === line), "every line whole");
  reader.lines.lines.length = 0; // megabytes of text kept for the asserts
  await assertServerAnswers(server);
  await finish(server, proxy, sender, reader, c);
});

Deno.test("fault chat: trickled, delayed and split clients' lines arrive whole and in order", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0"]);
  const texts = ["你好，世界", "emoji 👩‍💻🎉 ok", "mixed é ß Ж 测试 😀", "plain ascii"];
  const wire = encoder.encode(texts.map((t) => `${t}\n`).join(""));
  // Offsets inside every multi-byte character of the lines, after the nick command.
  const nickBytes = "/nick eve\n".length;
  const inside = [...wire.keys()].filter((i) => (wire[i] & 0xc0) === 0x80).map((i) =>
    nickBytes + i
  );
  const proxy = FaultProxy.start(server.port, {
    faults: (i) =>
      [
        { up: { trickle: true }, down: { trickle: true, trickleMs: 0 } }, // carol
        { up: { delayMs: 150 }, down: { delayMs: 150 } }, // dave
        { up: { splitAt: inside, splitPauseMs: 3 }, down: { splitAt: [7, 9, 11] } }, // eve
      ][i],
  });
  const a = await joinAs(server.port, "alice");
  const b = await joinAs(server.port, "bob");
  const carol = await joinAs(proxy.port, "carol");
  const dave = await joinAs(proxy.port, "dave");
  const eve = await joinAs(proxy.port, "eve");
  const chat = steadyChat(a, b, 30);
  await Promise.all([carol, dave, eve].map((c) => c.send(wire)));
  for (const receiver of [a, b]) {
    for (const from of [carol, dave, eve]) {
      await waitForLines(receiver, from.nick, texts.length);
      assert.deepEqual(linesFrom(receiver, from.nick), texts, `${from.nick} -> ${receiver.nick}`);
    }
  }
  await chat.stopAndCheck();
  // The faulty clients got alice's and bob's lines whole too.
  for (const receiver of [carol, dave, eve]) {
    await waitForLines(receiver, "alice", 5);
    assert.ok(linesFrom(receiver, "alice").every((l) => /^alice line \d+ 你好 🎉$/.test(l)));
  }
  assert.ok((await proxy.link(0)).up.writes >= wire.length, "carol's bytes went one by one");
  assert.ok((await proxy.link(2)).up.writes > inside.length, "eve's writes were split");
  await finish(server, proxy, a, b, carol, dave, eve);
});

Deno.test("fault chat: a half-closed client gets its answers, then leaves; nothing lost", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0"]);
  const proxy = FaultProxy.start(server.port);
  const a = await joinAs(server.port, "alice");
  const b = await joinAs(server.port, "bob");
  const c = await joinAs(proxy.port, "carol");
  const chat = steadyChat(a, b);
  await c.send("last words\n/who\n");
  const link = await proxy.link(0);
  // FIN to the server once carol's two lines have been forwarded.
  const target = "/nick carol\nlast words\n/who\n".length;
  while (link.up.forwarded < target) await delay(10);
  await link.halfClose("up");
  await c.lines.waitFor(/^\* online \(3\)/); // the answer still came back
  await c.lines.end(); // and then the server closed
  assert.equal(await waitForLine(a, /^<carol>/), "<carol> last words");
  assert.equal(await waitForLine(a, /^\* carol left/), "* carol left");
  await chat.stopAndCheck();
  await finish(server, proxy, a, b, c);
});

// ------------------------------------------------ chat_client.ts, faulted ---

Deno.test("fault chat_client: a trickled, split stream from the server prints whole lines", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0"]);
  const proxy = FaultProxy.start(server.port, {
    faults: () => ({ down: { trickle: true, splitAt: [1, 2, 3, 200, 201, 202] } }),
  });
  const a = await joinAs(server.port, "alice");
  const client = spawnScript("chat_client.ts", ["--port", String(proxy.port), "--nick", "viewer"], {
    stdin: "piped",
  });
  try {
    await client.stdout.waitFor("* you are now viewer", 15_000);
    const texts = ["你好，世界", "👩‍💻🎉 and é", "\x1b[2J not a clear screen"];
    for (const text of texts) await a.send(`${text}\n`);
    const shown = [];
    for (let i = 0; i < texts.length; i++) {
      shown.push(await client.stdout.waitFor("<alice>", 15_000));
    }
    assert.deepEqual(shown, [
      "<alice> 你好，世界",
      "<alice> 👩‍💻🎉 and é",
      "<alice> \\x1b[2J not a clear screen",
    ]);
    await client.closeStdin(); // scripted: EOF half-closes; the server then closes
    assert.equal((await client.exit(15_000)).code, 0, client.stderr.text);
    assert.ok(!client.stdout.text.includes("\uFFFD"), "no broken character");
  } finally {
    client.kill("SIGKILL");
    await client.exit();
    await finish(server, proxy, a);
  }
});

Deno.test("fault chat_client: a reset from the server ends it with a report, not a hang", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0"]);
  const proxy = FaultProxy.start(server.port);
  const client = spawnScript("chat_client.ts", ["--port", String(proxy.port)], { stdin: "piped" });
  try {
    await client.stdout.waitFor("* type /help", 15_000);
    (await proxy.link(0)).reset("client");
    const status = await client.exit(10_000);
    assert.notEqual(status.signal, "SIGKILL", "chat_client hung after the reset");
    assert.equal(status.code, 1);
    assert.match(client.stderr.text, /^error: connection reset by 127\.0\.0\.1:\d+$/m);
  } finally {
    client.kill("SIGKILL");
    await client.exit();
    await finish(server, proxy);
  }
});

// A black-holed server sends no FIN and no RST: only the client's own
// liveness check can tell. chat_client.ts --timeout SECS sends "/ping alive-N"
// after SECS/2 s of silence (chat_server.ts answers "* pong alive-N") and
// gives up after SECS s without a byte: "error: no answer from ...", exit 1.
// (TCP keep-alive would take ~2 h 11 min with the kernel's defaults.)
Deno.test("fault chat_client: a black-holed server is reported within --timeout", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0"]);
  const proxy = FaultProxy.start(server.port);
  const client = spawnScript("chat_client.ts", ["--port", String(proxy.port), "--timeout", "2"], {
    stdin: "piped",
  });
  try {
    await client.stdout.waitFor("* type /help", 15_000);
    (await proxy.link(0)).blackhole();
    const status = await client.exit(15_000); // SIGKILL after 15 s: a hang
    assert.notEqual(status.signal, "SIGKILL", "chat_client still waits for a dead server");
    assert.equal(status.code, 1);
    assert.match(
      client.stderr.text,
      /^error: no answer from 127\.0\.0\.1:\d+ for 2 s; the server or the network is gone$/m,
    );
  } finally {
    client.kill("SIGKILL");
    await client.exit();
    await finish(server, proxy);
  }
});

Deno.test("fault chat_client: a quiet server behind 400 ms of latency is not declared dead", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0"]);
  const proxy = FaultProxy.start(server.port, {
    faults: () => ({ up: { delayMs: 200 }, down: { delayMs: 200 } }),
  });
  const a = await joinAs(server.port, "alice");
  const client = spawnScript("chat_client.ts", ["--port", String(proxy.port), "--timeout", "2"], {
    stdin: "piped",
  });
  try {
    await client.stdout.waitFor("* type /help", 15_000);
    await delay(4500); // over two timeouts of silence: the pings keep it alive
    await a.send("still there?\n");
    assert.equal(await client.stdout.waitFor("<alice>", 10_000), "<alice> still there?");
    assert.ok(!client.stdout.text.includes("pong"), "its own pings' answers are hidden");
    await client.closeStdin();
    assert.equal((await client.exit(15_000)).code, 0, client.stderr.text);
  } finally {
    client.kill("SIGKILL");
    await client.exit();
    await finish(server, proxy, a);
  }
});

// ---------------------------------------------- server.ts and client.ts ---

Deno.test("fault server.ts/client.ts: a trickled, split message and reply come out whole", async () => {
  const server = await startServer("server.ts", ["--reply", "谢谢 👍 收到"]);
  const message = "你好，世界 🎉 é";
  const bytes = encoder.encode(`${message}\n`);
  const inside = [...bytes.keys()].filter((i) => (bytes[i] & 0xc0) === 0x80);
  const proxy = FaultProxy.start(server.port, {
    faults: () => ({ up: { trickle: true }, down: { splitAt: [1, 2, 3, 4, 5, 6, 7, 8] } }),
  });
  const client = spawnScript("client.ts", ["--port", String(proxy.port), "--message", message]);
  try {
    assert.equal((await client.exit(15_000)).code, 0, client.stderr.text);
    assert.equal(client.stdout.text, "received: 谢谢 👍 收到");
    assert.equal((await server.exit()).code, 0);
    assert.equal(server.stdout.lines.at(-1), `received: ${message}`);
    const link = await proxy.link(0);
    assert.ok(link.up.writes >= bytes.length, "sent byte by byte");
    assert.ok(inside.length > 5);
  } finally {
    client.kill("SIGKILL");
    server.kill("SIGKILL");
    await client.exit();
    await server.exit();
    await proxy.close();
  }
});

Deno.test("fault server.ts/client.ts: a reset mid-message is reported by both, no hang", async () => {
  const server = await startServer("server.ts");
  const proxy = FaultProxy.start(server.port, { faults: () => ({ up: { resetAfter: 6 } }) });
  const client = spawnScript("client.ts", ["--port", String(proxy.port), "--message", "你好 half"]);
  try {
    const clientStatus = await client.exit(15_000);
    assert.equal(clientStatus.code, 1);
    assert.match(client.stderr.text, /^error: 127\.0\.0\.1:\d+ (closed|reset)/);
    const serverStatus = await server.exit(15_000);
    assert.notEqual(serverStatus.signal, "SIGKILL", "server.ts hung");
    // The server saw the 6 bytes ("你好"), then the reset, which it reads as
    // the end of the message; the reply then fails.
    assert.equal(server.stdout.lines.at(-1), "received: 你好");
    assert.equal(serverStatus.code, 1);
    assert.match(server.stderr.text, /went away before the reply/);
  } finally {
    client.kill("SIGKILL");
    server.kill("SIGKILL");
    await client.exit();
    await server.exit();
    await proxy.close();
  }
});
