// Unit tests of utils.ts: flag and address parsing, exit codes, text
// sanitising (lib/message.ts, lib/lines.ts and lib/net.ts have their own).

import assert from "node:assert/strict";
import {
  DEFAULT_HOST,
  DEFAULT_PORT,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  signalExitCode,
  UsageError,
} from "../utils.ts";
import { sanitizeText } from "../lib/peer_text.ts";
import { formatAddress } from "../lib/net.ts";
import { isPlainAscii } from "../lib/chat_text.ts";
import { ROOT, run } from "./helpers.ts";

const encoder = new TextEncoder();

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

Deno.test("isPlainAscii: a long line is judged the same word by word, at every alignment", () => {
  const buffer = new Uint8Array(1100).fill(0x61);
  for (let offset = 0; offset < 4; offset++) {
    const line = buffer.subarray(offset, offset + 1024);
    assert.equal(isPlainAscii(line), true);
    for (const position of [0, 1, 2, 3, 511, 1020, 1021, 1022, 1023]) {
      for (
        const [byte, plain] of [
          [0x09, true],
          [0x00, false],
          [0x1f, false],
          [0x7f, false],
          [
            0x80,
            false,
          ],
          [0xff, false],
          [0x20, true],
          [0x7e, true],
        ] as const
      ) {
        line[position] = byte;
        assert.equal(isPlainAscii(line), plain, `byte ${byte} at ${position}, offset ${offset}`);
        line[position] = 0x61;
      }
    }
  }
});
