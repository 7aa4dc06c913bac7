// Hostile peers against chat_server.ts: idle hordes, endless lines, random
// bytes, /nick floods and races, connect-then-reset storms. After each case
// a fresh client must still be answered, nothing the hostile peers said may
// be lost or reach others unsanitised, no file descriptor may stay open, and
// the server's resident memory must settle back near where it started.
//
// Memory, as measured (Deno 2.9, V8 15): a fresh server sits at ~40 MB RSS.
// Ordinary chat grows V8's heap to its working size, so "where it started"
// is the RSS after a warm-up of ordinary chat and 100 clients coming and
// going (~75-85 MB; the cold figure is printed too). Nothing can force a GC
// from outside, so RSS is polled for up to 6 s after each case and the
// minimum taken; it must be within 20% of the start. Except for the two
// cases that relay megabytes of escaped text (4 MB of random lines become
// ~11 MB for the watcher; garbage likewise): V8 keeps the heap it grew for
// that (in a diagnostic run with --expose-gc the JS heap in use was back at
// its baseline after a GC, repeating the case did not grow RSS further, and
// V8's memory reducer returned most of it after ~25 s idle), so within the
// test's window their RSS ends 1-34% above the start. For them the bound is
// the start plus V8's largest young generation (3 x 16 MiB semi-spaces), and
// the figures are printed. That bound only catches gross growth; the soak
// (bench/soak.ts: RSS flat through its second half) is the finer leak check.

import assert from "node:assert/strict";
import { sanitizeText } from "../lib/peer_text.ts";
import {
  type ChatClient,
  type Client,
  delay,
  joinChat,
  joinChatAs,
  LineReader,
  readableOf,
  run,
  type Server,
  startServer,
  stopServer,
} from "./helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { ignoreBOM: true }); // as utils.ts decodes

const join = (port: number) => joinChat(port);
const joinAs = (port: number, nick: string) => joinChatAs(port, nick, { amidOthers: true });

/** Asks /who until it reports `count` online (bounded); returns the line. */
async function waitForOnline(client: Client, count: number, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let line = "";
  while (Date.now() < deadline) {
    await client.send("/who\n");
    line = await client.lines.waitFor(/^\* online/, 10_000);
    if (line.startsWith(`* online (${count}):`)) return line;
    await delay(100);
  }
  throw new Error(`still ${line} after ${timeoutMs} ms, want ${count}`);
}

function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

