// Unit tests of utils.ts: flag and address parsing, text sanitising, UTF-8
// boundaries, and the framing helpers over a real loopback connection pair.

import assert from "node:assert/strict";
import {
  DEFAULT_HOST,
  DEFAULT_PORT,
  Failure,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  sanitizeText,
  signalExitCode,
  UsageError,
} from "../utils.ts";
import {
  acceptClient,
  closeQuietly,
  connectTcp,
  formatAddress,
  listenTcp,
  writeAll,
} from "../lib/net.ts";
import { isPlainAscii } from "../lib/chat_text.ts";
import { createLineSplitter, LINE_TOO_LONG, type LineEvent } from "../lib/lines.ts";
import { type Message, readMessage, utf8Boundary } from "../lib/message.ts";
import { delay, freePort, ROOT, run, send } from "./helpers.ts";

const encoder = new TextEncoder();

/** Two ends of one loopback TCP connection; the listener is already closed. */
async function connectedPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const [client, server] = await Promise.all([
      Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
      listener.accept(),
    ]);
    return [client, server];
  } finally {
    listener.close();
  }
}

/**
 * Runs `body` with a connection pair, closing both ends afterwards. A body
 * still running after `timeoutMs` has its conns closed under it, so a read
 * that would wait forever fails (Interrupted) instead of hanging the run.
 */
async function withPair(
  body: (writer: Deno.TcpConn, reader: Deno.TcpConn) => Promise<void>,
  timeoutMs = 5000,
) {
  const [writer, reader] = await connectedPair();
  const closeBoth = () => {
    closeQuietly(writer);
    closeQuietly(reader);
  };
  const timer = setTimeout(closeBoth, timeoutMs);
  try {
    await body(writer, reader);
  } finally {
    clearTimeout(timer);
    closeBoth();
  }
}

// ----------------------------------------------------------------- ports ---

Deno.test("parsePort: 0-65535 accepted", () => {
  assert.equal(parsePort("0"), 0);
  assert.equal(parsePort("1"), 1);
  assert.equal(parsePort("8080"), 8080);
  assert.equal(parsePort("65535"), 65535);
});

Deno.test("parsePort: out of range or not a plain number is a UsageError", () => {
  for (
    const value of ["-1", "65536", "99999", "1e3", "", " 80", "80 ", "08x", "0x50", "8.0", "+80"]
  ) {
    assert.throws(() => parsePort(value), UsageError, JSON.stringify(value));
  }
  assert.throws(
    () => parsePort("65536"),
    { message: "--port must be a whole number 0-65535, got '65536'" },
  );
});

Deno.test("parseIntFlag: bounds, default maximum, and the flag named in the error", () => {
  assert.equal(parseIntFlag("1", "--size", 1), 1);
  assert.equal(parseIntFlag("1048576", "--size", 1), 1048576);
  assert.equal(parseIntFlag("5", "--n", 1, 5), 5);
  assert.throws(() => parseIntFlag("6", "--n", 1, 5), {
    message: "--n must be a whole number 1-5, got '6'",
  });
  assert.throws(() => parseIntFlag("0", "--size", 1), {
    message: "--size must be a whole number 1 or more, got '0'",
  });
  assert.throws(() => parseIntFlag("9007199254740993", "--size", 1), UsageError); // not a safe integer
  assert.throws(() => parseIntFlag("1.5", "--size", 1), UsageError);
  assert.throws(() => parseIntFlag("abc", "--size", 1), UsageError);
});

// ------------------------------------------------------------- addresses ---

Deno.test("parseHost: names and addresses pass, brackets are stripped, junk is rejected", () => {
  assert.equal(parseHost("127.0.0.1"), "127.0.0.1");
  assert.equal(parseHost("localhost"), "localhost");
  assert.equal(parseHost("::1"), "::1");
  assert.equal(parseHost("[::1]"), "::1");
  assert.equal(parseHost("[fe80::1]"), "fe80::1");
  for (const value of ["", "[]", " ", "a host", "host/24", "\t"]) {
    assert.throws(() => parseHost(value), UsageError, JSON.stringify(value));
  }
  assert.throws(() => parseHost(""), {
    message: "--host must be a host name or IP address, got ''",
  });
});

