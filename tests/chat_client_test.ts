// Tests of chat_client.ts: its lib/ parts directly (line framing and kinds,
// the view's helpers, the line editor, the line sender, the silence watch),
// then the real program against nc -l, ncat --chat, small in-test servers,
// chat_server.ts, and a real terminal (tmux). Dead-server detection:
// chat_client_dead_test.ts; the server's console: console_test.ts.

import assert from "node:assert/strict";
import {
  asOthersSeeIt,
  classifyLine,
  createReceiver,
  isPasswordPrompt,
  isWelcome,
  lineLimitFromNotice,
  MAX_LINE_BYTES,
  mentionsNick,
  nickFromNotice,
  TOO_LONG_NOTICE,
} from "../lib/client_lines.ts";
import { clock } from "../lib/client_view.ts";
import {
  displayWidth,
  type EditorHooks,
  fitInput,
  openLineEditor,
  type TerminalIo,
} from "../lib/line_editor.ts";
import { createLineSender } from "../lib/line_sender.ts";
import { watchSilence } from "../lib/silence_watch.ts";
import {
  delay,
  freePort,
  LineReader,
  readableOf,
  ROOT,
  run,
  runInTerminal,
  runScript,
  send,
  spawnCommand,
  spawnScript,
  startServer,
  stopServer,
  waitForListen,
} from "./helpers.ts";
import { openTerminal, type Terminal } from "./tmux.ts";

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
  assert.equal(lineLimitFromNotice("* type /help for commands; lines up to 4096 bytes"), 4096);
  assert.equal(lineLimitFromNotice("<bob> * lines up to 5 bytes"), undefined);
  assert.equal(lineLimitFromNotice("* type /help for commands"), undefined);
  assert.ok(isPasswordPrompt("* password required: /pass PASSWORD"));
  assert.ok(!isPasswordPrompt("<bob> * password required: /pass PASSWORD"));
});

Deno.test("chat_client: own chat lines and /me actions are shown as the room sees them", () => {
  assert.equal(asOthersSeeIt("hi 你好", "carol"), "<carol> hi 你好");
  assert.equal(asOthersSeeIt("/me  waves", "carol"), "* carol waves");
  assert.equal(asOthersSeeIt("/me", "carol"), undefined); // a command: the server answers
  assert.equal(asOthersSeeIt("/who", "carol"), undefined);
});

// ------------------------------------------------------- the line editor ---

/**
 * A fake terminal for lib/line_editor.ts: keys go in as chunks (one read
 * each, at most the editor's buffer), what it writes is kept. row() is what
 * the input row shows after the last redraw, cursor() where the cursor is.
 */
