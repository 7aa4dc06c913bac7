#!/usr/bin/env -S deno run --allow-net
// reuse_server.ts: the notes' section "解决2MSL延时问题" (a server that can be
// restarted at once on the same port).
//
//   deno run -A reuse_server.ts [--host H] [--port P] [--backlog N] [--reply TEXT] [--size N]
//                               [--explain]
//   nc 127.0.0.1 8080                      # a client, as often as you like
//   deno run -A reuse_server.ts --demo     # the kernel shows why it works
//
// Like the note, it serves clients and closes each one first, so the
// TIME_WAIT (2MSL, 60 s on Linux) holds the server's own address: restarted
// without SO_REUSEADDR, bind() fails with "Address already in use".
// Deno.listen always sets SO_REUSEADDR on Unix: the note's fix is built in.
// `--demo` shows both sides on Linux, calling libc through Deno's FFI.
//
// What it fixes in the note: `sock.SOCK_STREAM` (no such name), print()'s
// full-width comma (a syntax error), one recv(1024) taken for a whole
// message (TCP may deliver it in pieces), send() taken to send everything.
//
// Reading guide (the note's line -> where it happens here):
//   socket() + setsockopt(SO_REUSEADDR)   serve(): Deno.listen, which sets SO_REUSEADDR
//     + bind() + listen(128)              itself (withHints, lib/net.ts, explains failures)
//   accept()                              serve(): listener.accept(), via acceptClient
//   recv(1024) + print(...)               serveClient(): readMessage, printReceived
//   send("thank you!\n".encode())         serveClient(): writeAll (conn.write may write part)
//   client_sock.close()                   serveClient(): closeQuietly(conn)
//   server_sock.close()                   serve(): closeQuietly(listener)
//   the 2MSL problem itself               --demo: reuseDemo (lib/reuse_demo.ts), a TIME_WAIT,
//                                         then the note's bind() through libc, without
//                                         and with SO_REUSEADDR

import {
  DEFAULT_PORT,
  onStopSignal,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  runMain,
  UsageError,
} from "./utils.ts";
import {
  acceptClient,
  announceListening,
  closeQuietly,
  formatAddress,
  withHints,
  writeAll,
} from "./lib/net.ts";
import { describeReceived, describeSent, type Explain, explainer } from "./lib/explain.ts";
import { printReceived, readMessage } from "./lib/message.ts";
import { connectionState, readTcpSockets } from "./lib/proc_net_tcp.ts";
import { reuseDemo } from "./lib/reuse_demo.ts";

const USAGE =
  `usage: deno run -A reuse_server.ts [--host H] [--port P] [--backlog N] [--reply TEXT] [--size N]
                                   [--explain]
       deno run -A reuse_server.ts --demo [--host H] [--port P]

Serves clients one after another until Ctrl+C: prints "HOST:PORT connected",
receives one message, prints "received: TEXT", replies and closes the client
first, like the notes' section "解决2MSL延时问题".

Why it can be restarted at once: the side that closes first keeps the
connection in TIME_WAIT for 2MSL (60 s on Linux), and that TIME_WAIT holds the
server's address. A plain bind() then fails with "Address already in use";
the note's fix is setsockopt(SOL_SOCKET, SO_REUSEADDR, 1) before bind().
Deno.listen sets SO_REUSEADDR on Unix by itself, so this server (any Deno
server) rebinds over a TIME_WAIT without error. --demo shows it on Linux.

options:
  --host H        address to listen on (default 127.0.0.1; the note's "" is 0.0.0.0)
  -p, --port P    port to listen on (default 8080; 0 picks any free port;
                  with --demo the default is 0)
  --backlog N     listen() backlog: finished handshakes waiting for accept()
                  (default 128, as the note)
  --reply TEXT    reply sent to each client, a newline is added (default "thank you!")
  --size N        most bytes read per message, like the note's recv(1024) (default 1024)
  --explain       before each step, print the note's Python call, the Deno call
                  that does it and its result (on stderr; stdout is unchanged)
  --demo          create a TIME_WAIT on the port, show it, then bind the port
                  without SO_REUSEADDR (fails), with it (works) and with
                  Deno.listen (works); needs Linux for /proc and libc
  -h, --help      show this help

The first line printed is "listening on HOST:PORT" with the real port.
Exit status: 0 stopped by Ctrl+C or SIGTERM (or --demo as the note says),
1 runtime error (e.g. port in use by a listening server), 2 bad usage.`;
async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    // No default here: the demo's default port (0) differs from the server's (8080).
    port: { type: "string", short: "p" },
    backlog: { type: "string", default: "128" },
    reply: { type: "string", default: "thank you!" },
    size: { type: "string", default: "1024" },
    demo: { type: "boolean", default: false },
    explain: { type: "boolean", default: false },
  }, USAGE);
  const portFlag: string | undefined = flags.port;
  const host = parseHost(flags.host);
  const backlog = parseIntFlag(flags.backlog, "--backlog", 1, 65535);
  const size = parseIntFlag(flags.size, "--size", 1);

  if (flags.demo) {
    if (flags.explain) {
      throw new UsageError("--explain goes with the server; --demo explains each of its steps");
    }
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) {
      throw new UsageError(`--demo needs an IPv4 --host such as 127.0.0.1, got '${host}'`);
    }
    return await reuseDemo(host === "0.0.0.0" ? "127.0.0.1" : host, parsePort(portFlag ?? "0"));
  }
  const servePort = parsePort(portFlag ?? String(DEFAULT_PORT));
  return await serve(host, servePort, backlog, size, flags.reply, explainer(flags.explain));
}

