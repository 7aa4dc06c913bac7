// Tests of chat_client.ts: its lib/ parts directly (line framing and kinds,
// the view's helpers, the line sender, the silence watch), then the real
// program against nc -l, ncat --chat, small in-test servers, chat_server.ts,
// and a real terminal (tmux). Dead-server detection: chat_client_dead_test.ts.

import assert from "node:assert/strict";
import {
  asOthersSeeIt,
  classifyLine,
  createReceiver,
  isWelcome,
  MAX_LINE_BYTES,
  nickFromNotice,
  TOO_LONG_NOTICE,
} from "../lib/client_lines.ts";
import { clock, displayWidth } from "../lib/client_view.ts";
import { createLineSender } from "../lib/line_sender.ts";
import { watchSilence } from "../lib/silence_watch.ts";
import {
  delay,
  freePort,
  LineReader,
  readableOf,
  ROOT,
  run,
  runScript,
  send,
  spawnCommand,
  spawnScript,
  startServer,
  stopServer,
  waitForListen,
} from "./helpers.ts";

const encoder = new TextEncoder();
const chatServerExists = await Deno.stat(`${ROOT}chat_server.ts`).then(() => true, () => false);

/** One accepted connection of an in-test server, its input read as lines. */
interface Peer {
  conn: Deno.TcpConn;
  lines: LineReader;
  send(data: string | Uint8Array): Promise<void>;
}

/** A loopback listener on a free port that accepts one client at a time. */
function listenLocal() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peers: Peer[] = [];
  return {
    port: listener.addr.port,
    async accept(): Promise<Peer> {
      const conn = await listener.accept();
      // readableOf, not conn.readable: the test still writes after the client's EOF.
      const peer = {
        conn,
        lines: new LineReader(readableOf(conn)),
        send: (d: string | Uint8Array) => send(conn, d),
      };
      peers.push(peer);
      return peer;
    },
    async close() {
      listener.close();
      for (const peer of peers) {
        try {
          peer.conn.close();
        } catch {
          // Closed by the test already.
        }
        await peer.lines.finished;
      }
    },
  };
}

function spawnClient(port: number, args: string[] = []) {
  return spawnScript("chat_client.ts", ["--port", String(port), ...args], { stdin: "piped" });
}

// ------------------------------------------------------------ unit tests ---

Deno.test("chat_client: received bytes become whole, sanitised lines; EOF gives the last one", () => {
  const receive = createReceiver();
  const bytes = encoder.encode("你好\r\nab\n\n\x1b[2J\ncut 世");
  const received = [];
  for (const byte of bytes) received.push(...receive(new Uint8Array([byte])));
  assert.deepEqual(received, [
    { server: "你好" },
    { server: "ab" },
    { server: "" },
    { server: "\\x1b[2J" }, // escaped: it cannot clear the user's screen
  ]);
  assert.deepEqual(receive(null), [{ server: "cut 世" }]);
  assert.deepEqual(receive(null), []);
});

Deno.test("chat_client: a line over 64 KiB becomes one local notice; the next line is intact", () => {
  const receive = createReceiver();
  // Exactly MAX_LINE_BYTES (here 3-byte characters and a \r\n) is still shown whole.
  const exact = "世".repeat(MAX_LINE_BYTES / 4) + "x".repeat(MAX_LINE_BYTES / 4);
  assert.equal(encoder.encode(exact).length, MAX_LINE_BYTES);
  assert.deepEqual(receive(encoder.encode(`${exact}\r\n`)), [{ server: exact }]);
  // One byte more, arriving in pieces: one notice, never the text, then normal lines.
  const long = new Uint8Array(MAX_LINE_BYTES + 1).fill(0x61);
  const received = [
    ...receive(long.subarray(0, 1000)),
    ...receive(long.subarray(1000)),
    ...receive(encoder.encode("\nafter\n")),
  ];
  assert.deepEqual(received, [{ local: TOO_LONG_NOTICE }, { server: "after" }]);
  // An overlong unfinished line at EOF gets its notice too, and nothing else.
  assert.deepEqual(
    [...receive(new Uint8Array(200_000).fill(0x62)), ...receive(null)],
    [{ local: TOO_LONG_NOTICE }],
  );
});