Deno.test("formatAddress: IPv6 in brackets, IPv4 and names as they are", () => {
  assert.equal(formatAddress({ hostname: "127.0.0.1", port: 8080 }), "127.0.0.1:8080");
  assert.equal(formatAddress({ hostname: "localhost", port: 1 }), "localhost:1");
  assert.equal(formatAddress({ hostname: "::1", port: 8080 }), "[::1]:8080");
  assert.equal(formatAddress({ hostname: "::", port: 0 }), "[::]:0");
  assert.equal(formatAddress({ hostname: "fe80::1%eth0", port: 22 }), "[fe80::1%eth0]:22");
});

// ----------------------------------------------------------------- flags ---

Deno.test("parseFlags: defaults for the shared and the script's own options", () => {
  const flags = parseFlags([], {
    size: { type: "string", default: "1024" },
    message: { type: "string", short: "m" },
    verbose: { type: "boolean", default: false },
  }, "usage: test");
  assert.equal(flags.host, DEFAULT_HOST);
  assert.equal(flags.port, String(DEFAULT_PORT));
  assert.equal(flags.help, false);
  assert.equal(flags.size, "1024");
  assert.equal(flags.verbose, false);
  assert.equal(flags.message, undefined);
});

Deno.test("parseFlags: long and short forms", () => {
  const flags = parseFlags(
    ["--host", "::1", "-p", "9000", "-m", "hi there", "--size=7"],
    { size: { type: "string", default: "1024" }, message: { type: "string", short: "m" } },
    "usage: test",
  );
  assert.equal(flags.host, "::1");
  assert.equal(flags.port, "9000");
  assert.equal(flags.message, "hi there");
  assert.equal(flags.size, "7");
});

Deno.test("parseFlags: unknown flags, positionals and missing values are UsageErrors", () => {
  const options = { size: { type: "string", default: "1024" } } as const;
  assert.throws(() => parseFlags(["--bogus"], options, "usage"), (err: unknown) => {
    assert.ok(err instanceof UsageError);
    assert.match(err.message, /^unknown option '--bogus'/); // lower-cased first letter
    return true;
  });
  assert.throws(() => parseFlags(["extra"], options, "usage"), UsageError);
  assert.throws(() => parseFlags(["--port"], options, "usage"), UsageError);
  assert.throws(() => parseFlags(["--size"], options, "usage"), UsageError);
  assert.throws(() => parseFlags(["--help=yes"], options, "usage"), UsageError);
});

Deno.test("parseFlags: the project's own message for every malformed flag", () => {
  const options = {
    size: { type: "string", default: "1024" },
    message: { type: "string", short: "m" },
    explain: { type: "boolean", default: false },
  } as const;
  const messageOf = (args: string[]) => {
    try {
      parseFlags(args, options, "usage");
    } catch (err) {
      assert.ok(err instanceof UsageError);
      return err.message;
    }
    return "(accepted)";
  };
  assert.equal(messageOf(["-p"]), "-p/--port needs a value");
  assert.equal(messageOf(["--port"]), "-p/--port needs a value");
  assert.equal(messageOf(["--size"]), "--size needs a value");
  assert.equal(messageOf(["--host", "--size", "5"]), "--host needs a value");
  assert.equal(messageOf(["--explain=yes"]), "--explain takes no value");
  assert.equal(messageOf(["-hx"]), "-h/--help takes no value");
  assert.equal(messageOf(["--bogus=1"]), "unknown option '--bogus'");
  assert.equal(messageOf(["-x"]), "unknown option '-x'");
  assert.equal(messageOf(["extra"]), "unexpected argument 'extra'");
  assert.equal(messageOf(["--", "extra"]), "unexpected argument '--'");
});

Deno.test("parseFlags: a value that starts with '-' is a value, not a flag", () => {
  const options = {
    size: { type: "string", default: "1024" },
    message: { type: "string", short: "m" },
  } as const;
  const flags = parseFlags(["--size", "-1", "-m", "-hello", "-p-5"], options, "usage");
  assert.equal(flags.size, "-1", "checked later, with the flag's own message");
  assert.equal(flags.message, "-hello");
  assert.equal(flags.port, "-5");
  assert.equal(parseFlags(["-m", "--", "-p", "1"], options, "usage").message, "--");
});