// ---------------------------------------------------------------- server ---

/** The note's server, in its order: listen, then accept and serve clients until Ctrl+C. */
async function serve(
  host: string,
  port: number,
  backlog: number,
  size: number,
  reply: string,
  explain: Explain,
): Promise<number> {
  // socket() + setsockopt(SO_REUSEADDR) + bind() + listen(backlog): Deno.listen does all four.
  const where = formatAddress({ hostname: host, port });
  const listener = withHints(
    `listen on ${where}`,
    () => Deno.listen({ hostname: host, port, tcpBacklog: backlog }),
  );
  const address = formatAddress(listener.addr);
  const replyBytes = new TextEncoder().encode(`${reply}\n`);

  let client: Deno.TcpConn | undefined;
  const removeSignals = onStopSignal(() => {
    // A pending accept() ends with undefined, a pending read() with Interrupted.
    closeQuietly(client);
    closeQuietly(listener);
  });
  // Announced only now: a Ctrl+C right after the readiness line must find the handler.
  explain(
    "setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)",
    "nothing to call: Deno.listen sets it itself on Unix",
    Deno.build.os === "windows" ? "not set (Windows)" : "SO_REUSEADDR on",
  );
  explain(
    `socket()+bind()+listen(${backlog})`,
    `Deno.listen({hostname, port, tcpBacklog: ${backlog}})`,
    `listening on ${address}`,
  );
  announceListening(listener);
  try {
    // accept(): one client at a time, like the note.
    while ((client = await acceptClient(listener))) {
      await serveClient(client, size, replyBytes, explain);
      client = undefined;
    }
  } finally {
    // server_sock.close(): the listening socket goes last.
    removeSignals();
    closeQuietly(client);
    closeQuietly(listener);
    explain("close()", "listener.close()", `stopped listening on ${address}`);
  }
  console.error("stopped");
  return 0;
}

/**
 * One client: one message, one reply, and the server closes first. A client
 * that vanishes ends only its own turn.
 */
async function serveClient(
  conn: Deno.TcpConn,
  size: number,
  reply: Uint8Array,
  explain: Explain,
): Promise<void> {
  const peer = formatAddress(conn.remoteAddr);
  explain("accept()", "await listener.accept()", `${peer} connected`);
  console.log(`${peer} connected`);
  let closed = false;
  try {
    // recv(1024): one message, however many segments carry it.
    const message = await readMessage(conn, size);
    explain(`recv(${size})`, "conn.read(buf)", describeReceived(message, size, "the client"));
    if (!message) return console.log(`${peer} closed the connection without sending anything`);
    printReceived(message, size);
    // send(): the whole reply (conn.write may write only part).
    try {
      const writes = await writeAll(conn, reply);
      explain("send()", "conn.write()", describeSent(reply.length, writes));
    } catch {
      explain("send()", "conn.write()", `failed: ${peer} went away`);
      return console.error(`${peer} went away before the reply could be sent`);
    }
    // client_sock.close() as soon as the reply is out, like the note: whichever
    // side's FIN goes first gets the TIME_WAIT, normally this one.
    const { localAddr, remoteAddr } = conn;
    closeQuietly(conn);
    closed = true;
    const outcome = await describeClose(peer, localAddr, remoteAddr);
    explain("close()", "conn.close()", outcome);
    console.log(outcome);
  } catch (err) {
    if (err instanceof Deno.errors.Interrupted || err instanceof Deno.errors.BadResource) return;
    console.error(`${peer} went away: ${(err as Error).message}`);
  } finally {
    closeQuietly(conn);
    if (!closed) explain("close()", "conn.close()", `closed ${peer}`);
  }
}

/**
 * Who closed first? A client may have sent its FIN already (nc -N does),
 * and then the TIME_WAIT is on its side. Linux's table says which: after
 * our close(), FIN_WAIT_* or TIME_WAIT means our FIN went first.
 */
async function describeClose(
  peer: string,
  local: Deno.NetAddr,
  remote: Deno.NetAddr,
): Promise<string> {
  if (Deno.build.os !== "linux" || !mayReadProc()) return `closed ${peer}`;
  const state = await readTcpSockets().then(
    (sockets) => connectionState(sockets, local, remote),
    () => undefined, // /proc unreadable (not run with -A): say no more than we know
  );
  if (!state) return `closed ${peer}`;
  return ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSING"].includes(state)
    ? `closed ${peer} first (kernel: ${state}): this side ends in TIME_WAIT`
    : `closed ${peer}, which had closed first (kernel: ${state}): the TIME_WAIT is on its side`;
}

/**
 * Whether /proc may be read without asking. Deno reads /proc only with all
 * access (-A); without it, reading would raise a permission prompt on a
 * terminal between two clients, so the kernel's verdict is left out quietly.
 */
function mayReadProc(): boolean {
  return Deno.permissions.querySync({ name: "read", path: "/proc/net/tcp" }).state === "granted";
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