Deno.test("chat_client: line kinds, nick tracking, clock, display width", () => {
  assert.equal(classifyLine("* guest2 joined"), "notice");
  assert.equal(classifyLine("! nick taken"), "error");
  assert.equal(classifyLine("<bob> (private) psst"), "private");
  assert.equal(classifyLine("<user5> hi"), "other");
  assert.equal(classifyLine("hello from nc"), "plain");
  assert.equal(nickFromNotice("* welcome, you are guest1"), "guest1");
  assert.equal(nickFromNotice("* you are now alice"), "alice");
  assert.equal(nickFromNotice("* guest1 is now alice"), undefined);
  assert.ok(isWelcome("* welcome, you are guest1"));
  assert.ok(!isWelcome("<bob> * welcome, you are guest1"));
  assert.ok(!isWelcome("* you are now alice"));
  assert.equal(clock(new Date(2024, 0, 1, 7, 5)), "07:05");
  assert.equal(displayWidth("> ab你好🙂"), 10);
});

Deno.test("chat_client: own chat lines and /me actions are shown as the room sees them", () => {
  assert.equal(asOthersSeeIt("hi 你好", "carol"), "<carol> hi 你好");
  assert.equal(asOthersSeeIt("/me  waves", "carol"), "* carol waves");
  assert.equal(asOthersSeeIt("/me", "carol"), undefined); // a command: the server answers
  assert.equal(asOthersSeeIt("/who", "carol"), undefined);
});

/** A fake connection: each write() takes at most `most` bytes; from write `failFrom` on, they fail. */
function fakeConn(most: number, failFrom = Infinity) {
  const chunks: Uint8Array[] = [];
  const calls: string[] = [];
  return {
    calls,
    write(bytes: Uint8Array): Promise<number> {
      calls.push("write");
      if (calls.length > failFrom) return Promise.reject(new Deno.errors.BrokenPipe("gone"));
      chunks.push(bytes.slice(0, most));
      return Promise.resolve(Math.min(most, bytes.length));
    },
    closeWrite(): Promise<void> {
      calls.push("closeWrite");
      return Promise.resolve();
    },
    written: () => new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c]))),
  };
}

Deno.test("chat_client: the line sender writes whole lines in order, then half-closes", async () => {
  const conn = fakeConn(3); // every write() takes 3 bytes at most: partial writes
  const backlog: boolean[] = [];
  const sender = createLineSender(conn, {
    failed: (error) => assert.fail(String(error)),
    backlog: (full) => backlog.push(full),
  });
  for (let i = 0; i < 70; i++) sender.send(`line ${i} 你好`);
  assert.ok(sender.open);
  const closed = sender.halfClose();
  assert.ok(!sender.open); // writing after closeWrite() would be a BrokenPipe
  await closed;
  const want = Array.from({ length: 70 }, (_, i) => `line ${i} 你好\n`).join("");
  assert.equal(conn.written(), want);
  assert.equal(conn.calls.at(-1), "closeWrite");
  assert.deepEqual(backlog, [true, false]); // full at 64 queued, drained at 32
});

Deno.test("chat_client: the line sender reports the first failed write only", async () => {
  const conn = fakeConn(100, 1); // the second write fails: the server went away
  const failures: unknown[] = [];
  const sender = createLineSender(conn, { failed: (e) => failures.push(e), backlog: () => {} });
  sender.send("a");
  sender.send("b");
  sender.send("c");
  await sender.halfClose();
  assert.equal(conn.written(), "a\n");
  assert.deepEqual(conn.calls, ["write", "write", "closeWrite"]); // "c" was skipped
  assert.equal(failures.length, 1);
  assert.ok(failures[0] instanceof Deno.errors.BrokenPipe);
  assert.ok(!sender.open);
});