function fdCount(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

/**
 * The server's RSS once things settled: polled for up to `windowMs`, the
 * minimum seen (V8 returns memory on its own schedule; nothing is forced).
 */
async function settledRss(pid: number, limitKiB: number, windowMs = 6000): Promise<number> {
  const deadline = Date.now() + windowMs;
  let min = rssKiB(pid);
  while (min > limitKiB && Date.now() < deadline) {
    await delay(100);
    min = Math.min(min, rssKiB(pid));
  }
  return min;
}

interface Battery {
  server: Server;
  watcher: ChatClient;
  rssCold: number;
  rssStart: number;
  fdsStart: number;
}

/** A server, a watcher who sees everything, and the RSS and fds to come back to. */
async function setUp(args: string[] = []): Promise<Battery> {
  // Flood control off: these peers are hostile in other ways; --max-rate has its own test.
  const server = await startServer("chat_server.ts", ["--max-rate", "0", ...args]);
  const rssCold = rssKiB(server.child.pid);
  const watcher = await joinAs(server.port, "watcher");
  // Ordinary chat first: 20,000 lines of ~300 bytes, relayed to the watcher.
  const warm = await join(server.port);
  const chatter = `${"warm-up 你好 ".repeat(20)}\n`.repeat(100);
  for (let i = 0; i < 200; i++) await warm.send(`${chatter}/who\n`);
  await warm.send("/ping warm\n");
  await warm.lines.waitFor("pong warm", 20_000);
  await warm.close();
  // And ordinary comings and goings: 100 clients join and leave.
  const visitors = await Promise.all(Array.from({ length: 100 }, () => join(server.port)));
  for (const visitor of visitors) await visitor.close();
  await waitForOnline(watcher, 1);
  await delay(300);
  return {
    server,
    watcher,
    rssCold,
    rssStart: await settledRss(server.child.pid, 0, 1000),
    fdsStart: fdCount(server.child.pid),
  };
}

/** V8's largest young generation on 64-bit: 3 x 16 MiB semi-spaces. */
const HIGH_WATER_KIB = 48 * 1024;

/**
 * After a case: a fresh client is answered, no descriptor stayed open, and
 * RSS settled within 20% of the start (or, for a case that relays megabytes,
 * within the start plus V8's young generation: see the top of the file).
 */
async function tearDown(
  battery: Battery,
  label: string,
  memory: "within 20%" | "high-water" = "within 20%",
): Promise<void> {
  const { server, watcher } = battery;
  const fresh = await joinAs(server.port, "fresh");
  await fresh.send("/ping after\n");
  assert.equal(await fresh.lines.waitFor("pong", 10_000), "* pong after");
  await fresh.close();
  await waitForOnline(watcher, 1);
  const pid = server.child.pid;
  const within20 = Math.round(battery.rssStart * 1.2);
  const limit = memory === "within 20%" ? within20 : battery.rssStart + HIGH_WATER_KIB;
  const rss = await settledRss(pid, within20); // the full window unless within 20%
  const fds = fdCount(pid);
  const ratio = ((rss / battery.rssStart - 1) * 100).toFixed(0);
  console.log(
    `  ${label}: RSS cold ${battery.rssCold}, start ${battery.rssStart}, settled ${rss} KiB ` +
      `(${
        ratio.startsWith("-") ? "" : "+"
      }${ratio}%, limit ${limit}); fds ${battery.fdsStart} -> ${fds}`,
  );
  assert.ok(rss <= limit, `${label}: RSS ${rss} KiB, started at ${battery.rssStart} KiB`);
  assert.ok(fds <= battery.fdsStart, `${label}: ${fds} fds open, started with ${battery.fdsStart}`);
  watcher.lines.lines.length = 0;
  await watcher.close();
  const status = await stopServer(server);
  assert.equal(status.code, 0, server.stderr.text);
}

/** What the watcher must see from `nick` for the bytes it sent: the reference. */
function expectedRelay(stream: Uint8Array, nick: string, maxLine = 4096): string[] {
  return relayPlan(stream, nick, maxLine).map((entry) => entry.line);
}

/** The reference, with the stream offset at which each relayed line is complete. */
function relayPlan(stream: Uint8Array, nick: string, maxLine = 4096) {
  const plan: { line: string; end: number }[] = [];
  for (let start = 0;;) {
    const newline = stream.indexOf(0x0a, start);
    if (newline === -1) return plan;
    let bytes = stream.subarray(start, newline);
    start = newline + 1;
    if (bytes.at(-1) === 0x0d) bytes = bytes.subarray(0, -1);
    if (bytes.length > maxLine) continue; // "! line too long", to the sender only
    const line = sanitizeText(decoder.decode(bytes));
    if (line.trim() === "" || line.startsWith("/")) continue; // nothing, or a command
    plan.push({ line: `<${nick}> ${line}`, end: start });
  }
}

/**
 * Sends `stream` in pieces of `step` bytes, each time waiting until the
 * watcher has every line completed so far. The content is hostile, not the
 * pace: escaped, 4 MB of random bytes become ~11 MB for each reader, and a
 * reader that falls behind by 1 MiB is dropped (see the finding at the end).
 */
async function sendPaced(sender: ChatClient, watcher: Client, stream: Uint8Array, step: number) {
  const plan = relayPlan(stream, sender.nick);
  let due = 0;
  for (let offset = 0; offset < stream.length; offset += step) {
    const end = Math.min(stream.length, offset + step);
    await sender.send(stream.subarray(offset, end));
    while (due < plan.length && plan[due].end <= end) due++;
    await waitForCount(watcher, sender.nick, due);
  }
}

function from(client: Client, nick: string): string[] {
  return client.lines.lines.filter((l) => l.startsWith(`<${nick}> `));
}

/**
 * Waits (bounded) until `client` has `count` lines from `nick`; scans only
 * what arrived since the last look, so the waiting never slows the reading.
 */
async function waitForCount(client: Client, nick: string, count: number, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  const prefix = `<${nick}> `;
  let seen = 0;
  let scanned = 0;
  while (seen < count && Date.now() < deadline) {
    const lines = client.lines.lines;
    for (; scanned < lines.length; scanned++) if (lines[scanned].startsWith(prefix)) seen++;
    if (seen < count) await delay(50);
  }
}

// ----------------------------------------------------------------- cases ---

Deno.test("hostile: 200 connections that never send are held; the room stays open", async () => {
  const battery = await setUp();
  const silent = await Promise.all(
    Array.from(
      { length: 200 },
      () => Deno.connect({ hostname: "127.0.0.1", port: battery.server.port }),
    ),
  );
  try {
    // While they sit there, the room works and counts them.
    const probe = await joinAs(battery.server.port, "probe");
    await probe.send("/ping busy\n");
    assert.equal(await probe.lines.waitFor("pong"), "* pong busy");
    await waitForOnline(battery.watcher, 202);
    await probe.close();
  } finally {
    for (const conn of silent) conn.close();
  }
  await tearDown(battery, "200 silent");
});

Deno.test("hostile: 50 MB without a newline is refused once, never buffered", async () => {
  const battery = await setUp();
  const { server, watcher } = battery;
  const flooder = await join(server.port);
  const chunk = encoder.encode("x".repeat(1024 * 1024));
  let peak = rssKiB(server.child.pid);
  for (let i = 0; i < 50; i++) {
    await flooder.send(chunk);
    if (i % 5 === 0) peak = Math.max(peak, rssKiB(server.child.pid));
  }
  await flooder.send("\nstill here\n");
  assert.equal(
    await flooder.lines.next(20_000),
    "! line too long (most 4096 bytes); it was discarded",
  );
  assert.equal(
    await watcher.lines.waitFor(`<${flooder.nick}>`, 20_000),
    `<${flooder.nick}> still here`,
  );
  assert.equal(
    flooder.lines.lines.filter((l) => l.includes("too long")).length,
    1,
    "reported once",
  );
  const growth = peak - battery.rssStart;
  console.log(`  50 MB flood: peak RSS growth ${growth} KiB`);
  assert.ok(growth < 25 * 1024, `RSS grew by ${growth} KiB while 50 MB arrived`);
  await flooder.close();
  await tearDown(battery, "50 MB line");
});

Deno.test("hostile: 1,000 lines of 4,000 random bytes are relayed sanitised, all, in order", async () => {
  const battery = await setUp();
  const { server, watcher } = battery;
  const sender = await join(server.port);
  const lines: Uint8Array[] = [];
  for (let i = 0; i < 1000; i++) {
    const line = crypto.getRandomValues(new Uint8Array(4001));
    line.set(encoder.encode(`L${String(i).padStart(4, "0")} `));
    for (let j = 6; j < 4000; j++) if (line[j] === 0x0a) line[j] = 0x20;
    line[4000] = 0x0a;
    lines.push(line);
  }
  const stream = new Uint8Array(1000 * 4001);
  lines.forEach((line, i) => stream.set(line, i * 4001));
  const expected = expectedRelay(stream, sender.nick);
  assert.equal(expected.length, 1000);
  await sendPaced(sender, watcher, stream, 50 * 4001);
  const got = from(watcher, sender.nick);
  assert.equal(got.length, 1000);
  for (let i = 0; i < 1000; i++) assert.equal(got[i], expected[i], `line ${i}`);
  // deno-lint-ignore no-control-regex
  assert.ok(!/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(got.join("")), "no raw control character");
  await sender.close();
  await tearDown(battery, "1000 random lines", "high-water");
});

Deno.test("hostile: binary garbage from 4 peers at once: every line accounted for", async () => {
  const battery = await setUp();
  const { server, watcher } = battery;
  const peers = await Promise.all(Array.from({ length: 4 }, () => join(server.port)));
  const garbage = peers.map(() => {
    const bytes = new Uint8Array(512 * 1024);
    for (let i = 0; i < bytes.length; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, i + 65536));
    }
    bytes[bytes.length - 1] = 0x0a;
    return bytes;
  });
  const expectations = peers.map((peer, i) => expectedRelay(garbage[i], peer.nick));
  await Promise.all(peers.map((peer, i) => sendPaced(peer, watcher, garbage[i], 32 * 1024)));
  for (let i = 0; i < peers.length; i++) {
    const expected = expectations[i];
    const got = from(watcher, peers[i].nick);
    assert.ok(!watcher.lines.text.includes("(too slow)"), "no one was dropped as too slow");
    assert.equal(got.length, expected.length, `${peers[i].nick}: line count`);
    for (let j = 0; j < expected.length; j++) assert.equal(got[j], expected[j], `line ${j}`);
  }
  for (const peer of peers) await peer.close();
  await tearDown(battery, "binary garbage", "high-water");
});