Deno.test("runMain: error: line, usage hint and exit codes 0/1/2 (in a child process)", async () => {
  const utils = new URL("utils.ts", `file://${ROOT}`).href;
  const program = (body: string) =>
    `import { Failure, runMain, UsageError } from ${JSON.stringify(utils)};\n` +
    `runMain(async () => { ${body} }, "usage: demo [--x]\\n       demo --y\\n\\nmore help");`;
  const [usage, failure, other, fine, code] = await Promise.all([
    run(Deno.execPath(), ["eval", program(`throw new UsageError("bad flag");`)]),
    run(Deno.execPath(), ["eval", program(`throw new Failure("it broke");`)]),
    run(Deno.execPath(), ["eval", program(`throw new TypeError("surprise");`)]),
    run(Deno.execPath(), ["eval", program(`console.log("done");`)]),
    run(Deno.execPath(), ["eval", program(`return 3;`)]),
  ]);
  assert.equal(usage.code, 2);
  assert.equal(
    usage.stderr,
    "error: bad flag\nusage: demo [--x]\n       demo --y\nRun with --help for details.\n",
    "the whole synopsis, every form, up to the first blank line",
  );
  assert.equal(failure.code, 1);
  assert.equal(failure.stderr, "error: it broke\n");
  assert.equal(other.code, 1);
  assert.equal(other.stderr, "error: surprise\n"); // one line, no stack trace
  assert.equal(fine.code, 0);
  assert.equal(fine.stdout, "done\n");
  assert.equal(fine.stderr, "");
  assert.equal(code.code, 3);
});

Deno.test("signalExitCode: 128 + signal number", () => {
  assert.equal(signalExitCode("SIGINT"), 130);
  assert.equal(signalExitCode("SIGTERM"), 143);
});

// ------------------------------------------------------------------ text ---

Deno.test("sanitizeText: control characters and bidi overrides become visible escapes", () => {
  assert.equal(sanitizeText("\x1b[2Jcleared"), "\\x1b[2Jcleared");
  assert.equal(sanitizeText("ding\x07"), "ding\\x07");
  assert.equal(sanitizeText("fake\rline"), "fake\\rline");
  assert.equal(sanitizeText("two\nlines"), "two\\nlines");
  assert.equal(sanitizeText("nul\x00"), "nul\\x00");
  assert.equal(sanitizeText("del\x7f"), "del\\x7f");
  assert.equal(sanitizeText("next\u0085line"), "next\\u0085line"); // C1 NEL
  assert.equal(sanitizeText("csi\u009b2J"), "csi\\u009b2J"); // C1 CSI
  assert.equal(sanitizeText("abc\u202egpj.exe"), "abc\\u202egpj.exe"); // RIGHT-TO-LEFT OVERRIDE
  assert.equal(sanitizeText("\u202a\u2066x\u2069"), "\\u202a\\u2066x\\u2069");
});

Deno.test("sanitizeText: tab, Chinese, emoji and ZWJ sequences pass through untouched", () => {
  for (
    const text of [
      "a\tb",
      "你好，世界！",
      "plain ASCII ~!@#$%^&*()",
      "😀",
      "👨‍👩‍👧‍👦", // family: ZWJ (U+200D) sequence
      "🏳️‍🌈", // flag with variation selector and ZWJ
      "👍🏽", // skin tone modifier
      "🇨🇳", // regional indicators
      "é (e + combining acute)",
      "",
    ]
  ) {
    assert.equal(sanitizeText(text), text, JSON.stringify(text));
  }
});

Deno.test("isPlainAscii: only bytes sanitizeText leaves as they are, and only ASCII", () => {
  assert.equal(isPlainAscii(encoder.encode("hello, world ~!@#$%^&*()\t")), true);
  assert.equal(isPlainAscii(new Uint8Array()), true);
  for (const text of ["\x1b[2J", "bell\x07", "del\x7f", "cr\r", "你好", "é", "\u202e"]) {
    assert.equal(isPlainAscii(encoder.encode(text)), false, JSON.stringify(text));
  }
  assert.equal(isPlainAscii(new Uint8Array([0x61, 0xff])), false, "invalid UTF-8");
  // Every byte value alone: plain ones come through sanitizeText unchanged.
  for (let byte = 0; byte < 256; byte++) {
    const bytes = new Uint8Array([0x61, byte, 0x62]);
    if (!isPlainAscii(bytes)) continue;
    const text = new TextDecoder().decode(bytes);
    assert.equal(sanitizeText(text), text, `byte 0x${byte.toString(16)}`);
    assert.deepEqual(encoder.encode(text), bytes);
  }
});

