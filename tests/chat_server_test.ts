// Black-box tests of chat_server.ts: real processes, real sockets, nc peers.

import assert from "node:assert/strict";
import {
  type ChatClient,
  type Client,
  connectClient,
  delay,
  joinChat,
  joinChatAs,
  presenceCounts,
  resetAfterSending,
  ROOT,
  runScript,
  send,
  type Server,
  spawnCommand,
  startServer,
  stopServer,
} from "./helpers.ts";

/** Connects and reads the three welcome lines; returns the guest nick too. */
function join(server: Server): Promise<ChatClient> {
  return joinChat(server.port);
}

function joinAs(server: Server, nick: string): Promise<ChatClient> {
  return joinChatAs(server.port, nick);
}

async function closeAll(server: Server, ...clients: Client[]) {
  for (const client of clients) await client.close();
  const status = await stopServer(server);
  assert.equal(status.code, 0, server.stderr.text);
}

/** A round trip through the server: every line sent before it has been handled. */
async function sync(client: Client) {
  await client.send("/who\n");
  await client.lines.waitFor(/^\* online/);
}

/**
 * Reads `conn` line by line without keeping the lines (these tests move
 * megabytes) until `onLine` returns true; `afterRead` runs after each read
 * with its byte count. Throws if the connection ends first.
 */
async function readLinesUntil(
  conn: Deno.Conn,
  onLine: (line: string) => boolean,
  afterRead?: (bytes: number) => Promise<void>,
): Promise<void> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  let seen = 0;
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`closed after ${seen} lines`);
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
    const parts = text.split("\n");
    text = parts.pop()!;
    for (const line of parts) {
      seen++;
      if (onLine(line)) return;
    }
    await afterRead?.(n);
  }
}

function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

Deno.test("chat: three clients each get exactly the others' lines, in order", async () => {
  const server = await startServer("chat_server.ts");
  const a = await joinAs(server, "alice");
  const b = await joinAs(server, "bob");
  const c = await joinAs(server, "carol");
  // A newcomer whose first line is /nick joins under that name.
  await a.lines.waitFor("* carol joined");
  await b.lines.waitFor("* carol joined");
  for (let i = 0; i < 20; i++) {
    await a.send(`a${i}\n`);
    await b.send(`b${i}\n`);
    await c.send(`c${i}\n`);
  }
  const expect = (from: string) => Array.from({ length: 20 }, (_, i) => `<${from}> ${from[0]}${i}`);
  const collect = async (client: Client, count: number) => {
    const got: string[] = [];
    while (got.length < count) got.push(await client.lines.next());
    return got;
  };
  const [gotA, gotB, gotC] = await Promise.all([collect(a, 40), collect(b, 40), collect(c, 40)]);
  const only = (lines: string[], nick: string) => lines.filter((l) => l.startsWith(`<${nick}>`));
  assert.deepEqual(only(gotA, "bob"), expect("bob"));
  assert.deepEqual(only(gotA, "carol"), expect("carol"));
  assert.deepEqual(only(gotA, "alice"), [], "no echo of one's own lines");
  assert.deepEqual(only(gotB, "alice"), expect("alice"));
  assert.deepEqual(only(gotB, "carol"), expect("carol"));
  assert.deepEqual(only(gotC, "alice"), expect("alice"));
  assert.deepEqual(only(gotC, "bob"), expect("bob"));
  await closeAll(server, a, b, c);
});

Deno.test("chat: join and leave notices, /who and the operator's log", async () => {
  const server = await startServer("chat_server.ts");
  const a = await join(server);
  const b = await join(server);
  assert.equal(await a.lines.next(), `* ${b.nick} joined`);
  await a.send("/who\n");
  assert.equal(await a.lines.next(), `* online (2): ${[a.nick, b.nick].sort().join(", ")}`);
  await b.close();
  assert.equal(await a.lines.next(), `* ${b.nick} left`);
  await server.stdout.waitFor(new RegExp(`^\\d\\d:\\d\\d:\\d\\d \\* ${b.nick} joined from 127`));
  await server.stdout.waitFor(new RegExp(`^\\d\\d:\\d\\d:\\d\\d \\* ${b.nick} left$`));
  await closeAll(server, a);
});