Deno.test("hostile: a 10,000-line /nick flood, then nick races: exactly one wins each", async () => {
  const battery = await setUp();
  const { server, watcher } = battery;
  const flooder = await joinAs(server.port, "flood");
  let burst = "";
  for (let i = 0; i < 10_000; i++) burst += i % 10 === 9 ? `/nick bad!${i}\n` : `/nick f${i}\n`;
  await flooder.send(burst);
  await flooder.lines.waitFor("* you are now f9998", 20_000);
  await watcher.lines.waitFor("is now f9998", 20_000);
  const renames = watcher.lines.lines.filter((l) => / is now f\d+$/.test(l));
  assert.equal(renames.length, 9000);
  assert.equal(renames.at(-1), "* f9997 is now f9998");
  assert.equal(flooder.lines.lines.filter((l) => l.startsWith("! invalid nick")).length, 1000);

  // Two clients claim the same name at once, 200 times; then 10 at once
  // (in different letter cases: nicks are unique case-insensitively).
  const racers = await Promise.all(Array.from({ length: 10 }, () => join(server.port)));
  const verdict = async (client: Client) => {
    const line = await client.lines.waitFor(/^\* you are now |^! nick /, 10_000);
    return line.startsWith("* you are now ");
  };
  for (let round = 0; round < 200; round++) {
    const pair = [racers[round % 10], racers[(round + 1) % 10]];
    await Promise.all(pair.map((c) => c.send(`/nick pair${round}\n`)));
    const wins = await Promise.all(pair.map(verdict));
    assert.equal(wins.filter(Boolean).length, 1, `round ${round}: ${wins}`);
  }
  for (let round = 0; round < 20; round++) {
    await Promise.all(racers.map((c, i) => c.send(`/nick ${i % 2 ? "Crowd" : "crowd"}${round}\n`)));
    const wins = await Promise.all(racers.map(verdict));
    assert.equal(wins.filter(Boolean).length, 1, `crowd round ${round}: ${wins}`);
  }
  for (const racer of racers) await racer.close();
  await flooder.close();
  await tearDown(battery, "nick flood and races");
});