// ----------------------------------------------------------------- utf8 ---

Deno.test("utf8Boundary: every cut of a string mixing 1-4 byte characters", () => {
  const sample = "a©你😀b€𝄞z"; // 1, 2, 3, 4, 1, 3, 4, 1 bytes
  const bytes = encoder.encode(sample);
  const boundaries = new Set([0]);
  let offset = 0;
  for (const char of sample) boundaries.add(offset += encoder.encode(char).length);
  assert.equal(offset, bytes.length);
  const strict = new TextDecoder("utf-8", { fatal: true });
  for (let cut = 0; cut <= bytes.length; cut++) {
    const prefix = bytes.subarray(0, cut);
    const expected = Math.max(...[...boundaries].filter((b) => b <= cut));
    const got = utf8Boundary(prefix);
    assert.equal(got, expected, `cut at ${cut}`);
    strict.decode(prefix.subarray(0, got)); // throws on a broken character
  }
});

Deno.test("utf8Boundary: empty input and a buffer of only continuation bytes", () => {
  assert.equal(utf8Boundary(new Uint8Array()), 0);
  // Not UTF-8 at all: nothing to keep whole, so nothing is cut.
  assert.equal(utf8Boundary(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80])), 5);
});

// --------------------------------------------------------------- framing ---

/** A message without its per-read sizes, which depend on segment timing. */
function withoutReads(message: Message | null) {
  if (!message) return message;
  const { reads, ...rest } = message;
  assert.ok(reads.length >= 1 && reads.every((n) => n > 0));
  return rest;
}

Deno.test("readMessage: ends at a newline, not in the text but counted in the bytes", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, "hello\nafter");
    assert.deepEqual(withoutReads(await readMessage(reader, 1024)), {
      text: "hello",
      byteLength: 6,
      lineEnding: "\n",
      end: "newline",
    });
  });
});

Deno.test("readMessage: \\r\\n is stripped like \\n", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, "hi\r\n");
    assert.deepEqual(withoutReads(await readMessage(reader, 1024)), {
      text: "hi",
      byteLength: 4,
      lineEnding: "\r\n",
      end: "newline",
    });
  });
});

Deno.test("readMessage: ends at the peer's EOF (half-close) without a newline", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, "no newline");
    await writer.closeWrite();
    assert.deepEqual(withoutReads(await readMessage(reader, 1024)), {
      text: "no newline",
      byteLength: 10,
      lineEnding: "",
      end: "eof",
    });
  });
});

Deno.test("readMessage: ends at maxBytes, cut at a character boundary", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, "ab你好cd\n"); // a b 你(3) 好(3): 7 bytes end inside 好
    assert.deepEqual(withoutReads(await readMessage(reader, 7)), {
      text: "ab你",
      byteLength: 7,
      lineEnding: "",
      end: "size",
    });
  });
  await withPair(async (writer, reader) => {
    await send(writer, "abcdefgh");
    assert.deepEqual(withoutReads(await readMessage(reader, 4)), {
      text: "abcd",
      byteLength: 4,
      lineEnding: "",
      end: "size",
    });
  });
});

Deno.test("readMessage: null when the peer closes without sending", async () => {
  await withPair(async (writer, reader) => {
    writer.close();
    assert.equal(await readMessage(reader, 1024), null);
  });
  await withPair(async (writer, reader) => {
    await writer.closeWrite();
    assert.equal(await readMessage(reader, 1024), null);
  });
});

Deno.test("readMessage: an empty line is a message, not null", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, "\n");
    assert.deepEqual(withoutReads(await readMessage(reader, 1024)), {
      text: "",
      byteLength: 1,
      lineEnding: "\n",
      end: "newline",
    });
  });
});

Deno.test("readMessage: a character split across two writes comes out whole", async () => {
  await withPair(async (writer, reader) => {
    writer.setNoDelay(true);
    const bytes = encoder.encode("你好，世界\n");
    const reading = readMessage(reader, 1024);
    await send(writer, bytes.subarray(0, 4)); // inside 好
    await delay(150); // the reader sees the first part on its own
    await send(writer, bytes.subarray(4));
    const message = await reading;
    assert.deepEqual(withoutReads(message), {
      text: "你好，世界",
      byteLength: 16,
      lineEnding: "\n",
      end: "newline",
    });
    assert.deepEqual(message?.reads, [4, 12], "two reads: what one recv() would have split");
  });
});