Deno.test("chat_client: the silence watch pings at half the timeout, then declares the server dead", async () => {
  const sent: string[] = [];
  let dead = false;
  const watch = watchSilence(400, { send: (line) => sent.push(line), dead: () => dead = true });
  try {
    watch.start();
    await delay(300);
    assert.deepEqual(sent, ["/ping alive-1"]);
    assert.ok(!watch.isOwnPong("* pong me"), "the user's own /ping is answered as usual");
    assert.ok(watch.isOwnPong("* pong alive-1"));
    assert.ok(!watch.isOwnPong("* pong alive-1"), "each answer is hidden once");
    watch.heard(); // a byte arrived: the clock restarts, next ping at 500 ms, dead at 700
    await delay(300);
    assert.deepEqual(sent, ["/ping alive-1", "/ping alive-2"]);
    assert.ok(!dead);
    await delay(300);
    assert.ok(dead);
  } finally {
    watch.stop();
  }
});

Deno.test("chat_client: the silence watch stays idle until start(), and for --timeout 0", async () => {
  const calls: string[] = [];
  const hooks = { send: (line: string) => calls.push(line), dead: () => calls.push("dead") };
  const idle = watchSilence(40, hooks);
  const never = watchSilence(0, hooks);
  never.start();
  await delay(100);
  idle.stop();
  never.stop();
  assert.deepEqual(calls, []);
});

// --------------------------------------------------------- real programs ---

Deno.test("chat_client: against nc -l, lines flow both ways; nc closing ends it with 0", async () => {
  const port = freePort();
  const nc = spawnCommand("nc", ["-l", "127.0.0.1", String(port)], { stdin: "piped" });
  await waitForListen(port);
  const client = spawnClient(port);
  await client.write("hello nc, 你好\n");
  assert.equal(await nc.stdout.next(), "hello nc, 你好");
  await nc.write("hello client\n");
  assert.equal(await client.stdout.next(), "hello client");
  await client.write("second\n");
  assert.equal(await nc.stdout.next(), "second");
  nc.kill("SIGTERM"); // nc closes its socket: the client sees EOF
  await nc.exit();
  const status = await client.exit();
  assert.equal(status.code, 0);
  assert.equal(client.stderr.text, "* connection closed by server");
  assert.deepEqual(client.stdout.lines, ["hello client"]);
});

Deno.test("chat_client: piped stdin is sent, EOF half-closes, replies after it are printed", async () => {
  const server = listenLocal();
  const client = spawnClient(server.port);
  try {
    const peer = await server.accept();
    await client.write("a\nb\n");
    await client.closeStdin();
    await peer.lines.end(); // the client's FIN: its read side is still open
    assert.deepEqual(peer.lines.lines, ["a", "b"]);
    await peer.send("reply 1\n回复 2\n");
    await delay(50);
    await peer.send("last, no newline");
    peer.conn.close();
    const status = await client.exit();
    assert.equal(status.code, 0);
    assert.deepEqual(client.stdout.lines, ["reply 1", "回复 2", "last, no newline"]);
    assert.equal(client.stderr.text, "* connection closed by server");
  } finally {
    await server.close();
  }
});

Deno.test("chat_client: --nick sends /nick first; /quit sends /quit and leaves with 0", async () => {
  const server = listenLocal();
  const client = spawnClient(server.port, ["--nick", "bob"]);
  try {
    const peer = await server.accept();
    assert.equal(await peer.lines.next(), "/nick bob");
    await client.write("hi\n/quit\nnot sent\n");
    assert.equal(await peer.lines.next(), "hi");
    assert.equal(await peer.lines.next(), "/quit");
    await peer.lines.end(); // /quit half-closes at once
    await peer.send("* bye\n");
    peer.conn.close();
    assert.equal((await client.exit()).code, 0);
    assert.deepEqual(peer.lines.lines, ["/nick bob", "hi", "/quit"]);
    assert.deepEqual(client.stdout.lines, ["* bye"]);
    assert.equal(client.stderr.text, ""); // leaving is not "closed by server"
  } finally {
    await server.close();
  }
});

