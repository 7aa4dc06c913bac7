#!/usr/bin/env -S deno run --allow-net
// client.ts: the notes' section "TCP 客户端" (a one-shot TCP client).
//
//   deno run -A client.ts [--host H] [--port P] [--message TEXT] [--size N] [--explain]
//   nc -l 127.0.0.1 8080       # the note's own test server, in another terminal
//
// Like the note: connect, ask for a line ("Words: "), send it, print the
// reply, close. Unlike the note (whose clinet_sock typo and bare recv() would
// crash), the line is sent whole with its newline, a reply split across TCP
// segments or inside a UTF-8 character is printed intact, and a server that
// closes without answering is reported instead of printing an empty reply.
// `--explain` prints, before each step, the note's Python call, the Deno call
// that does it and what it really did (on stderr).
//
// Reading guide (the note's line -> where it happens here, all in main()):
//   socket() + connect(address)    Deno.connect({hostname, port}); withHints (lib/net.ts)
//                                  turns "connection refused" into one error: line
//   msg = input("Words: ")         --message, or readLineFromStdin(): node:readline,
//                                  the prompt only on a terminal
//   send(msg.encode())             writeAll (lib/net.ts) of the line and its "\n":
//                                  conn.write() may write only part
//   recv() + decode()              readMessage (lib/message.ts): up to a newline,
//                                  the server's EOF, or --size bytes
//   print("收到：", ...)            printReceived (lib/message.ts)
//   client_sock.close()            closeQuietly(conn), in main()'s finally

import { createInterface } from "node:readline";
import process from "node:process";
import {
  Failure,
  onStopSignal,
  parseFlags,
  parseHost,
  parseIntFlag,
  runMain,
  signalExitCode,
  UsageError,
} from "./utils.ts";
import { sanitizeText } from "./lib/peer_text.ts";
import { closeQuietly, formatAddress, withHints, writeAll } from "./lib/net.ts";
import { describeReceived, describeSent, explainer } from "./lib/explain.ts";
import { printReceived, readMessage } from "./lib/message.ts";

const USAGE =
  `usage: deno run -A client.ts [--host H] [--port P] [--message TEXT] [--size N] [--explain]

Connects to H:P, sends one line, prints the reply and exits: the notes'
section "TCP 客户端". Try it against: nc -l 127.0.0.1 8080

options:
  --host H          server address (default 127.0.0.1)
  -p, --port P      server port (default 8080)
  -m, --message T   the line to send; without it one line is read from stdin
                    (on a terminal after the prompt "Words: ")
  --size N          most bytes read for the reply, like the note's recv (default 1024)
  --explain         before each step, print the note's Python call, the Deno call
                    that does it and its result (on stderr; stdout is unchanged)
  -h, --help        show this help

The reply ends at a newline, when the server closes, or after N bytes.
Exit status: 0 reply received, 1 runtime error (connection refused, server
closed without replying), 2 bad usage, 130 interrupted by Ctrl+C.`;

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    message: { type: "string", short: "m" },
    size: { type: "string", default: "1024" },
    explain: { type: "boolean", default: false },
  }, USAGE);
  const host = parseHost(flags.host);
  const port = parseIntFlag(flags.port, "--port", 1, 65535); // the server's: 0 means nothing here
  const size = parseIntFlag(flags.size, "--size", 1);
  if (flags.message?.includes("\n")) {
    throw new UsageError("--message must be one line (the newline that ends it is added)");
  }
  const explain = explainer(flags.explain);
  // Piped input is read before connecting: with nothing to send, no server
  // should see a connection. On a terminal the note's order stays: connect,
  // then ask, so a refused connection is reported before anyone types.
  const interactive = process.stdin.isTTY;
  const piped = flags.message === undefined && !interactive
    ? await readLineFromStdin("Words: ")
    : undefined;
  if (flags.message === undefined && !interactive && piped === undefined) {
    throw new UsageError("no message: pass --message TEXT or give a line on stdin");
  }

  // connect(): refused or unreachable is reported before asking for input.
  const connect = ["socket()+connect(address)", "Deno.connect({hostname, port})"] as const;
  let conn: Deno.TcpConn;
  try {
    const where = formatAddress({ hostname: host, port });
    conn = await withHints(`connect to ${where}`, () => Deno.connect({ hostname: host, port }));
  } catch (err) {
    explain(...connect, "failed (see the error line)");
    throw err;
  }
  const server = formatAddress(conn.remoteAddr);
  explain(...connect, `connected to ${server} from ${formatAddress(conn.localAddr)}`);
  const removeSignals = onStopSignal((signal) => interrupt(signalExitCode(signal)));

  try {
    // input("Words: "): the line to send.
    const message = flags.message ?? piped ?? await readLineFromStdin("Words: ");
    explain(
      'input("Words: ")',
      flags.message === undefined ? 'node:readline, one "line" event' : "--message TEXT",
      message === undefined ? "nothing: stdin ended before a line" : `"${sanitizeText(message)}"`,
    );
    if (message === undefined) {
      throw new UsageError("no message: pass --message TEXT or type a line on stdin");
    }

    // send(): one line, newline-terminated so the server knows it is whole.
    const line = new TextEncoder().encode(`${message}\n`);
    let writes: number;
    try {
      writes = await writeAll(conn, line);
    } catch {
      explain("send(msg.encode())", "conn.write(bytes)", `failed: ${server} went away`);
      throw new Failure(`${server} closed the connection before the message could be sent`);
    }
    explain(
      "send(msg.encode())",
      "conn.write(bytes)",
      `${describeSent(line.length, writes)}: the line and its "\\n"`,
    );

    // recv(): the reply, however many segments carry it.
    const reply = await readMessage(conn, size);
    explain(`recv(${size})`, "conn.read(buf)", describeReceived(reply, size, "the server"));
    if (!reply) throw new Failure(`${server} closed the connection without replying`);
    printReceived(reply, size);
    return 0;
  } finally {
    // close()
    removeSignals();
    closeQuietly(conn);
    explain("close()", "conn.close()", `closed the connection to ${server}`);
  }
}

/**
 * One line from stdin, with the prompt only on a terminal (a pipe gets no
 * prompt noise). undefined when stdin ends before any line.
 */
function readLineFromStdin(prompt: string): Promise<string | undefined> {
  const tty = process.stdin.isTTY;
  const lines = createInterface({
    input: process.stdin,
    output: tty ? process.stdout : undefined,
    terminal: tty,
  });
  return new Promise((resolve) => {
    let answered = false;
    lines.on("line", (line) => {
      answered = true;
      lines.close();
      resolve(line);
    });
    lines.on("close", () => {
      if (!answered) resolve(undefined);
    });
    // In raw mode Ctrl+C reaches readline as a key, not as a signal.
    lines.on("SIGINT", () => interrupt(130));
    if (tty) {
      lines.setPrompt(prompt);
      lines.prompt();
    }
  });
}

/** Ctrl+C or SIGTERM: nothing to finish in a one-shot client; the OS closes the socket. */
function interrupt(code: number): never {
  console.error(process.stdin.isTTY ? "\ninterrupted" : "interrupted");
  Deno.exit(code);
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