Deno.test("chat: nick rules", async () => {
  const server = await startServer("chat_server.ts");
  const a = await joinAs(server, "alice");
  const b = await join(server);
  const attempts: [string, RegExp][] = [
    ["/nick ALICE", /^! nick 'ALICE' is taken$/],
    ["/nick Server", /^! nick 'Server' is reserved$/],
    ["/nick bad name!", /^! invalid nick 'bad'|^! invalid nick 'bad name!'/],
    ["/nick " + "x".repeat(25), /^! invalid nick/],
    ["/nick a.b", /^! invalid nick 'a\.b'/],
    ["/nick", /^! usage: \/nick NAME$/],
    ["/nick 小明_2-x", /^\* you are now 小明_2-x$/],
    ["/nick 小明_2-x", /^\* you are already 小明_2-x$/],
  ];
  for (const [line, expected] of attempts) {
    await b.send(`${line}\n`);
    assert.match(await b.lines.next(), expected, line);
  }
  assert.equal(await a.lines.waitFor("is now"), `* ${b.nick} is now 小明_2-x`);
  await closeAll(server, a, b);
});

Deno.test("chat: /msg reaches only its target; /me; /help; unknown command", async () => {
  const server = await startServer("chat_server.ts");
  const a = await joinAs(server, "alice");
  const b = await joinAs(server, "bob");
  const c = await joinAs(server, "carol");
  await a.send("/msg BOB psst 你好\n");
  assert.equal(await b.lines.waitFor("(private)"), "<alice> (private) psst 你好");
  assert.equal(await a.lines.waitFor("private"), "* (private to bob) psst 你好");
  await a.send("/msg nobody hi\n");
  assert.equal(await a.lines.next(), "! no one called 'nobody' is online");
  await a.send("/me waves\n");
  assert.equal(await b.lines.next(), "* alice waves");
  assert.equal(await c.lines.waitFor("waves"), "* alice waves");
  await sync(c);
  assert.ok(!c.lines.text.includes("psst"), "carol must not see the private message");
  assert.ok(!server.stdout.text.includes("psst"), "the operator sees no private text");
  await a.send("/help\n");
  assert.equal(await a.lines.next(), "* commands:");
  await a.lines.waitFor("* anything else is sent to everyone");
  await a.send("/ping 42\n");
  assert.equal(await a.lines.next(), "* pong 42");
  await a.send("/frobnicate\n");
  assert.match(await a.lines.next(), /^! unknown command/);
  await closeAll(server, a, b, c);
});

Deno.test("chat: /quit says bye; EOF after commands still gets the answers", async () => {
  const server = await startServer("chat_server.ts");
  const a = await join(server);
  const nc = spawnCommand("nc", ["-N", "127.0.0.1", String(server.port)], { stdin: "piped" });
  await nc.write("/nick scripted\n/who\nhello\n");
  await nc.closeStdin(); // nc -N half-closes at EOF, then prints until we close
  await nc.stdout.waitFor("* you are now scripted");
  await nc.stdout.waitFor(/^\* online \(2\)/);
  assert.equal((await nc.exit()).code, 0);
  assert.equal(await a.lines.waitFor("<scripted>"), "<scripted> hello");
  assert.equal(await a.lines.next(), "* scripted left");
  await a.send("/quit\n");
  assert.equal(await a.lines.next(), "* bye");
  await a.lines.end();
  await closeAll(server, a);
});

Deno.test("chat: operator console lines reach everyone; /kick and /who work there", async () => {
  const server = await startServer("chat_server.ts", [], { stdin: "piped" });
  const a = await joinAs(server, "alice");
  const b = await joinAs(server, "bob");
  await server.write("大家好 from the operator\n");
  assert.equal(await a.lines.waitFor("<server>"), "<server> 大家好 from the operator");
  assert.equal(await b.lines.waitFor("<server>"), "<server> 大家好 from the operator");
  await server.write("/who\n");
  await server.stdout.waitFor(/^\d\d:\d\d:\d\d \* online \(2\): alice, bob$/);
  await server.write("/kick BOB\n");
  assert.equal(await b.lines.next(), "* you were kicked by the operator");
  await b.lines.end();
  assert.equal(await a.lines.waitFor("bob left"), "* bob left (kicked)");
  await server.write("/quit\n");
  assert.equal(await a.lines.next(), "* server shutting down");
  await a.lines.end();
  assert.equal((await server.exit()).code, 0);
  await a.close();
  await b.close();
});

Deno.test("chat: Chinese and emoji sent byte by byte arrive intact", async () => {
  const server = await startServer("chat_server.ts");
  const a = await joinAs(server, "alice");
  const b = await joinAs(server, "bob");
  a.conn.setNoDelay(true);
  const message = "你好，世界 👩‍💻🎉 ok";
  for (const byte of new TextEncoder().encode(`${message}\n`)) {
    await send(a.conn, new Uint8Array([byte]));
    await delay(2);
  }
  assert.equal(await b.lines.waitFor("<alice>"), `<alice> ${message}`);
  await closeAll(server, a, b);
});