Deno.test("chat_client: SIGINT sends /quit and exits 0, SIGTERM exits 143", async () => {
  const server = listenLocal();
  try {
    for (const [signal, code] of [["SIGINT", 0], ["SIGTERM", 143]] as const) {
      const client = spawnClient(server.port, ["--nick", "x"]);
      const peer = await server.accept();
      // /nick goes out after the signal handlers are in place.
      assert.equal(await peer.lines.next(), "/nick x");
      client.kill(signal);
      assert.equal(await peer.lines.next(), "/quit");
      await peer.lines.end();
      peer.conn.close();
      assert.equal((await client.exit()).code, code, signal);
    }
  } finally {
    await server.close();
  }
});

Deno.test("chat_client: control characters, invalid UTF-8 and split characters are printed safely", async () => {
  const server = listenLocal();
  const client = spawnClient(server.port);
  try {
    const peer = await server.accept();
    peer.conn.setNoDelay(true);
    await peer.send(new Uint8Array([0x1b, 0x5b, 0x32, 0x4a, 0x41, 0xff, 0x07, 0x0a]));
    await peer.send("fake\rline\r\n");
    for (const byte of encoder.encode("<李雷> 你好，世界 🙂👍\n")) {
      await peer.send(new Uint8Array([byte])); // one byte per write, often per segment
      await delay(2);
    }
    peer.conn.close();
    assert.equal((await client.exit()).code, 0);
    assert.deepEqual(client.stdout.lines, [
      "\\x1b[2JA\uFFFD\\x07",
      "fake\\rline",
      "<李雷> 你好，世界 🙂👍",
    ]);
  } finally {
    await server.close();
  }
});

Deno.test("chat_client: a line longer than 64 KiB is not shown: a notice instead, then the next line", async () => {
  const server = listenLocal();
  const client = spawnClient(server.port);
  try {
    const peer = await server.accept();
    await peer.send("before\n" + "x".repeat(150_000) + "\nafter\n");
    peer.conn.close();
    assert.equal((await client.exit()).code, 0);
    assert.deepEqual(client.stdout.lines, ["before", "after"]);
    assert.deepEqual(client.stderr.lines, [TOO_LONG_NOTICE, "* connection closed by server"]);
    assert.equal(TOO_LONG_NOTICE, "! (a line over 64 KiB from the server was not shown)");
  } finally {
    await server.close();
  }
});

Deno.test("chat_client: connection refused exits 1 with one error: line", async () => {
  const result = await runScript("chat_client.ts", ["--port", String(freePort())]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^error: cannot connect to 127\.0\.0\.1:\d+: connection refused/);
  assert.equal(result.stderr.trim().split("\n").length, 1);
  assert.equal(result.stdout, "");
});

Deno.test("chat_client: a server that resets the connection: exit 1 with one error: line", async () => {
  // Deno has no SO_LINGER; python3 closes with linger 0, which sends a RST.
  const program = [
    "import socket, struct, time",
    "l = socket.create_server(('127.0.0.1', 0))",
    "print(l.getsockname()[1], flush=True)",
    "c, _ = l.accept()",
    "c.sendall(b'before the reset\\n')",
    "c.recv(100)",
    "time.sleep(0.2)",
    "c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))",
    "c.close()",
  ].join("\n");
  const server = spawnCommand("python3", ["-c", program]);
  const client = spawnClient(Number(await server.stdout.next()), ["--nick", "z"]);
  try {
    assert.equal((await client.exit()).code, 1);
    assert.deepEqual(client.stdout.lines, ["before the reset"]);
    assert.match(client.stderr.text, /^error: connection reset by 127\.0\.0\.1:\d+$/);
    assert.equal((await server.exit()).code, 0);
  } finally {
    client.kill();
    server.kill();
    await client.exit();
    await server.exit();
  }
});