Deno.test("hostile: 2,000 connect-then-reset cycles leave no one behind", async () => {
  const battery = await setUp();
  const { server, watcher } = battery;
  // One python3 process (Deno has no SO_LINGER): a third reset at once, a
  // third after half a line, a third after reading the welcome.
  const program = [
    "import socket, struct, sys",
    "port = int(sys.argv[1])",
    "linger = struct.pack('ii', 1, 0)",
    "for i in range(2000):",
    "    s = socket.create_connection(('127.0.0.1', port))",
    "    if i % 3 == 1: s.sendall(b'half a li')",
    "    if i % 3 == 2: s.recv(64)",
    "    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)",
    "    s.close()",
  ].join("\n");
  const servedLines = () => server.stdout.lines.filter((l) => /\* \S+ left\b/.test(l));
  const servedBefore = servedLines().length;
  const result = await run("python3", ["-c", program, String(server.port)], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, result.stderr);
  await waitForOnline(watcher, 1, 20_000);
  const joined = watcher.lines.lines.filter((l) => / joined$/.test(l)).length;
  const left = watcher.lines.lines.filter((l) => / left$/.test(l)).length;
  // The server's log reaches its pipe in batches (every 50 ms): wait for it.
  for (let i = 0; i < 100 && servedLines().length - servedBefore < 667; i++) await delay(50);
  const served = servedLines().length - servedBefore;
  console.log(`  2000 resets: ${served} served, ${joined} joined, ${left} left`);
  assert.equal(joined, left, "everyone the others heard join has left");
  // Those that read the welcome were served for sure; the others may have
  // been reset before the server accepted them (accept() then fails). Gone
  // within the wait for a first /nick, the others never heard of them.
  assert.ok(served >= 667, `${served} served`);
  assert.ok(!watcher.lines.text.includes("half a li"));
  await tearDown(battery, "2000 resets");
});

// --max-queue is the chat's "SendQ": a reader is judged by the bytes it
// leaves unread, like an IRC server's send queue. The room waits for a
// reader past it only while that reader still takes output (one stuck
// reader must not stall the room), so a reader that looks away may fall
// behind by the kernel's socket buffers plus --max-queue and no more.
// Escaping expands hostile input (an invalid byte becomes U+FFFD, 3 bytes;
// "\x01" becomes 4), which the README's Reliability section states with the
// rule.
Deno.test("hostile: a reader looking away for 1.5 s while 1,000 long lines are relayed is kept", async () => {
  const server = await startServer("chat_server.ts", ["--max-rate", "0"]);
  const sender = await join(server.port);
  const looksAway = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await sender.lines.waitFor("joined");
  const filler = "x".repeat(990);
  const burst = Array.from(
    { length: 1000 },
    (_, i) => `L${String(i).padStart(4, "0")} ${filler}\n`,
  );
  await sender.send(burst.join(""));
  await sender.send("/ping burst\n");
  await sender.lines.waitFor("* pong burst", 30_000); // the server has taken it all in
  await delay(1500);
  const reader = new LineReader(readableOf(looksAway)); // now it reads
  try {
    await waitForCount({ lines: reader } as Client, sender.nick, 1000);
    const got = reader.lines.filter((l) => l.startsWith(`<${sender.nick}> `));
    assert.deepEqual(got, burst.map((line) => `<${sender.nick}> ${line.trimEnd()}`));
    assert.ok(!sender.lines.text.includes("(too slow)"), "the reader was dropped as too slow");
  } finally {
    looksAway.close();
    await reader.finished;
    await sender.close();
    await stopServer(server);
  }
});