Deno.test("chat: control characters are escaped, invalid UTF-8 becomes U+FFFD", async () => {
  const server = await startServer("chat_server.ts");
  const a = await joinAs(server, "alice");
  const b = await joinAs(server, "bob");
  await a.send("\x1b[2J\x1b]0;pwned\x07bell\rcr\x7f\u009b\ttab\n");
  assert.equal(
    await b.lines.waitFor("<alice>"),
    "<alice> \\x1b[2J\\x1b]0;pwned\\x07bell\\rcr\\x7f\\u009b\ttab",
  );
  await a.send(new Uint8Array([0x61, 0xff, 0xfe, 0x62, 0xe4, 0xbd, 0x0a])); // a, junk, b, cut 你
  assert.equal(await b.lines.next(), "<alice> a\uFFFD\uFFFDb\uFFFD");
  assert.ok(!server.stdout.text.includes("\x1b"), "the console never gets raw ESC");
  await closeAll(server, a, b);
});

Deno.test("chat: a line injected after \\n in one write cannot impersonate", async () => {
  const server = await startServer("chat_server.ts");
  const a = await joinAs(server, "alice");
  const b = await joinAs(server, "bob");
  await a.send("hi\n<bob> I owe alice $100\n* bob left\n");
  assert.equal(await b.lines.next(), "<alice> hi");
  assert.equal(await b.lines.next(), "<alice> <bob> I owe alice $100");
  assert.equal(await b.lines.next(), "<alice> * bob left");
  await closeAll(server, a, b);
});

Deno.test("chat: a run of lines in one write stays whole and in order around the commands in it", async () => {
  // Without flood control a run of plain lines goes to the room as one block
  // (Room.sayPlainLines); the commands between runs keep their places.
  const server = await startServer("chat_server.ts", ["--max-rate", "0"]);
  const a = await joinAs(server, "alice");
  const b = await joinAs(server, "bob");
  await a.send("one\ntwo\n/me waves\nthree\nfour\n/msg bob psst\nfive\n你好\nsix\n");
  for (
    const expected of [
      "<alice> one",
      "<alice> two",
      "* alice waves",
      "<alice> three",
      "<alice> four",
      "<alice> (private) psst",
      "<alice> five",
      "<alice> 你好",
      "<alice> six",
    ]
  ) assert.equal(await b.lines.next(), expected);
  await closeAll(server, a, b);
});

Deno.test("chat: an overlong line is refused, the connection stays", async () => {
  const server = await startServer("chat_server.ts", ["--max-line", "100"]);
  const a = await joinAs(server, "alice");
  const b = await joinAs(server, "bob");
  await a.lines.waitFor("* bob joined");
  await a.send("x".repeat(5000) + "\nstill here\n");
  assert.equal(await a.lines.next(), "! line too long (most 100 bytes); it was discarded");
  assert.equal(await b.lines.next(), "<alice> still here");
  await a.send("y".repeat(100) + "\r\n"); // exactly the limit is fine
  assert.equal(await b.lines.next(), `<alice> ${"y".repeat(100)}`);
  await closeAll(server, a, b);
});

Deno.test("chat: past --max-clients a newcomer is told and closed", async () => {
  const server = await startServer("chat_server.ts", ["--max-clients", "2"]);
  const a = await join(server);
  const b = await join(server);
  const c = await connectClient(server.port);
  assert.equal(await c.lines.next(), "! server full, try again later");
  await c.lines.end();
  await a.lines.waitFor(`${b.nick} joined`);
  await b.close();
  await a.lines.waitFor("left");
  const d = await join(server); // room again once someone left
  await closeAll(server, a, c, d);
});

Deno.test("chat: --idle-timeout closes silent clients", async () => {
  const server = await startServer("chat_server.ts", ["--idle-timeout", "1"]);
  const a = await join(server);
  const b = await join(server);
  const talker = setInterval(() => b.send("/who\n").catch(() => {}), 300);
  try {
    assert.equal(await a.lines.waitFor("idle"), "! idle for 1 s, disconnecting");
    await a.lines.end();
    assert.equal(await b.lines.waitFor(`${a.nick} left`), `* ${a.nick} left (idle)`);
  } finally {
    clearInterval(talker);
  }
  await closeAll(server, a, b);
});

