// client.ts: the notes' section "TCP 客户端" (a one-shot TCP client).
//
//   deno run -A client.ts [--host H] [--port P] [--message TEXT] [--size N]
//   nc -l 127.0.0.1 8080       # the note's own test server, in another terminal
//
// Like the note: connect, ask for a line ("Words: "), send it, print the
// reply, close. Unlike the note (whose clinet_sock typo and bare recv() would
// crash), the line is sent whole with its newline, a reply split across TCP
// segments or inside a UTF-8 character is printed intact, and a server that
// closes without answering is reported instead of printing an empty reply.

import { createInterface } from "node:readline";
import process from "node:process";
import {
  closeQuietly,
  connectTcp,
  Failure,
  formatAddress,
  onStopSignal,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  readMessage,
  runMain,
  sanitizeText,
  signalExitCode,
  UsageError,
  writeAll,
} from "./utils.ts";

export const USAGE = `usage: deno run -A client.ts [--host H] [--port P] [--message TEXT] [--size N]

Connects to H:P, sends one line, prints the reply and exits: the notes'
section "TCP 客户端". Try it against: nc -l 127.0.0.1 8080

options:
  --host H          server address (default 127.0.0.1)
  -p, --port P      server port (default 8080)
  -m, --message T   the line to send; without it one line is read from stdin
                    (on a terminal after the prompt "Words: ")
  --size N          most bytes read for the reply, like the note's recv (default 1024)
  -h, --help        show this help

The reply ends at a newline, when the server closes, or after N bytes.
Exit status: 0 reply received, 1 runtime error (connection refused, server
closed without replying), 2 bad usage, 130 interrupted by Ctrl+C.`;

export async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    message: { type: "string", short: "m" },
    size: { type: "string", default: "1024" },
  }, USAGE);
  const host = parseHost(flags.host);
  const port = parsePort(flags.port);
  const size = parseIntFlag(flags.size, "--size", 1);
  if (port === 0) throw new UsageError("--port must name the server's port, 1-65535");

  // connect(): refused or unreachable is reported before asking for input.
  const conn = await connectTcp(host, port);
  const server = formatAddress(conn.remoteAddr);
  const removeSignals = onStopSignal((signal) => interrupt(signalExitCode(signal)));

  try {
    // input("Words: "): the line to send.
    const message = flags.message ?? await readLineFromStdin("Words: ");
    if (message === undefined) {
      throw new UsageError("no message: pass --message TEXT or type a line on stdin");
    }

    // send(): one line, newline-terminated so the server knows it is whole.
    try {
      await writeAll(conn, new TextEncoder().encode(`${message}\n`));
    } catch {
      throw new Failure(`${server} closed the connection before the message could be sent`);
    }

    // recv(): the reply, however many segments carry it.
    const reply = await readMessage(conn, size);
    if (!reply) throw new Failure(`${server} closed the connection without replying`);
    console.log(`received: ${sanitizeText(reply.text)}`);
    return 0;
  } finally {
    // close()
    removeSignals();
    closeQuietly(conn);
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