Deno.test("chat_client: bad flags exit 2 with usage; --help exits 0", async () => {
  for (
    const args of [
      ["--bogus"],
      ["--port", "0"],
      ["--port", "x"],
      ["--nick", ""],
      ["--nick", "a b"],
      ["--timeout", "x"],
      ["--timeout", "1.5"],
      ["--timeout", "86401"],
      ["extra"],
    ]
  ) {
    const result = await runScript("chat_client.ts", args);
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, /^error: /, args.join(" "));
    assert.match(result.stderr, /usage: deno run -A chat_client\.ts/);
    assert.equal(result.stdout, "");
  }
  const help = await runScript("chat_client.ts", ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: deno run -A chat_client\.ts/);
  assert.match(help.stdout, /half-closes/);
  assert.match(help.stdout, /--timeout SECS/);
});

Deno.test("chat_client: two clients chat through ncat --chat", async () => {
  const port = freePort();
  const ncat = spawnCommand("ncat", ["-l", "--chat", "127.0.0.1", String(port)]);
  await waitForListen(port);
  const a = spawnClient(port);
  let b: ReturnType<typeof spawnClient> | undefined;
  try {
    // ncat announces each newcomer to everyone, the newcomer included.
    await a.stdout.waitFor(/^<announce> .* is connected as <user\d+>\.$/);
    b = spawnClient(port);
    await a.stdout.waitFor(/^<announce> .* is connected as <user\d+>\.$/);
    await b.stdout.waitFor(/^<announce> already connected: /);
    await a.write("hello from a\n");
    assert.match(await b.stdout.waitFor("hello from a"), /^<user\d+> hello from a$/);
    // ncat --chat itself escapes bytes over 0x7f as octal: the client prints what arrives.
    await b.write("hi from b, 你\n");
    assert.match(await a.stdout.waitFor("from b"), /^<user\d+> hi from b, \\344\\275\\240$/);
    // EOF on stdin half-closes; ncat then drops the client and it exits 0.
    await a.closeStdin();
    await b.closeStdin();
    assert.equal((await a.exit()).code, 0);
    assert.equal((await b.exit()).code, 0);
    assert.equal(a.stderr.text, "* connection closed by server");
  } finally {
    for (const client of [a, b]) {
      client?.kill();
      await client?.exit();
    }
    ncat.kill();
    await ncat.exit();
  }
});

Deno.test({
  name: "chat_client: two clients chat through chat_server.ts",
  ignore: !chatServerExists,
  async fn() {
    const server = await startServer("chat_server.ts");
    const alice = spawnClient(server.port, ["--nick", "alice"]);
    let bob: ReturnType<typeof spawnClient> | undefined;
    try {
      assert.match(await alice.stdout.next(), /^\* welcome, you are \S+$/);
      await alice.stdout.waitFor("* you are now alice");
      bob = spawnClient(server.port, ["--nick", "bob"]);
      await bob.stdout.waitFor("* you are now bob");
      await alice.stdout.waitFor("* bob joined"); // named by its first line, never a guest
      await alice.write("hi bob, 你好\n");
      assert.equal(await bob.stdout.waitFor("hi bob"), "<alice> hi bob, 你好");
      await bob.write("/msg alice psst\n");
      assert.equal(await alice.stdout.waitFor("psst"), "<bob> (private) psst");
      await alice.write("/quit\n");
      assert.equal((await alice.exit()).code, 0);
      await bob.stdout.waitFor("* alice left");
      await bob.closeStdin();
      assert.equal((await bob.exit()).code, 0);
      assert.equal(bob.stderr.text, "* connection closed by server");
      // The server never echoes a client's own line back.
      assert.ok(!alice.stdout.lines.some((line) => line.startsWith("<alice>")));
    } finally {
      for (const client of [alice, bob]) {
        client?.kill();
        await client?.exit();
      }
      await stopServer(server);
    }
  },
});