Deno.test("readMessage: a message in several segments is one message", async () => {
  await withPair(async (writer, reader) => {
    writer.setNoDelay(true);
    const reading = readMessage(reader, 1024);
    for (const part of ["one ", "two ", "three\nfour"]) {
      await send(writer, part);
      await delay(30);
    }
    assert.equal((await reading)?.text, "one two three");
  });
});

Deno.test("readMessage: invalid UTF-8 becomes U+FFFD, valid text around it survives", async () => {
  await withPair(async (writer, reader) => {
    await send(writer, new Uint8Array([0x41, 0xff, 0x42, 0xe4, 0xbd, 0x43, 0x0a]));
    const message = await readMessage(reader, 1024);
    assert.equal(message?.text, "A\uFFFDB\uFFFDC");
    assert.equal(message?.byteLength, 7, "what crossed the wire, the newline too");
  });
});

/** Feeds `chunks` (text or bytes) to a fresh splitter; all events in order. */
function splitLines(maxLine: number, chunks: (string | Uint8Array | null)[]): LineEvent[] {
  const split = createLineSplitter(maxLine);
  return chunks.flatMap((chunk) =>
    split(typeof chunk === "string" ? encoder.encode(chunk) : chunk)
  );
}

Deno.test("createLineSplitter: lines across chunks, \\r\\n, several lines in one chunk", () => {
  assert.deepEqual(splitLines(100, ["he", "llo\nwor", "ld\r\n", "a\nb\n\n", "rest"]), [
    "hello",
    "world",
    "a",
    "b",
    "",
  ]);
  assert.deepEqual(splitLines(100, []), []);
  assert.deepEqual(splitLines(100, [new Uint8Array()]), []);
});

Deno.test("createLineSplitter: fed one byte at a time, characters come out whole", () => {
  const bytes = encoder.encode("你好，世界 😀\r\n👨‍👩‍👧\n");
  const oneByOne = [...bytes].map((byte) => new Uint8Array([byte]));
  assert.deepEqual(splitLines(100, oneByOne), ["你好，世界 😀", "👨‍👩‍👧"]);
});

Deno.test("createLineSplitter: an overlong line is reported once, the next line is fine", () => {
  // maxLine 5: "12345" fits (with or without \r), "123456" does not.
  assert.deepEqual(splitLines(5, ["12345\n", "12345\r\n", "123456\n", "ok\n"]), [
    "12345",
    "12345",
    LINE_TOO_LONG,
    "ok",
  ]);
  // Overlong across many chunks: one event, its bytes dropped, then lines again.
  assert.deepEqual(splitLines(5, ["abc", "def", "ghi", "jkl\nafter\n"]), [LINE_TOO_LONG, "after"]);
  assert.deepEqual(splitLines(5, ["x".repeat(50), "y".repeat(50), "\n", "z\n"]), [
    LINE_TOO_LONG,
    "z",
  ]);
  assert.deepEqual(splitLines(3, ["abc\r", "d\n"]), [LINE_TOO_LONG]); // \r not before \n counts
});

Deno.test("createLineSplitter: null (EOF) yields the unfinished last line, once", () => {
  assert.deepEqual(splitLines(100, ["done\nhalf a li", "ne", null]), ["done", "half a line"]);
  assert.deepEqual(splitLines(100, ["done\n", null]), ["done"]); // nothing unfinished
  assert.deepEqual(splitLines(100, [null]), []);
  assert.deepEqual(splitLines(5, ["toolong", "still", null]), [LINE_TOO_LONG]); // dropped
  const split = createLineSplitter(100);
  assert.deepEqual(split(encoder.encode("tail")), []);
  assert.deepEqual(split(null), ["tail"]);
  assert.deepEqual(split(null), []); // already handed out
  assert.deepEqual(split(encoder.encode("again\n")), ["again"]); // usable afterwards
  // The limit and the \r rule hold for the unfinished line too.
  assert.deepEqual(splitLines(3, ["abcd", null]), [LINE_TOO_LONG]);
  assert.deepEqual(splitLines(3, ["abc\r", null]), ["abc"]);
});