// The floods below run with flood control off (--max-rate 0): they are about
// slow readers; flood control has its own test at the end.
Deno.test("chat: a reader that stops reading is dropped; the others get all 20 MB", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0", "--max-queue", "1048576"]);
  const sender = await joinAs(server, "sender");
  const reader = await joinAs(server, "reader");
  const slow = await Deno.connect({ port: server.port }); // never reads
  await send(slow, "/nick slow\n");
  await reader.lines.waitFor("* slow joined");
  const rssBefore = rssKiB(server.child.pid);
  const line = "z".repeat(1000);
  const lines = 20_000; // ~20 MB
  let received = 0;
  const counting = (async () => {
    while (received < lines) {
      const got = await reader.lines.next(20_000);
      if (got.startsWith("<sender>")) {
        assert.equal(got, `<sender> ${line}`);
        received++;
      }
    }
  })();
  const batch = `${line}\n`.repeat(100);
  for (let i = 0; i < lines / 100; i++) await sender.send(batch);
  await counting;
  assert.equal(received, lines);
  assert.equal(await sender.lines.waitFor("slow left"), "* slow left (too slow)");
  // The queue is capped at --max-queue; the rest of any growth is garbage
  // the V8 heap has not collected yet. A queue that kept the slow client's
  // 20 MB (plus its copies) would blow well past this.
  const rssGrowth = rssKiB(server.child.pid) - rssBefore;
  assert.ok(rssGrowth < 64 * 1024, `server RSS grew by ${rssGrowth} KiB`);
  reader.lines.lines.length = 0; // the reader kept 20 MB of text for the asserts
  slow.close();
  await closeAll(server, sender, reader);
});

// A reader that stops for a moment now and then (a busy machine, a GC
// pause) falls behind a flood by far more than --max-queue: the room waits
// for it (TCP slows the sender) as long as it took something in the last
// 100 ms, while one that stopped for good is dropped as before.
Deno.test("chat: a reader that pauses during a flood is waited for; one that stopped is dropped", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0", "--max-queue", "65536"]);
  const sender = await joinAs(server, "sender");
  const behind = await Deno.connect({ port: server.port }); // reads, with pauses
  const stuck = await Deno.connect({ port: server.port }); // never reads
  await send(stuck, "/nick stuck\n");
  await sender.lines.waitFor("* stuck joined");
  const lines = 12_000; // ~12 MB: more than the kernel's buffers hold
  const pad = "y".repeat(1000);
  let next = 0;
  let taken = 0;
  const reading = readLinesUntil(behind, (line) => {
    if (!line.startsWith("<sender> ")) return false;
    assert.equal(line, `<sender> ${next} ${pad}`, "lines whole and in order");
    return ++next === lines;
  }, async (bytes) => {
    taken += bytes;
    if (taken > 1024 * 1024) {
      taken = 0;
      await delay(20); // a pause: a megabyte or more of the flood piles up meanwhile
    }
  });
  for (let i = 0; i < lines; i += 500) {
    await sender.send(
      Array.from({ length: 500 }, (_, k) => `${i + k} ${pad}\n`).join(""),
    );
  }
  await reading;
  assert.equal(next, lines);
  assert.equal(await sender.lines.waitFor("stuck left"), "* stuck left (too slow)");
  assert.doesNotMatch(
    sender.lines.text,
    /guest\d+ left \(too slow\)/,
    "the pausing reader was kept",
  );
  behind.close();
  stuck.close();
  sender.lines.lines.length = 0;
  await closeAll(server, sender);
});

Deno.test("chat: a reader far behind gets its queued lines intact while the room goes on", async () => {
  // Lines wait in a reader's queue as views of the bytes they were encoded
  // into, shared with every other queue. A reader that stopped keeps them for
  // as long as it likes while the room goes on encoding other lines (private
  // ones here, which it must never see): what it reads at last is what was
  // queued for it.
  const server = await startServer("chat_server.ts", [
    "--max-rate",
    "0",
    "--max-queue",
    String(64 * 1024 * 1024),
  ]);
  const alice = await joinAs(server, "alice");
  const bob = await Deno.connect({ port: server.port }); // reads and counts alice's private lines
  const behind = await Deno.connect({ port: server.port }); // reads only at the end
  await send(behind, "/nick behind\n");
  await alice.lines.waitFor("* behind joined");
  await send(bob, "/nick bob\n");
  await alice.lines.waitFor("* bob joined");
  const pad = "p".repeat(1000);
  const secret = "s".repeat(1000);
  const broadcasts = 10_000; // ~10 MB: more than the kernel buffers hold, the rest is queued
  const whispers = 4_000; // ~4 MB of private lines, encoded while behind waits
  let whispered = 0;
  const bobReads = readLinesUntil(
    bob,
    (line) => line.startsWith("<alice> (private) ") && ++whispered === whispers,
  );
  for (let i = 0; i < broadcasts; i += 500) {
    await alice.send(Array.from({ length: 500 }, (_, k) => `${i + k} ${pad}\n`).join(""));
  }
  for (let i = 0; i < whispers; i += 500) {
    await alice.send(
      Array.from({ length: 500 }, (_, k) => `/msg bob ${i + k} ${secret}\n`).join(""),
    );
  }
  await bobReads; // every private line was written
  let next = 0;
  await readLinesUntil(behind, (line) => {
    if (line.startsWith("* ")) return false;
    assert.equal(line, `<alice> ${next} ${pad}`, "a queued line came out as it was queued");
    return ++next === broadcasts;
  });
  assert.equal(next, broadcasts);
  bob.close();
  behind.close();
  alice.lines.lines.length = 0;
  await closeAll(server, alice);
});