function fakeTerminal(columns = 40) {
  const pending: (Uint8Array | null)[] = [];
  let wake: (() => void) | undefined;
  const written: string[] = [];
  const rawModes: boolean[] = [];
  const io: TerminalIo = {
    async read(buffer) {
      while (pending.length === 0) await new Promise<void>((resolve) => wake = resolve);
      const chunk = pending.shift()!;
      if (chunk === null) return null;
      if (chunk.length > buffer.length) pending.unshift(chunk.subarray(buffer.length));
      buffer.set(chunk.subarray(0, buffer.length));
      return Math.min(chunk.length, buffer.length);
    },
    write: (text) => void written.push(text),
    columns: () => columns,
    setRaw: (raw) => void rawModes.push(raw),
    onResize: () => () => {},
  };
  const lastDraw = () => {
    const text = written.findLast((text) => text.includes("\r> "))!;
    return text.slice(text.lastIndexOf("\r> "));
  };
  return {
    io,
    written,
    rawModes,
    /** Sends `keys` as one read and waits until the editor has handled it. */
    async keys(keys: string | null) {
      pending.push(keys === null ? null : encoder.encode(keys));
      wake?.();
      await delay(0);
    },
    // deno-lint-ignore no-control-regex
    row: () => /^\r(.*)\x1b\[K/.exec(lastDraw())![1],
    // deno-lint-ignore no-control-regex
    cursor: () => Number(/\x1b\[(\d+)C$/.exec(lastDraw())?.[1] ?? 0),
  };
}

/** An editor on a fake terminal, recording what it reports. */
function fakeEditor(columns = 40) {
  const term = fakeTerminal(columns);
  const events: string[] = [];
  const hooks: EditorHooks = {
    line: (text) => void events.push(`line ${text}`),
    interrupt: () => void events.push("interrupt"),
    end: () => void events.push("end"),
  };
  const editor = openLineEditor(hooks, { prompt: "> ", io: term.io });
  return { term, events, editor };
}

Deno.test("line editor: keys edit the line; Enter hands it over; Ctrl+C and Ctrl+D on an empty line", async () => {
  const { term, events, editor } = fakeEditor();
  try {
    assert.deepEqual(term.rawModes, [true]);
    await term.keys("abc\x1b[D\x1b[DX\r"); // Left, Left, X
    await term.keys("hello world\x17there\r"); // Ctrl+W deletes "world"
    await term.keys("one two\x01\x0bnew\r\n"); // Ctrl+A, Ctrl+K; \r\n is one Enter
    await term.keys("abcd\x1b[1~\x1b[3~\x1b[4~\x7f\r"); // Home, Delete, End, Backspace
    await term.keys("xy\x15z\x04\r"); // Ctrl+U; Ctrl+D on a non-empty line deletes forward
    await term.keys("a\x1b"); // an escape sequence cut between two reads...
    await term.keys("[Db\r"); // ...is still a Left
    await term.keys("\x1b"); // the Escape key alone: ignored, the next key is not eaten
    await term.keys("q\r");
    await term.keys("tab\there\x07\x1b[200~\x9b!\r"); // a Tab is a space; bell, paste mark, C1 dropped
    await term.keys("\x1b[A\x1b[A\x1b[A\r"); // Up three times: the third line back
    await term.keys("你好🙂\x1b[D\x7f\r"); // Left and Backspace take whole characters
    await term.keys("\x03\x04");
    assert.deepEqual(events, [
      "line aXbc",
      "line hello there",
      "line new",
      "line bc",
      "line z",
      "line ba",
      "line q",
      "line tab here!",
      "line ba",
      "line 你🙂",
      "interrupt",
      "end",
    ]);
    assert.equal(term.row(), "> ");
  } finally {
    editor.close();
  }
  assert.deepEqual(term.rawModes, [true, false]);
  assert.equal(term.written.at(-1), "\r\x1b[K"); // the prompt row erased on close
});

Deno.test("line editor: a line printed above keeps the half-typed input and the cursor", async () => {
  const { term, editor } = fakeEditor();
  try {
    await term.keys("half typed\x1b[D\x1b[D");
    const before = term.written.length;
    editor.printAbove("<alice> hi");
    // One write: clear the row, the line, then the input as it was.
    assert.deepEqual(term.written.slice(before), [
      "\r\x1b[K<alice> hi\r\n\r> half typed\x1b[K\r\x1b[10C",
    ]);
    editor.setInput("given back");
    assert.equal(term.row(), "> given back");
    assert.equal(term.cursor(), 12);
    editor.hidePrompt();
    editor.printAbove("after");
    assert.equal(term.written.at(-1), "\r\x1b[Kafter\r\n"); // no prompt any more
  } finally {
    editor.close();
  }
});

Deno.test("line editor: a paste of 100,000 characters is one redraw of one row", async () => {
  const { term, events, editor } = fakeEditor(80);
  try {
    const paste = "x".repeat(99_990) + "0123456789";
    const before = term.written.length;
    const started = performance.now();
    await term.keys(paste); // seven reads of 16 KiB: seven redraws
    const took = performance.now() - started;
    const draws = term.written.slice(before);
    assert.ok(draws.length <= 7, `${draws.length} writes`);
    assert.ok(draws.every((draw) => draw.length < 100), "each redraw is at most one row");
    assert.match(term.row(), /^> <x+0123456789$/);
    assert.ok(took < 500, `${took} ms`);
    // Typing on, one key a read: each key costs one row, however long the line.
    const typedFrom = term.written.length;
    for (const char of "abcdefghij") await term.keys(char);
    assert.ok(term.written.slice(typedFrom).every((draw) => draw.length < 100));
    await term.keys("\r");
    assert.deepEqual(events, [`line ${paste}abcdefghij`]);
  } finally {
    editor.close();
  }
});

Deno.test("line editor: input wider than the row scrolls sideways, wide characters whole", () => {
  const cells = [..."0123456789abcdefghij"]; // 20 cells in a room of 10 columns
  // At the end: "<" and the last cells, the cursor on a free column.
  assert.deepEqual(fitInput(cells, 20, 0, 10), {
    start: 13,
    text: "defghij",
    hiddenBefore: true,
    hiddenAfter: false,
    cursorColumn: 8,
  });
  // Home: the start, ">" for the rest.
  assert.deepEqual(fitInput(cells, 0, 13, 10), {
    start: 0,
    text: "012345678",
    hiddenBefore: false,
    hiddenAfter: true,
    cursorColumn: 0,
  });
  // Moving within the view does not scroll it.
  assert.equal(fitInput(cells, 5, 3, 10).start, 3);
  // Short input shows whole, from its start, even after a scroll.
  assert.deepEqual(fitInput([..."abc"], 1, 2, 10), {
    start: 0,
    text: "abc",
    hiddenBefore: false,
    hiddenAfter: false,
    cursorColumn: 1,
  });
  // Wide characters take two columns and are never cut in half.
  const wide = [..."你好世界你好世界你好"];
  for (let cursor = 0; cursor <= wide.length; cursor++) {
    const view = fitInput(wide, cursor, 0, 9);
    const width = (view.hiddenBefore ? 1 : 0) + displayWidth(view.text) +
      (view.hiddenAfter ? 1 : 0);
    assert.ok(width <= 9, `cursor ${cursor}: ${JSON.stringify(view)}`);
    assert.ok(view.cursorColumn <= 7, `cursor ${cursor}: ${JSON.stringify(view)}`);
  }
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

Deno.test("chat_client: --nick waits for chat_server's welcome, lines typed before it go after it; /quit leaves with 0", async () => {
  const server = listenLocal();
  const client = spawnClient(server.port, ["--nick", "bob"]);
  try {
    const peer = await server.accept();
    await client.write("hi\n/quit\nnot sent\n"); // a script writes before the welcome comes
    await delay(300);
    assert.deepEqual(peer.lines.lines, [], "nothing may go before the welcome");
    await peer.send("* welcome, you are guest7\n");
    assert.equal(await peer.lines.next(), "/nick bob");
    assert.equal(await peer.lines.next(), "hi");
    assert.equal(await peer.lines.next(), "/quit");
    await peer.lines.end(); // /quit half-closes at once
    await peer.send("* bye\n");
    peer.conn.close();
    assert.equal((await client.exit()).code, 0);
    assert.deepEqual(peer.lines.lines, ["/nick bob", "hi", "/quit"]);
    assert.deepEqual(client.stdout.lines, ["* welcome, you are guest7", "* bye"]);
    assert.equal(client.stderr.text, ""); // leaving is not "closed by server"
  } finally {
    await server.close();
  }
});

Deno.test("chat_client: --nick is not sent to a peer that does not greet like chat_server", async () => {
  const server = listenLocal();
  try {
    // A first line that is not the welcome (nc, ncat --chat): said on stderr, not sent.
    const client = spawnClient(server.port, ["--nick", "bob"]);
    const peer = await server.accept();
    await client.write("first\n");
    await peer.send("<announce> 127.0.0.1 is connected as <user5>.\n");
    assert.equal(await peer.lines.next(), "first");
    assert.equal(
      await client.stderr.next(),
      "* the server did not greet like chat_server.ts; --nick not sent",
    );
    await client.closeStdin(); // EOF: half-close after the held line
    await peer.lines.end();
    assert.deepEqual(peer.lines.lines, ["first"]);
    peer.conn.close();
    assert.equal((await client.exit()).code, 0);

    // No line at all (nc -l, nobody typing yet): it stops waiting after 2 s.
    const quiet = spawnClient(server.port, ["--nick", "bob"]);
    const silentPeer = await server.accept();
    await quiet.write("waited\n");
    assert.equal(await silentPeer.lines.next(4000), "waited");
    assert.equal(quiet.stderr.lines[0], "* no greeting from the server in 2 s; --nick not sent");
    await quiet.closeStdin();
    await silentPeer.lines.end();
    assert.deepEqual(silentPeer.lines.lines, ["waited"]);
    silentPeer.conn.close();
    assert.equal((await quiet.exit()).code, 0);
  } finally {
    await server.close();
  }
});

Deno.test("chat_client: --nick waits through a password prompt for the welcome; the /pass goes at once", async () => {
  const server = listenLocal();
  const client = spawnClient(server.port, ["--nick", "bob"]);
  try {
    const peer = await server.accept();
    await peer.send("* password required: /pass PASSWORD\n");
    await client.write("/pass sesame\n");
    assert.equal(await peer.lines.next(1000), "/pass sesame"); // not held for the welcome
    await peer.send("* welcome, you are guest3\n");
    assert.equal(await peer.lines.next(), "/nick bob");
    await client.closeStdin();
    await peer.lines.end();
    assert.deepEqual(peer.lines.lines, ["/pass sesame", "/nick bob"]);
    peer.conn.close();
    assert.equal((await client.exit()).code, 0);
    assert.deepEqual(client.stderr.lines, [
      "* the server wants a password: give --password-file FILE, or send /pass PASSWORD",
      "* connection closed by server", // no "--nick not sent"
    ]);
  } finally {
    await server.close();
  }
});

Deno.test({
  name: "chat_client: a line over the limit chat_server's welcome states is not sent",
  ignore: !chatServerExists,
  async fn() {
    const server = await startServer("chat_server.ts", ["--max-line", "10"]);
    const client = spawnClient(server.port);
    try {
      await client.stdout.waitFor("lines up to 10 bytes");
      await client.write("0123456789\n你好世界\n/who\n"); // 10 bytes, then 12
      await client.stdout.waitFor("* online");
      assert.equal(client.stderr.text, "! not sent: 12 bytes, over the server's limit of 10");
      assert.ok(!client.stdout.text.includes("too long"), client.stdout.text);
      await client.closeStdin();
      assert.equal((await client.exit()).code, 0);
    } finally {
      client.kill();
      await client.exit();
      await stopServer(server);
    }
  },
});

Deno.test("chat_client: SIGINT sends /quit and exits 0, SIGTERM exits 143", async () => {
  const server = listenLocal();
  try {
    for (const [signal, code] of [["SIGINT", 0], ["SIGTERM", 143]] as const) {
      const client = spawnClient(server.port, ["--nick", "x"]);
      const peer = await server.accept();
      await peer.send("* welcome, you are guest1\n");
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
  const client = spawnClient(Number(await server.stdout.next()));
  try {
    await client.write("hello\n");
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

/** chat_client.ts on a tmux terminal; the shell then says how it exited. */
function clientOnTerminal(port: number, args: string[], size: { columns: number; rows: number }) {
  const command = `'${Deno.execPath()}' run -A '${ROOT}chat_client.ts' --port ${port} ` +
    `${args.join(" ")}; echo "exit=$?"; sleep 60`;
  return openTerminal(command, size);
}

/**
 * Runs `body` with chat_client.ts on a terminal and the in-test server's
 * side of its connection; both are closed afterwards, whatever happens.
 */
async function withClientOnTerminal(
  args: string[],
  size: { columns: number; rows: number },
  body: (term: Terminal, peer: Peer) => Promise<void>,
): Promise<void> {
  const server = listenLocal();
  const term = await clientOnTerminal(server.port, args, size);
  try {
    await body(term, await server.accept());
  } finally {
    await term.close();
    await server.close();
  }
}

Deno.test("chat_client: on a terminal, a line arrives above the prompt and half-typed input survives", async () => {
  await withClientOnTerminal([], { columns: 80, rows: 10 }, async (term, peer) => {
    await peer.send("* welcome, you are carol\n");
    await term.waitFor(
      "the welcome",
      (r) => r.some((row) => row.endsWith("* welcome, you are carol")),
    );

    // Half a line, no Enter; then a message arrives.
    const typed = "half typed 你好";
    await term.type(typed);
    await term.waitFor("the typed text", (rows) => rows.includes(`> ${typed}`));
    await peer.send("<alice> hello \x1b[2Jthere\n");
    const rows = await term.waitFor(
      "alice's line",
      (r) => r.some((row) => row.includes("<alice>")),
    );
    const alice = rows.findIndex((row) => /^\d\d:\d\d <alice> hello \\x1b\[2Jthere$/.test(row));
    const prompt = rows.indexOf(`> ${typed}`);
    assert.ok(alice >= 0 && prompt === alice + 1, rows.join("\n"));
    assert.ok(rows.slice(prompt + 1).every((row) => row.trim() === ""), rows.join("\n"));
    assert.deepEqual(await term.cursor(), { x: displayWidth(`> ${typed}`), y: prompt });

    // Enter sends the whole line; the screen shows it as carol's, timestamped.
    await term.press("Enter");
    assert.equal(await peer.lines.next(), typed);
    const after = await term.waitFor(
      "the own line",
      (r) => r.some((row) => row.includes("<carol>")),
    );
    assert.ok(
      after.some((row) => /^\d\d:\d\d <carol> half typed 你好$/.test(row)),
      after.join("\n"),
    );
    assert.ok(!after.includes(`> ${typed}`), after.join("\n"));

    // /me is not echoed by the server either: shown as the room sees it.
    await term.type("/me waves");
    await term.press("Enter");
    assert.equal(await peer.lines.next(), "/me waves");
    await term.waitFor(
      "the action",
      (r) => r.some((row) => /^\d\d:\d\d \* carol waves$/.test(row)),
    );

    // Ctrl+D on the empty prompt leaves: /quit, half-close, exit 0.
    await term.press("C-d");
    assert.equal(await peer.lines.next(), "/quit");
    await peer.lines.end();
    peer.conn.close();
    await term.waitFor("exit=0", (r) => r.includes("exit=0"));
  });
});

Deno.test("chat_client: on a terminal, a 5,000-character paste shows at once in one row; over the limit it stays in the input", async () => {
  await withClientOnTerminal(["--nick", "bob"], { columns: 100, rows: 12 }, async (term, peer) => {
    await peer.send("* welcome, you are carol\n");
    assert.equal(await peer.lines.next(), "/nick bob");
    await peer.send("* online (1): carol\n* type /help for commands; lines up to 4096 bytes\n");
    await peer.send("! nick 'bob' is taken\n"); // the client stays carol
    await term.waitFor("the refused nick", (rows) => rows.some((r) => r.endsWith("is taken")));

    // node:readline took 8.7 s here: it redrew the whole input for every character.
    const paste = "x".repeat(4990) + "0123456789"; // 5,000 bytes
    const started = Date.now();
    await term.type(paste);
    const rows = await term.waitFor(
      "the paste's end",
      (r) => r.some((row) => row.endsWith("6789")),
    );
    const took = Date.now() - started;
    assert.ok(took < 1000, `the paste took ${took} ms to show`);
    const prompt = rows.findIndex((row) => row.endsWith("0123456789"));
    assert.match(rows[prompt], /^> <x+0123456789$/); // one row, scrolled: "<" marks hidden text
    assert.ok(rows.slice(prompt + 1).every((row) => row === ""), rows.join("\n"));

    // Over the server's limit: not sent, said why, still there to edit.
    await term.press("Enter");
    const refused = await term.waitFor(
      "the refusal",
      (r) => r.some((row) => row.includes("not sent")),
    );
    assert.ok(
      refused.some((row) =>
        /^\d\d:\d\d ! not sent: 5000 bytes, over the server's limit of 4096; it is still in the input$/
          .test(row)
      ),
      refused.join("\n"),
    );
    assert.match(refused.findLast((row) => row !== "")!, /^> <x+0123456789$/);
    // No stale copy of the input anywhere, scrollback included.
    const history = await term.screen(true);
    assert.equal(history.filter((row) => row.includes("xxxxxxxxxx")).length, 1, history.join("\n"));

    // Shortened, it goes; shown under the nick the server gave, not the refused one.
    await term.press("C-u");
    await term.type("hi");
    await term.press("Enter");
    assert.equal(await peer.lines.next(), "hi");
    await term.waitFor("the own line", (r) => r.some((row) => /^\d\d:\d\d <carol> hi$/.test(row)));
    assert.ok(!peer.lines.lines.some((line) => line.includes("xxxxx")), "the long line was sent");

    // Ctrl+C leaves: /quit, exit 0, the shell's line starts clean.
    await term.press("C-c");
    assert.equal(await peer.lines.next(), "/quit");
    await peer.lines.end();
    peer.conn.close();
    await term.waitFor("exit=0", (r) => r.includes("exit=0"));
  });
});

Deno.test("chat_client: on a narrow terminal, wide characters scroll in one row, never cut", async () => {
  await withClientOnTerminal([], { columns: 20, rows: 6 }, async (term, peer) => {
    await peer.send("* hi\n");
    await term.waitFor("the first line", (rows) => rows.some((row) => row.endsWith("* hi")));
    await term.type("你好世界".repeat(5) + "🙂"); // 42 columns into 17
    let rows = await term.waitFor("the end", (r) => r.some((row) => row.endsWith("🙂")));
    let row = rows.find((r) => r.endsWith("🙂"))!;
    assert.match(row, /^> <[你好世界]+🙂$/);
    assert.ok(displayWidth(row) <= 19, row);
    let cursor = await term.cursor();
    assert.equal(cursor.x, displayWidth(row));
    assert.equal(rows[cursor.y], row);
    await term.press("Home");
    rows = await term.waitFor("the start", (r) => r.some((row) => row.startsWith("> 你好")));
    row = rows.find((r) => r.startsWith("> 你好"))!;
    assert.match(row, /^> [你好世界]+>$/);
    assert.ok(displayWidth(row) <= 19, row);
    cursor = await term.cursor();
    assert.equal(cursor.x, 2);
    await term.press("Enter");
    assert.equal(await peer.lines.next(), "你好世界".repeat(5) + "🙂");
    await term.press("C-d");
    assert.equal(await peer.lines.next(), "/quit");
    peer.conn.close();
    await term.waitFor("exit=0", (r) => r.includes("exit=0"));
  });
});

Deno.test("chat_client: a narrower window gets the input row redrawn to fit, no stale copy", async () => {
  await withClientOnTerminal([], { columns: 80, rows: 8 }, async (term, peer) => {
    await peer.send("* hi\n");
    await term.waitFor("the first line", (rows) => rows.some((row) => row.endsWith("* hi")));
    const typed = "a".repeat(60) + "END";
    await term.type(typed);
    await term.waitFor("the input", (rows) => rows.includes(`> ${typed}`));
    await term.resize(40, 8);
    const rows = await term.waitFor(
      "the redrawn row",
      (r) => r.some((row) => row.startsWith("> <")),
    );
    const copies = rows.filter((row) => row.includes("aaaaaaaaaa"));
    assert.equal(copies.length, 1, rows.join("\n"));
    assert.match(copies[0], /^> <a+END$/);
    assert.ok(copies[0].length <= 39, copies[0]);
    await term.press("Enter");
    assert.equal(await peer.lines.next(), typed);
    await term.press("C-d");
    assert.equal(await peer.lines.next(), "/quit");
    peer.conn.close();
    await term.waitFor("exit=0", (r) => r.includes("exit=0"));
  });
});

// ------------------------------------------------ password, TLS, mentions ---

Deno.test("chat_client: a mention is someone else's line naming the nick as a word, any case", () => {
  assert.ok(mentionsNick("<bob> hi Carol!", "carol"));
  assert.ok(mentionsNick("<bob> (private) carol, psst", "carol"));
  assert.ok(mentionsNick("* bob waves at CAROL", "carol"));
  assert.ok(mentionsNick("<bob> ask a-b", "a-b")); // "-" is part of a nick, not a regex range
  assert.ok(!mentionsNick("<bob> hi carol2 and xcarol", "carol")); // inside other words
  assert.ok(!mentionsNick("<bob> hi carol_x or carol-y", "carol"));
  assert.ok(!mentionsNick("<carol> I am carol", "carol")); // our own line
  assert.ok(!mentionsNick("* carol waves at carol", "carol"));
  assert.ok(!mentionsNick("* you are now carol", "carol")); // server notices
  assert.ok(!mentionsNick("* welcome, you are carol", "carol"));
  assert.ok(!mentionsNick("* online (2): bob, carol", "carol"));
  assert.ok(!mentionsNick("carol from nc", "carol")); // plain lines have no speaker
  assert.ok(!mentionsNick("<bob> hi carol", undefined));
});

Deno.test("line editor: a secret prompt shows * for each character and keeps the line out of history", async () => {
  const { term, events, editor } = fakeEditor();
  try {
    await term.keys("half");
    editor.setPrompt("Password: ", true);
    await term.keys("se你");
    // 你 is one character: one star.
    assert.ok(term.written.at(-1)!.startsWith("\rPassword: ***\x1b[K"), term.written.at(-1));
    await term.keys("\r");
    assert.deepEqual(events, ["line se你"]); // the half-typed text was dropped, not prefixed
    const shown = term.written.join("");
    assert.ok(!shown.includes("se你"), "the secret was drawn");
    editor.setPrompt("> ");
    await term.keys("\x1b[A"); // Up: the secret is not there to bring back
    assert.equal(term.row(), "> ");
    assert.ok(!term.written.join("").includes("se你"), "the secret came back with Up");
  } finally {
    editor.close();
  }
});

/** A file in a fresh temporary directory; returns its path and the directory. */
async function tempFile(name: string, content: string): Promise<{ path: string; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "chat_client_" });
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, content);
  return { path, dir };
}

Deno.test("chat_client: --password-file sends /pass only when the server asks, then the welcome", async () => {
  const server = listenLocal();
  const { path, dir } = await tempFile("pass", "sesame\nnot this line\n");
  const client = spawnClient(server.port, ["--password-file", path]);
  try {
    const peer = await server.accept();
    await delay(300);
    assert.deepEqual(peer.lines.lines, [], "no /pass before the prompt");
    await peer.send("* password required: /pass PASSWORD\n");
    assert.equal(await peer.lines.next(), "/pass sesame");
    await peer.send("* welcome, you are guest1\n");
    await client.stdout.waitFor("* welcome, you are guest1");
    await client.closeStdin();
    await peer.lines.end();
    assert.deepEqual(peer.lines.lines, ["/pass sesame"]);
    peer.conn.close();
    assert.equal((await client.exit()).code, 0);
    assert.deepEqual(client.stdout.lines, [
      "* password required: /pass PASSWORD",
      "* welcome, you are guest1",
    ]);
    assert.equal(client.stderr.text, "* connection closed by server");

    // A peer that never asks never gets the password.
    const other = spawnClient(server.port, ["--password-file", path]);
    const nc = await server.accept();
    await nc.send("hello from nc\n");
    await other.stdout.waitFor("hello from nc");
    await other.closeStdin();
    await nc.lines.end();
    assert.deepEqual(nc.lines.lines, []);
    nc.conn.close();
    assert.equal((await other.exit()).code, 0);
  } finally {
    client.kill();
    await client.exit();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "chat_client: --password-file against chat_server.ts: right joins, wrong shows '! wrong password' and exits 1",
  ignore: !chatServerExists,
  async fn() {
    const right = await tempFile("right", "open sesame\n");
    const wrong = await tempFile("wrong", "guess\n");
    const server = await startServer("chat_server.ts", ["--password-file", right.path]);
    try {
      const good = spawnClient(server.port, ["--password-file", right.path]);
      await good.stdout.waitFor(/^\* welcome, you are \S+$/);
      await good.write("/quit\n");
      assert.equal((await good.exit()).code, 0);
      assert.equal(good.stdout.lines[0], "* password required: /pass PASSWORD");

      // A script's lines written before it is let in wait for the welcome.
      const scripted = spawnClient(server.port, ["--password-file", right.path]);
      await scripted.write("early line\n/quit\n");
      await scripted.closeStdin();
      assert.equal((await scripted.exit()).code, 0);
      await server.stdout.waitFor(/<guest\d+> early line$/);
      assert.equal(
        scripted.stdout.lines.filter((l) => l.startsWith("* password required")).length,
        1,
        "no line reached the server before the password",
      );

      const bad = spawnClient(server.port, ["--password-file", wrong.path]);
      const status = await bad.exit();
      assert.equal(status.code, 1);
      assert.deepEqual(bad.stdout.lines, [
        "* password required: /pass PASSWORD",
        "! wrong password",
      ]);
      assert.equal(
        bad.stderr.text,
        `error: the server refused the password in --password-file ${wrong.path}`,
      );
    } finally {
      await stopServer(server);
      await Deno.remove(right.dir, { recursive: true });
      await Deno.remove(wrong.dir, { recursive: true });
    }
  },
});

Deno.test("chat_client: a missing or empty --password-file is a usage error (exit 2), before connecting", async () => {
  const empty = await tempFile("empty", "");
  const blank = await tempFile("blank", "\nsecond\n");
  try {
    const port = freePort(); // nothing listens: a usage error must come first
    for (const path of [`${empty.dir}/missing`, empty.path, blank.path]) {
      const result = await runScript("chat_client.ts", [
        "--port",
        String(port),
        "--password-file",
        path,
      ]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`^error: --password-file ${path}: `));
    }
  } finally {
    await Deno.remove(empty.dir, { recursive: true });
    await Deno.remove(blank.dir, { recursive: true });
  }
});

Deno.test("chat_client: piped without --password-file, the prompt is answered by stdin's /pass; stderr says how", async () => {
  const server = listenLocal();
  const client = spawnClient(server.port);
  try {
    const peer = await server.accept();
    await peer.send("* password required: /pass PASSWORD\n");
    assert.equal(
      await client.stderr.next(),
      "* the server wants a password: give --password-file FILE, or send /pass PASSWORD",
    );
    await client.write("/pass typed\n");
    assert.equal(await peer.lines.next(), "/pass typed");
    await client.closeStdin();
    await peer.lines.end();
    peer.conn.close();
    assert.equal((await client.exit()).code, 0);
  } finally {
    await server.close();
  }
});

Deno.test("chat_client: on a terminal without --password-file, it asks 'Password: ' and never shows what is typed", async () => {
  await withClientOnTerminal([], { columns: 80, rows: 10 }, async (term, peer) => {
    await peer.send("* password required: /pass PASSWORD\n");
    await term.waitFor("the password prompt", (r) => r.includes("Password:"));
    await term.type("wrong1");
    await term.waitFor("six stars", (r) => r.includes("Password: ******"));
    await term.press("Enter");
    assert.equal(await peer.lines.next(), "/pass wrong1");
    await peer.send("! wrong password\n");
    // Asked again, and the second answer is hidden too.
    await term.waitFor(
      "the prompt again",
      (r) => r.some((row) => row.endsWith("! wrong password")) && r.includes("Password:"),
    );
    await term.type("sesame");
    await term.press("Enter");
    assert.equal(await peer.lines.next(), "/pass sesame");
    await peer.send("* welcome, you are dave\n");
    const rows = await term.waitFor(
      "the welcome and the chat prompt",
      (r) => r.some((row) => row.endsWith("* welcome, you are dave")) && r.includes(">"),
    );
    const all = (await term.screen(true)).join("\n");
    assert.ok(!/wrong1|sesame/.test(all), all);
    assert.ok(rows.some((row) => row === "> /pass *****"), rows.join("\n"));
    await term.press("C-d");
    assert.equal(await peer.lines.next(), "/quit");
    peer.conn.close();
    await term.waitFor("exit=0", (r) => r.includes("exit=0"));
  });
});

/** A certificate for localhost and 127.0.0.1 made with openssl, as Deno accepts it. */
async function makeCertificate(): Promise<
  { cert: string; key: string; certPath: string; dir: string }
> {
  const dir = await Deno.makeTempDir({ prefix: "chat_client_tls_" });
  const result = await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-keyout",
    `${dir}/key.pem`,
    "-out",
    `${dir}/cert.pem`,
    // Without these Deno refuses the certificate (CaUsedAsEndEntity, no name for 127.0.0.1).
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const certPath = `${dir}/cert.pem`;
  return {
    cert: await Deno.readTextFile(certPath),
    key: await Deno.readTextFile(`${dir}/key.pem`),
    certPath,
    dir,
  };
}

Deno.test("chat_client: --tls --ca chats over TLS; without --ca a self-signed server is one error: line, exit 1", async () => {
  const { cert, key, certPath, dir } = await makeCertificate();
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
  const port = listener.addr.port;
  try {
    const client = spawnClient(port, ["--tls", "--ca", certPath]);
    const conn = await listener.accept();
    const lines = new LineReader(readableOf(conn));
    await send(conn, "* welcome, you are tess\n你好 over TLS\n");
    await client.stdout.waitFor("你好 over TLS");
    await client.write("hello back, 世界\n");
    assert.equal(await lines.next(), "hello back, 世界");
    await client.closeStdin();
    await lines.end();
    conn.close();
    await lines.finished;
    assert.equal((await client.exit()).code, 0);
    assert.deepEqual(client.stdout.lines, ["* welcome, you are tess", "你好 over TLS"]);

    // No --ca: the system's roots do not know this certificate.
    const accepting = listener.accept().then(async (c) => {
      await c.handshake().catch(() => {}); // the client refuses it
      c.close();
    });
    const refused = await runScript("chat_client.ts", ["--port", String(port), "--tls"]);
    await accepting;
    assert.equal(refused.code, 1);
    const errorLines = refused.stderr.trim().split("\n");
    assert.equal(errorLines.length, 1, refused.stderr);
    assert.match(errorLines[0], /^error: TLS with 127\.0\.0\.1:\d+ failed: .*pass --ca FILE/);
    assert.equal(refused.stdout, "");

    // A plain server answering the handshake with text: it does not speak TLS.
    const plain = listenLocal();
    const answering = plain.accept().then((peer) => peer.send("* welcome, you are guest1\n"));
    const notTls = await runScript("chat_client.ts", ["--port", String(plain.port), "--tls"]);
    await answering;
    await plain.close();
    assert.equal(notTls.code, 1);
    assert.match(notTls.stderr, /^error: TLS with .*; is the server using TLS\? .*\n$/);

    // --ca without --tls, and a --ca that is not a certificate: usage errors.
    const noTls = await runScript("chat_client.ts", ["--port", String(port), "--ca", certPath]);
    assert.equal(noTls.code, 2);
    const notPem = await runScript("chat_client.ts", [
      "--port",
      String(port),
      "--tls",
      "--ca",
      `${dir}/key.pem`,
    ]);
    assert.equal(notPem.code, 2);
    assert.match(notPem.stderr, /^error: --ca .*not a PEM certificate/);
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * chat_client.ts on a pseudo-terminal (colours allowed) against a server that
 * sends `lines` and closes: everything the client wrote to the terminal.
 */
async function clientOutputOnTerminal(lines: string[], args: string[] = []): Promise<string> {
  const server = listenLocal();
  try {
    const running = runInTerminal(Deno.execPath(), [
      "run",
      "-A",
      `${ROOT}chat_client.ts`,
      "--port",
      String(server.port),
      ...args,
    ]);
    const peer = await server.accept();
    await peer.send(lines.map((line) => `${line}\n`).join(""));
    await delay(300);
    peer.conn.close();
    const { code, output } = await running;
    assert.equal(code, 0, output);
    return output;
  } finally {
    await server.close();
  }
}

const MENTIONING = [
  "* welcome, you are carol",
  "<bob> no mention here, caroline",
  "<bob> hey Carol, look",
  "* you are now carol",
];

Deno.test("chat_client: on a terminal a line naming you is shown inverse and rings the bell once; --no-bell keeps it quiet", async () => {
  const output = await clientOutputOnTerminal(MENTIONING);
  assert.equal(output.split("\x07").length - 1, 1, JSON.stringify(output));
  const mention = output.split("\n").filter((row) => row.includes("hey Carol"));
  assert.equal(mention.length, 1, JSON.stringify(output));
  assert.ok(mention[0].includes("\x1b[7m"), JSON.stringify(mention[0])); // inverse
  const bell = output.indexOf("\x07"); // with that line, before the next one
  assert.ok(
    bell > output.indexOf("hey Carol") && bell < output.indexOf("you are now carol"),
    JSON.stringify(output),
  );
  const others = output.split("\n").filter((row) => row.includes("caroline"));
  assert.ok(!others[0].includes("\x1b[7m"), JSON.stringify(others[0]));

  const quiet = await clientOutputOnTerminal(MENTIONING, ["--no-bell"]);
  assert.ok(!quiet.includes("\x07"), JSON.stringify(quiet));
  assert.ok(quiet.includes("\x1b[7m"), "still highlighted");
});

Deno.test("chat_client: piped, a mention is the plain line: no bell, no escape", async () => {
  const server = listenLocal();
  const client = spawnClient(server.port);
  try {
    const peer = await server.accept();
    await peer.send(MENTIONING.map((line) => `${line}\n`).join(""));
    await client.stdout.waitFor("* you are now carol");
    await client.closeStdin();
    await peer.lines.end();
    peer.conn.close();
    assert.equal((await client.exit()).code, 0);
    assert.deepEqual(client.stdout.lines, MENTIONING);
    assert.ok(!client.stdout.text.includes("\x07") && !client.stdout.text.includes("\x1b"));
  } finally {
    await server.close();
  }
});
