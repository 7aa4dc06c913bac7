// reuse_server.ts: the notes' section "解决2MSL延时问题" (a server that can be
// restarted at once on the same port).
//
//   deno run -A reuse_server.ts [--host H] [--port P] [--backlog N] [--reply TEXT] [--size N]
//                               [--explain]
//   nc 127.0.0.1 8080                      # a client, as often as you like
//   deno run -A reuse_server.ts --demo     # the kernel shows why it works
//
// Like the note: listen with a backlog of 128, then serve clients one after
// another: accept, receive one message, reply "thank you!", and close the
// client first. The side that closes first waits 2MSL in TIME_WAIT (60 s on
// Linux), and that TIME_WAIT holds the server's own address: restarted
// without SO_REUSEADDR, bind() fails with "Address already in use". The note
// calls setsockopt(SOL_SOCKET, SO_REUSEADDR, 1) before bind(); Deno.listen
// always sets SO_REUSEADDR on Unix, so here the fix is built in (and cannot be
// turned off). `--demo` shows both sides of it on Linux: the TIME_WAIT in
// /proc/net/tcp, a bind() without SO_REUSEADDR failing with EADDRINUSE, and
// a bind() with it succeeding, via libc through Deno's FFI. `--explain`
// prints, before each step of the server, the note's Python call, the Deno
// call that does it and what it really did (on stderr).

import {
  acceptClient,
  announceListening,
  closeQuietly,
  DEFAULT_PORT,
  Failure,
  formatAddress,
  listenTcp,
  onStopSignal,
  paint,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  runMain,
  UsageError,
  writeAll,
} from "./utils.ts";
import { describeReceived, describeSent, type Explain, explainer } from "./lib/explain.ts";
import { printReceived, readMessage } from "./lib/message.ts";
import {
  connectionState,
  formatTable,
  readTcpSockets,
  socketsOnPort,
  type StateName,
  type TcpSocket,
} from "./states.ts";

export const USAGE =
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

// ---------------------------------------------------------------- server ---

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
    // close() as soon as the reply is out, like the note: whichever side's
    // FIN goes first gets the TIME_WAIT, normally this one.
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
async function describeClose(peer: string, local: Deno.NetAddr, remote: Deno.NetAddr) {
  if (Deno.build.os !== "linux") return `closed ${peer}`;
  let state: StateName;
  try {
    state = connectionState(await readTcpSockets(), local, remote);
  } catch {
    return `closed ${peer}`; // /proc unreadable (not run with -A): say no more than we know
  }
  return ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSING"].includes(state)
    ? `closed ${peer} first (kernel: ${state}): this side ends in TIME_WAIT`
    : `closed ${peer}, which had closed first (kernel: ${state}): the TIME_WAIT is on its side`;
}

async function serve(
  host: string,
  port: number,
  backlog: number,
  size: number,
  reply: string,
  explain: Explain,
): Promise<number> {
  // socket() + setsockopt(SO_REUSEADDR) + bind() + listen(backlog): Deno.listen does all four.
  const listener = listenTcp(host, port, { tcpBacklog: backlog });
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
    while ((client = await acceptClient(listener))) {
      await serveClient(client, size, replyBytes, explain);
      client = undefined;
    }
  } finally {
    removeSignals();
    closeQuietly(client);
    closeQuietly(listener);
    explain("close()", "listener.close()", `stopped listening on ${address}`);
  }
  console.error("stopped");
  return 0;
}

// ------------------------------------------------------------------ demo ---

// Linux's values (x86_64 and aarch64, the Linux targets Deno ships for); the
// note's Python gets them from its socket module.
const AF_INET = 2;
const SOCK_STREAM = 1;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const ERRNO_NAMES: Record<number, string> = {
  13: "EACCES",
  22: "EINVAL",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
};

type BindResult = { ok: true } | { ok: false; call: string; errno: number; text: string };

const LIBC_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;
type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

/** glibc's libc.so.6, or why it cannot be used (not Linux, another libc). */
function openLibc(): Libc | string {
  if (Deno.build.os !== "linux") {
    return `they call Linux's libc through FFI; on ${Deno.build.os} the socket constants and ` +
      "errno differ";
  }
  try {
    return Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
  } catch (err) {
    return `cannot load libc.so.6 through FFI (${(err as Error).message})`;
  }
}

/**
 * What the note's Python does, with libc itself: socket(), optionally
 * setsockopt(SOL_SOCKET, SO_REUSEADDR, 1), bind() and listen().
 */
function rawBind(libc: Libc, ipv4: string, port: number, reuseAddr: boolean): BindResult {
  const c = libc.symbols;
  // errno is read right after the failing call, before anything else can touch it.
  const failed = (call: string): BindResult => {
    const errno = new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
    const text = Deno.UnsafePointerView.getCString(c.strerror(errno)!);
    return { ok: false, call, errno, text };
  };
  const fd = c.socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return failed("socket");
  try {
    if (reuseAddr) {
      const one = new Int32Array([1]); // the note's last argument: 1 = on
      if (c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) < 0) return failed("setsockopt");
    }
    if (c.bind(fd, sockaddrIn(ipv4, port), 16) < 0) return failed("bind");
    if (c.listen(fd, 128) < 0) return failed("listen");
    return { ok: true };
  } finally {
    c.close(fd);
  }
}