Deno.test("chat: resets mid-line and garbage end that peer only", async () => {
  const server = await startServer("chat_server.ts");
  const a = await joinAs(server, "alice");
  for (let i = 0; i < 5; i++) {
    const reset = await resetAfterSending(server.port, "half a li");
    assert.equal(reset.code, 0, reset.stderr);
  }
  const garbage = await connectClient(server.port);
  await garbage.send(crypto.getRandomValues(new Uint8Array(30_000)));
  await garbage.close();
  await sync(a);
  const b = await joinAs(server, "bob");
  await b.send("still fine\n");
  assert.equal(await a.lines.waitFor("<bob>"), "<bob> still fine");
  assert.ok(!a.lines.text.includes("half a li"), "a fragment without its newline is no line");
  await closeAll(server, a, b);
});

Deno.test("chat: 500 clients join and leave concurrently", async () => {
  const server = await startServer("chat_server.ts");
  const watcher = await joinAs(server, "watcher");
  const clients = await Promise.all(Array.from({ length: 500 }, () => join(server)));
  // Told to the others once each joins' wait (for a first /nick) is over.
  for (let i = 0; i < 100 && presenceCounts(watcher.lines.lines).joined < 500; i++) {
    await delay(50);
  }
  await Promise.all(clients.map((c) => c.close()));
  await sync(watcher);
  let online = "";
  for (let i = 0; i < 50 && online !== "* online (1): watcher"; i++) {
    await delay(100);
    await watcher.send("/who\n");
    online = await watcher.lines.waitFor(/^\* online/);
  }
  assert.equal(online, "* online (1): watcher");
  assert.deepEqual(presenceCounts(watcher.lines.lines), { joined: 500, left: 500 });
  await closeAll(server, watcher);
});

Deno.test("chat: in a room of over 200, joins and leaves come batched, once each, in order", async () => {
  const server = await startServer("chat_server.ts");
  const watcher = await joinAs(server, "watcher");
  const crowd = await Promise.all(Array.from({ length: 210 }, () => join(server)));
  const newcomer = await join(server); // the room is big now: its join is batched
  await newcomer.send("hi\n"); // at once: its join notice must still come first
  const hi = `<${newcomer.nick}> hi`;
  await watcher.lines.waitFor(hi);
  await sync(newcomer);
  // The silent crowd is announced once its wait for a first /nick is over.
  for (let i = 0; i < 100 && presenceCounts(watcher.lines.lines).joined < 211; i++) {
    await delay(50);
  }
  const seen = watcher.lines.lines;
  for (const client of [...crowd, newcomer]) {
    const notices = seen.filter((l) => l === `* ${client.nick} joined`);
    assert.equal(notices.length, 1, `${client.nick} joined: ${notices.length} times`);
  }
  assert.ok(seen.indexOf(`* ${newcomer.nick} joined`) < seen.indexOf(hi), "join before its line");
  assert.deepEqual(
    presenceCounts(newcomer.lines.lines),
    { joined: 0, left: 0 },
    "no one is told of joins before theirs",
  );
  await Promise.all(crowd.map((c) => c.close()));
  let online = "";
  for (let i = 0; i < 50 && !online.startsWith("* online (2)"); i++) {
    await delay(100);
    await watcher.send("/who\n"); // an answer never overtakes the leaves before it
    online = await watcher.lines.waitFor(/^\* online/);
  }
  // 210 leaves at once, each named once (a room this size names everyone).
  const leaves = watcher.lines.lines.filter((l) => /^\* guest\d+ left$/.test(l));
  assert.equal(leaves.length, 210);
  assert.equal(new Set(leaves).size, 210);
  await closeAll(server, watcher, newcomer);
});