// -------------------------------------------------------------- terminal ---

Deno.test("chat_client: on a terminal, a line arrives above the prompt and half-typed input survives", async () => {
  const server = listenLocal();
  // A private tmux server on its own socket, removed with its directory at the end.
  const socketDir = await Deno.makeTempDir({ prefix: "chat_client_tmux_" });
  const tmux = (...args: string[]) => run("tmux", ["-S", `${socketDir}/socket`, ...args]);
  const pane = async () => (await tmux("capture-pane", "-p", "-t", "chat")).stdout.split("\n");
  /** Polls the screen until `check` passes; returns the screen's lines. */
  const waitForPane = async (what: string, check: (rows: string[]) => boolean) => {
    const deadline = Date.now() + 8000;
    let rows = await pane();
    while (!check(rows)) {
      if (Date.now() > deadline) {
        throw new Error(`screen never showed ${what}:\n${rows.join("\n")}`);
      }
      await delay(50);
      rows = await pane();
    }
    return rows;
  };
  const command = `'${Deno.execPath()}' run -A '${ROOT}chat_client.ts' --port ${server.port}; ` +
    `echo "exit=$?"; sleep 60`;
  try {
    const started = await tmux("new-session", "-d", "-s", "chat", "-x", "80", "-y", "10", command);
    assert.equal(started.code, 0, started.stderr);
    const peer = await server.accept();
    await peer.send("* welcome, you are carol\n");
    await waitForPane(
      "the welcome",
      (rows) => rows.some((r) => r.endsWith("* welcome, you are carol")),
    );

    // Half a line, no Enter; then a message arrives.
    const typed = "half typed 你好";
    await tmux("send-keys", "-t", "chat", "-l", typed);
    await waitForPane("the typed text", (rows) => rows.includes(`> ${typed}`));
    await peer.send("<alice> hello \x1b[2Jthere\n");
    const rows = await waitForPane("alice's line", (r) => r.some((row) => row.includes("<alice>")));
    const alice = rows.findIndex((row) => /^\d\d:\d\d <alice> hello \\x1b\[2Jthere$/.test(row));
    const prompt = rows.indexOf(`> ${typed}`);
    assert.ok(alice >= 0 && prompt === alice + 1, rows.join("\n"));
    assert.ok(rows.slice(prompt + 1).every((row) => row.trim() === ""), rows.join("\n"));
    const cursor = await tmux("display-message", "-p", "-t", "chat", "#{cursor_x} #{cursor_y}");
    assert.equal(cursor.stdout.trim(), `${displayWidth(`> ${typed}`)} ${prompt}`);

    // Enter sends the whole line; the screen shows it as carol's, timestamped.
    await tmux("send-keys", "-t", "chat", "Enter");
    assert.equal(await peer.lines.next(), typed);
    const after = await waitForPane(
      "the own line",
      (r) => r.some((row) => row.includes("<carol>")),
    );
    assert.ok(
      after.some((row) => /^\d\d:\d\d <carol> half typed 你好$/.test(row)),
      after.join("\n"),
    );
    assert.ok(!after.includes(`> ${typed}`), after.join("\n"));

    // /me is not echoed by the server either: shown as the room sees it.
    await tmux("send-keys", "-t", "chat", "-l", "/me waves");
    await tmux("send-keys", "-t", "chat", "Enter");
    assert.equal(await peer.lines.next(), "/me waves");
    await waitForPane("the action", (r) => r.some((row) => /^\d\d:\d\d \* carol waves$/.test(row)));

    // Ctrl+D on the empty prompt leaves: /quit, half-close, exit 0.
    await tmux("send-keys", "-t", "chat", "C-d");
    assert.equal(await peer.lines.next(), "/quit");
    await peer.lines.end();
    peer.conn.close();
    await waitForPane("exit=0", (r) => r.includes("exit=0"));
  } finally {
    await tmux("kill-server");
    await Deno.remove(socketDir, { recursive: true });
    await server.close();
  }
});