/** struct sockaddr_in: family (host byte order), port and address (network byte order). */
function sockaddrIn(ipv4: string, port: number): Uint8Array {
  const bytes = new Uint8Array(16); // the last 8 bytes (sin_zero) stay 0
  const view = new DataView(bytes.buffer);
  view.setUint16(0, AF_INET, true); // little-endian hosts: x86_64, aarch64
  view.setUint16(2, port, false); // htons(port)
  bytes.set(ipv4.split(".").map(Number), 4);
  return bytes;
}

function describe(result: BindResult): string {
  if (result.ok) return paint("green", "ok");
  const name = ERRNO_NAMES[result.errno] ?? `errno ${result.errno}`;
  return paint("red", `${result.call}() failed: ${name} (errno ${result.errno}) "${result.text}"`);
}

/** Polls /proc until a TIME_WAIT holds `port` on our side, for up to 2 s. */
async function waitForTimeWait(port: number): Promise<TcpSocket[]> {
  const deadline = Date.now() + 2000;
  while (true) {
    const sockets = socketsOnPort(await readTcpSockets(), port);
    if (sockets.some((s) => s.state === "TIME_WAIT" && s.local.port === port)) return sockets;
    if (Date.now() > deadline) {
      throw new Failure(`no TIME_WAIT appeared on port ${port}: the demo cannot show the problem`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function demo(host: string, port: number): Promise<number> {
  const linux = Deno.build.os === "linux";
  const encoder = new TextEncoder();

  // 1. A server that closes first, like the note's: its side enters TIME_WAIT.
  const listener = listenTcp(host, port);
  const address = formatAddress(listener.addr);
  port = listener.addr.port;
  console.log(`1. A server on ${address} serves one client and closes first, like the note's`);
  try {
    const client = await Deno.connect({ hostname: host, port });
    const server = await listener.accept();
    try {
      await writeAll(client, encoder.encode("hello\n"));
      const message = await readMessage(server, 1024);
      await writeAll(server, encoder.encode("thank you!\n"));
      server.close(); // the server closes first: FIN from the server's side
      const reply = await readMessage(client, 1024);
      const eof = await client.read(new Uint8Array(1));
      console.log(
        `   client ${formatAddress(client.localAddr)} sent "${message?.text}", got ` +
          `"${reply?.text}", then read ${eof === null ? "null (the server's FIN)" : eof}`,
      );
    } finally {
      closeQuietly(server);
      closeQuietly(client); // the client's FIN: the server's side goes TIME_WAIT
    }
  } finally {
    listener.close();
  }

  // 2. Nothing listens any more, yet the address is not free.
  console.log(`2. The listener is closed too. The kernel's table for port ${port}:`);
  if (linux) {
    const sockets = await waitForTimeWait(port);
    for (const line of formatTable(sockets.map((socket) => ({ socket })))) {
      console.log(`   ${line}`);
    }
    console.log(`   No process owns the TIME_WAIT, yet it holds ${address} for 2MSL (60 s).`);
  } else {
    console.log(`   skipped: /proc/net/tcp is Linux only (try: netstat -an | grep ${port})`);
  }

  // 3. Rebinding, as a restarted server would.
  console.log(`3. Binding ${address} again at once, as a restarted server would:`);
  const outcome = (label: string, result: string) => console.log(`   ${label.padEnd(62)}${result}`);
  let asTheNoteSays = true;
  let rawShown = false;
  const libc = openLibc();
  if (typeof libc === "string") {
    console.log(`   (a), (b) skipped: ${libc}`);
  } else {
    try {
      const plain = rawBind(libc, host, port, false);
      outcome("(a) socket(), bind() without SO_REUSEADDR:", describe(plain));
      const reused = rawBind(libc, host, port, true);
      outcome("(b) socket(), setsockopt(SO_REUSEADDR, 1), bind(), listen():", describe(reused));
      asTheNoteSays = !plain.ok && plain.errno === 98 && reused.ok;
      rawShown = true;
    } finally {
      libc.close();
    }
  }
  let relisten: string;
  try {
    Deno.listen({ hostname: host, port }).close();
    relisten = paint("green", "ok");
  } catch (err) {
    relisten = paint("red", `failed: ${(err as Error).message}`);
    asTheNoteSays = false;
  }
  outcome("(c) Deno.listen(), which sets SO_REUSEADDR itself:", relisten);

  if (!asTheNoteSays) {
    throw new Failure("the kernel did not behave as the note describes (see above)");
  }
  console.log(
    rawShown
      ? "The TIME_WAIT blocks a plain bind() with EADDRINUSE, the note's 2MSL problem;\n" +
        "SO_REUSEADDR, which Deno.listen always sets, lets the server restart at once."
      : "Deno.listen sets SO_REUSEADDR, so the server restarts at once.",
  );
  return 0;
}

// ------------------------------------------------------------------ main ---

export async function main(args: string[]): Promise<number> {
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
    return await demo(host === "0.0.0.0" ? "127.0.0.1" : host, parsePort(portFlag ?? "0"));
  }
  const servePort = parsePort(portFlag ?? String(DEFAULT_PORT));
  return await serve(host, servePort, backlog, size, flags.reply, explainer(flags.explain));
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