Deno.test("chat: in a room of over 1,000, a batch names ten joins and counts the rest", async () => {
  const server = await startServer("chat_server.ts");
  const watcher = await joinAs(server, "watcher");
  const crowd: Deno.TcpConn[] = []; // they never read: the kernel keeps what they are sent
  for (let i = 0; i < 1050; i += 50) {
    const port = server.port;
    crowd.push(...await Promise.all(Array.from({ length: 50 }, () => Deno.connect({ port }))));
  }
  let counts = { joined: 0, left: 0 };
  for (let i = 0; i < 100 && counts.joined < 1050; i++) {
    await delay(100);
    counts = presenceCounts(watcher.lines.lines);
  }
  assert.equal(counts.joined, 1050, "every join told once, named or counted");
  const seen = watcher.lines.lines;
  assert.ok(seen.some((l) => /^\* \d+ more joined \(\/who lists everyone\)$/.test(l)));
  const named = seen.filter((l) => /^\* guest\d+ joined$/.test(l)).length;
  assert.ok(named < 1050, `${named} joins named: none was counted`);
  for (const conn of crowd) conn.close();
  watcher.lines.lines.length = 0;
  await closeAll(server, watcher);
});

Deno.test("chat: a console log nobody reads costs at most 1 MiB and never stalls the room", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}chat_server.ts`, "--port", "0", "--max-rate", "0"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr = child.stderr.pipeTo(new WritableStream());
  const out = child.stdout.getReader();
  let head = "";
  while (!head.includes("\n")) head += new TextDecoder().decode((await out.read()).value);
  const port = Number(/^listening on 127\.0\.0\.1:(\d+)$/m.exec(head)![1]);
  // From here on nobody reads the server's stdout: the pipe fills at once.
  const watcher = await joinChatAs(port, "watcher");
  const sender = await joinChat(port);
  const line = "x".repeat(1000);
  for (let i = 0; i < 40; i++) await sender.send(`${line}\n`.repeat(100));
  await sender.send("/ping flooded\n");
  assert.equal(await sender.lines.waitFor(/pong/, 20_000), "* pong flooded");
  await sync(watcher);
  assert.equal(watcher.lines.lines.filter((l) => l.startsWith(`<${sender.nick}> x`)).length, 4000);
  await sender.close();
  await watcher.close();
  child.kill("SIGTERM");
  let logged = 0;
  let tail = "";
  let saidSo = false; // a line says how many were dropped, wherever it falls
  const dropped = /\(\d+ console lines dropped: stdout did not keep up\)/;
  for (let chunk = await out.read(); !chunk.done; chunk = await out.read()) {
    logged += chunk.value.length;
    tail = (tail + new TextDecoder().decode(chunk.value)).slice(-100_000);
    saidSo ||= dropped.test(tail);
  }
  await stderr;
  assert.equal((await child.status).code, 0);
  assert.ok(logged < 2.5 * 1024 * 1024, `${logged} bytes logged of 4 MB of chat`);
  assert.ok(saidSo, "no line said how many console lines were dropped");
});

Deno.test("chat: SIGTERM tells everyone and exits 0", async () => {
  const server = await startServer("chat_server.ts");
  const a = await join(server);
  const b = await join(server);
  server.kill("SIGTERM");
  assert.equal(await a.lines.waitFor("shutting"), "* server shutting down");
  assert.equal(await b.lines.waitFor("shutting"), "* server shutting down");
  await a.lines.end();
  await b.lines.end();
  assert.equal((await server.exit()).code, 0);
  await a.close();
  await b.close();
});

Deno.test("chat: a plain nc client chats with a TCP client", async () => {
  const server = await startServer("chat_server.ts");
  const a = await joinAs(server, "alice");
  const nc = spawnCommand("nc", ["127.0.0.1", String(server.port)], { stdin: "piped" });
  const ncNick = /^\* welcome, you are (guest\d+)$/.exec(await nc.stdout.next())![1];
  await a.lines.waitFor("joined");
  await nc.write("hello from nc 你好\n");
  assert.equal(await a.lines.next(), `<${ncNick}> hello from nc 你好`);
  await a.send("hi nc\n");
  assert.equal(await nc.stdout.waitFor("<alice>"), "<alice> hi nc");
  nc.kill("SIGTERM");
  await nc.exit();
  assert.equal(await a.lines.next(), `* ${ncNick} left`);
  await closeAll(server, a);
});

Deno.test("chat: runs with stdin at EOF (< /dev/null)", async () => {
  const server = await startServer("chat_server.ts"); // stdin is null here
  await delay(200);
  const a = await join(server);
  await closeAll(server, a);
});

Deno.test("chat: port in use, bad flags, --help", async () => {
  const first = await startServer("chat_server.ts");
  const busy = await runScript("chat_server.ts", ["--port", String(first.port)]);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /^error: cannot listen on .*choose another --port/);
  await stopServer(first);
  for (
    const args of [["--max-line", "0"], ["--idle-timeout", "-1"], ["--idle-timeout=-1"], ["--nope"]]
  ) {
    const bad = await runScript("chat_server.ts", args);
    assert.equal(bad.code, 2, args.join(" "));
    assert.match(bad.stderr, /^error: .*\nusage: deno run -A chat_server\.ts/);
  }
  const help = await runScript("chat_server.ts", ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--max-queue BYTES/);
});

Deno.test("chat: a newcomer gets the recent public lines after its welcome, as they were said", async () => {
  const server = await startServer("chat_server.ts", ["--history", "3"], { stdin: "piped" });
  const a = await joinAs(server, "alice");
  const first = await join(server);
  assert.deepEqual(first.history, [], "no history yet: nothing at all");
  const b = await joinAs(server, "bob");
  await a.send("one\n你好 two\n/me waves\n/msg bob never replayed\n");
  await b.lines.waitFor("* alice waves");
  await server.write("four from the operator\n");
  await b.lines.waitFor("<server> four");
  // A raw client sees the exact lines on the wire.
  const raw = await connectClient(server.port);
  const seen: string[] = [];
  while (seen.at(-1) !== "* end of recent messages") seen.push(await raw.lines.next());
  assert.deepEqual(seen.slice(3), [
    "* recent messages:",
    "<alice> 你好 two",
    "* alice waves",
    "<server> four from the operator",
    "* end of recent messages",
  ]);
  await closeAll(server, a, first, b, raw);
});

Deno.test("chat: --history 0 turns the replay off; a bad value is a usage error", async () => {
  const server = await startServer("chat_server.ts", ["--history", "0"]);
  const a = await join(server);
  await a.send("hello\n");
  await sync(a);
  const b = await join(server);
  await b.send("/ping done\n");
  assert.equal(await b.lines.next(), "* pong done", "nothing between the welcome and the answer");
  await closeAll(server, a, b);
  const bad = await runScript("chat_server.ts", ["--history", "-1"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error: --history must be a whole number 0-10000, got '-1'/);
});

Deno.test("chat: --motd: its lines come with the welcome, before the history, each a notice", async () => {
  const motd = await Deno.makeTempFile({ suffix: ".txt" });
  try {
    await Deno.writeTextFile(motd, "Welcome to the lobby!\r\n\nBe nice. \x1b[31mred\n");
    const server = await startServer("chat_server.ts", ["--motd", motd]);
    const a = await join(server);
    await a.send("hello\n");
    await sync(a);
    const raw = await connectClient(server.port);
    const seen: string[] = [];
    while (seen.at(-1) !== "* end of recent messages") seen.push(await raw.lines.next());
    assert.deepEqual(seen.slice(2), [
      "* type /help for commands; lines up to 4096 bytes",
      "* Welcome to the lobby!",
      "*",
      "* Be nice. \\x1b[31mred",
      "* recent messages:",
      `<${a.nick}> hello`,
      "* end of recent messages",
    ]);
    await closeAll(server, a, raw);
  } finally {
    await Deno.remove(motd);
  }
  const missing = await runScript("chat_server.ts", ["--motd", "/no/such/motd"]);
  assert.equal(missing.code, 2);
  assert.match(
    missing.stderr,
    /^error: --motd \/no\/such\/motd: cannot read it \(no such file\)\n/,
  );
});

Deno.test("chat: --password-file: nothing but the prompt until /pass; 3 wrong ones close", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "open sesame 芝麻\nignored second line\n");
    const server = await startServer("chat_server.ts", ["--password-file", file]);
    const member = await connectClient(server.port);
    assert.equal(await member.lines.next(), "* password required: /pass PASSWORD");
    await member.send("/pass open sesame 芝麻\n");
    assert.equal(await member.lines.next(), "* welcome, you are guest1");
    await member.lines.waitFor("* type /help");
    await member.send("/nick alice\n");
    await member.lines.waitFor("* you are now alice");

    const stranger = await connectClient(server.port);
    assert.equal(await stranger.lines.next(), "* password required: /pass PASSWORD");
    await stranger.send("hello?\n/who\n/pass wrong\n");
    assert.equal(await stranger.lines.next(), "* password required: /pass PASSWORD");
    assert.equal(await stranger.lines.next(), "* password required: /pass PASSWORD");
    assert.equal(await stranger.lines.next(), "! wrong password");
    await member.send("/ping fence\n");
    await member.lines.waitFor("* pong fence");
    await stranger.send("/pass Open Sesame 芝麻\n/pass\n");
    assert.equal(await stranger.lines.next(), "! wrong password");
    assert.equal(await stranger.lines.next(), "! wrong password", "the third too");
    await stranger.lines.end(); // then closed
    assert.deepEqual(stranger.lines.lines.filter((l) => !l.startsWith("* password")), [
      "! wrong password",
      "! wrong password",
      "! wrong password",
    ]);
    await member.send("/ping after\n");
    await member.lines.waitFor("* pong after");
    assert.ok(!member.lines.text.includes("hello?"), "a stranger's lines are not relayed");
    assert.ok(!member.lines.text.includes("joined"), "nor is it announced");
    await closeAll(server, member, stranger);
    assert.ok(!server.stdout.text.includes("sesame"), "the password is never logged");
    assert.match(server.stdout.text, /gave a wrong password 3 times; disconnected/);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("chat: --password-file: an empty or missing file is a usage error", async () => {
  const empty = await Deno.makeTempFile();
  try {
    const [missing, blank] = await Promise.all([
      runScript("chat_server.ts", ["--password-file", "/no/such/file"]),
      runScript("chat_server.ts", ["--password-file", empty]),
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^error: --password-file \/no\/such\/file: cannot read it/);
    assert.equal(blank.code, 2);
    assert.match(blank.stderr, /^error: --password-file .*: its first line is empty/);
  } finally {
    await Deno.remove(empty);
  }
});

Deno.test("chat: --max-rate: a flooder is slowed, told once, loses nothing; the room stays quick", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "20"]);
  const flooder = await joinAs(server, "flooder");
  const other = await joinAs(server, "other");
  const reader = await joinAs(server, "reader");
  const started = Date.now();
  // 40 go at once (the burst), the next 20 at 20 a second: about a second.
  await flooder.send(Array.from({ length: 60 }, (_, i) => `flood ${i}\n`).join(""));
  await reader.lines.waitFor("<flooder> flood 45");
  const asked = Date.now();
  await other.send("still here\n");
  assert.equal(await reader.lines.waitFor("<other>"), "<other> still here");
  assert.ok(Date.now() - asked < 300, "another client's line is not held behind the flood");
  await reader.lines.waitFor("<flooder> flood 59");
  const took = Date.now() - started;
  assert.ok(took >= 800, `60 lines at 20 a second (burst 40) took ${took} ms`);
  const flood = reader.lines.lines.filter((l) => l.startsWith("<flooder>"));
  assert.deepEqual(flood, Array.from({ length: 60 }, (_, i) => `<flooder> flood ${i}`));
  await flooder.send("/ping done\n");
  await flooder.lines.waitFor("* pong done");
  assert.deepEqual(
    flooder.lines.lines.filter((l) => l.startsWith("!")),
    ["! slow down: at most 20 lines a second"],
    "told once",
  );
  await closeAll(server, flooder, other, reader);
});

Deno.test("chat: operator /ban, /bans, /unban and /mute, as nc clients see them", async () => {
  const server = await startServer("chat_server.ts", [], { stdin: "piped" });
  const alice = await joinAs(server, "alice");
  const troll = await joinAs(server, "troll");
  await alice.lines.waitFor("* troll joined");
  await server.write("/mute troll\n");
  await server.stdout.waitFor("* troll is muted");
  await troll.send("spam\n/me spams\n/msg alice psst\n");
  assert.equal(await troll.lines.next(), "! you are muted");
  assert.equal(await troll.lines.next(), "! you are muted");
  assert.equal(await troll.lines.next(), "! you are muted");
  await server.write("/ban troll\n");
  assert.equal(await troll.lines.next(), "! you are banned");
  await troll.lines.end();
  assert.equal(await alice.lines.waitFor("troll left"), "* troll left (banned)");
  assert.ok(!alice.lines.text.includes("spam") && !alice.lines.text.includes("psst"));
  await server.stdout.waitFor("* banned 127.0.0.1 (troll was there); /unban 127.0.0.1 undoes it");
  const refused = await connectClient(server.port);
  assert.equal(await refused.lines.next(), "! you are banned");
  await refused.lines.end();
  await alice.send("/ping still\n");
  assert.equal(await alice.lines.waitFor("pong"), "* pong still", "those already in stay");
  await server.write("/bans\n/unban 127.0.0.1\n/bans\n");
  await server.stdout.waitFor("* banned (1): 127.0.0.1");
  await server.stdout.waitFor("* unbanned 127.0.0.1");
  await server.stdout.waitFor("* no one is banned");
  const welcome = await join(server);
  await closeAll(server, alice, troll, refused, welcome);
});