Deno.test("createLineSplitter: a U+FEFF at the start of a line is kept", () => {
  assert.deepEqual(splitLines(100, ["\uFEFFhi\n", "\uFEFF"]), ["\uFEFFhi"]);
  assert.deepEqual(splitLines(100, ["\uFEFF", null]), ["\uFEFF"]);
});

Deno.test("writeAll: 8 MiB to a peer that reads slowly arrives complete and in order", async () => {
  await withPair(async (writer, reader) => {
    const size = 8 * 1024 * 1024;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 16)) & 0xff;
    const received = new Uint8Array(size);
    const reading = (async () => {
      await delay(100); // let the socket buffers fill: conn.write() then writes partially
      let filled = 0;
      const chunk = new Uint8Array(256 * 1024);
      while (true) {
        const n = await reader.read(chunk);
        if (n === null) return filled;
        assert.ok(filled + n <= size, "more bytes than were written");
        received.set(chunk.subarray(0, n), filled);
        filled += n;
        if (filled % (2 * 1024 * 1024) < n) await delay(10); // slow down now and then
      }
    })();
    await writeAll(writer, data);
    await writer.closeWrite();
    assert.equal(await reading, size);
    assert.ok(received.every((byte, i) => byte === data[i]), "bytes differ");
  });
});

Deno.test("writeAll: keeps writing after partial writes (a writer taking 3 bytes a call)", async () => {
  const written: number[] = [];
  let calls = 0;
  const stingy = {
    write(bytes: Uint8Array): Promise<number> {
      calls++;
      const n = Math.min(3, bytes.length);
      written.push(...bytes.subarray(0, n));
      return Promise.resolve(n);
    },
  };
  await writeAll(stingy, encoder.encode("你好, partial writes!"));
  assert.equal(new TextDecoder().decode(new Uint8Array(written)), "你好, partial writes!");
  assert.equal(calls, Math.ceil(encoder.encode("你好, partial writes!").length / 3));
});

Deno.test("writeAll: an empty buffer writes nothing and returns", async () => {
  await withPair(async (writer, reader) => {
    await writeAll(writer, new Uint8Array());
    await writer.closeWrite();
    assert.equal(await reader.read(new Uint8Array(8)), null);
  });
});

Deno.test("closeQuietly: closes, then ignores an already-closed conn or listener", async () => {
  const [a, b] = await connectedPair();
  closeQuietly(a);
  assert.equal(await b.read(new Uint8Array(8)), null); // a really was closed
  closeQuietly(a); // a second close would throw BadResource
  assert.throws(() => a.close(), Deno.errors.BadResource);
  closeQuietly(b);
  closeQuietly(b);
  closeQuietly(undefined);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  closeQuietly(listener);
  closeQuietly(listener);
});

// --------------------------------------------------- listen and connect ---

Deno.test("listenTcp: a port in use is a Failure with a hint", () => {
  const first = listenTcp("127.0.0.1", 0);
  try {
    assert.throws(() => listenTcp("127.0.0.1", first.addr.port), (err: unknown) => {
      assert.ok(err instanceof Failure);
      assert.equal(
        err.message,
        `cannot listen on 127.0.0.1:${first.addr.port}: ` +
          "address already in use; choose another --port (0 picks a free one)",
      );
      return true;
    });
  } finally {
    first.close();
  }
});

Deno.test("connectTcp: connection refused is a Failure with a hint", async () => {
  const port = freePort();
  await assert.rejects(connectTcp("127.0.0.1", port), {
    message: `cannot connect to 127.0.0.1:${port}: connection refused; is the server running?`,
  });
  await assert.rejects(connectTcp("127.0.0.1", port), Failure);
});

Deno.test("acceptClient: returns the connection, then undefined once the listener is closed", async () => {
  const listener = listenTcp("127.0.0.1", 0);
  const [client, accepted] = await Promise.all([
    connectTcp("127.0.0.1", listener.addr.port),
    acceptClient(listener),
  ]);
  assert.ok(accepted);
  assert.equal(accepted.remoteAddr.port, client.localAddr.port);
  client.close();
  accepted.close();
  const pending = acceptClient(listener);
  listener.close();
  assert.equal(await pending, undefined);
});
