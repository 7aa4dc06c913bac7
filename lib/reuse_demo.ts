/**
 * `reuse_server.ts --demo`: the notes' 2MSL problem and its fix, with the
 * kernel as witness. A server closes first, so its side of the connection
 * waits in TIME_WAIT (shown from /proc/net/tcp); then the address is bound
 * again at once, the way the note's Python does it (socket, setsockopt,
 * bind, listen, through libc and Deno's FFI), without SO_REUSEADDR (fails
 * with EADDRINUSE), with it (works), and with Deno.listen (works: it always
 * sets SO_REUSEADDR).
 *
 * @module
 */

import { Failure, paint } from "../utils.ts";
import { closeQuietly, formatAddress, listenTcp, writeAll } from "./net.ts";
import { type Libc, LibcError, openLibc } from "./libc.ts";
import { readMessage } from "./message.ts";
import { missingForProc, pollTcpSockets, socketsOnPort } from "./proc_net_tcp.ts";
import { formatTable, plainRows } from "./state_table.ts";

/** The 2MSL problem and its fix, shown by the kernel: a TIME_WAIT, then three binds. */
export async function reuseDemo(host: string, port: number): Promise<number> {
  const missing = missingForProc();
  if (missing.length) {
    throw new Failure(
      `--demo reads /proc, which needs all permissions (missing: ${missing.join(", ")}): ` +
        "run it with deno run -A reuse_server.ts --demo",
    );
  }
  const address = await serveOneClientClosingFirst(host, port);
  await showTimeWait(address);
  console.log(`3. Binding ${formatAddress(address)} again at once, as a restarted server would:`);
  const libcAsTheNoteSays = bindWithLibc(host, address.port);
  const denoListenWorks = bindWithDenoListen(host, address.port);
  if (libcAsTheNoteSays === false || !denoListenWorks) {
    throw new Failure("the kernel did not behave as the note describes (see above)");
  }
  console.log(
    libcAsTheNoteSays
      ? "The TIME_WAIT blocks a plain bind() with EADDRINUSE, the note's 2MSL problem;\n" +
        "SO_REUSEADDR, which Deno.listen always sets, lets the server restart at once."
      : "Deno.listen sets SO_REUSEADDR, so the server restarts at once.",
  );
  return 0;
}

/** 1. A server that closes first, like the note's: its side of the connection enters TIME_WAIT. */
async function serveOneClientClosingFirst(host: string, port: number): Promise<Deno.NetAddr> {
  const encoder = new TextEncoder();
  const listener = listenTcp(host, port);
  const address = listener.addr;
  console.log(
    `1. A server on ${formatAddress(address)} serves one client and closes first, like the note's`,
  );
  try {
    const client = await Deno.connect({ hostname: host, port: address.port });
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
  return address;
}

/** 2. Nothing listens any more, yet the address is not free: /proc shows the TIME_WAIT. */
async function showTimeWait(address: Deno.NetAddr): Promise<void> {
  const { port } = address;
  console.log(`2. The listener is closed too. The kernel's table for port ${port}:`);
  if (Deno.build.os !== "linux") {
    return console.log(`   skipped: /proc/net/tcp is Linux only (try: netstat -an | grep ${port})`);
  }
  const deadline = Date.now() + 2000; // a TIME_WAIT appears within microseconds on loopback
  for await (const all of pollTcpSockets(10)) {
    const sockets = socketsOnPort(all, port);
    if (sockets.some((s) => s.state === "TIME_WAIT" && s.local.port === port)) {
      for (const line of formatTable(plainRows(sockets))) console.log(`   ${line}`);
      const held = formatAddress(address);
      return console.log(`   No process owns the TIME_WAIT, yet it holds ${held} for 2MSL (60 s).`);
    }
    if (Date.now() > deadline) break;
  }
  throw new Failure(`no TIME_WAIT appeared on port ${port}: the demo cannot show the problem`);
}

/** Prints one line of part 3: what was tried, then "ok" or why it failed. */
function outcome(label: string, failure: string | undefined): void {
  console.log(`   ${label.padEnd(62)}${failure ? paint("red", failure) : paint("green", "ok")}`);
}

/**
 * 3 (a) and (b): the note's calls made with libc, without SO_REUSEADDR and
 * with it. True when the kernel did as the note says (EADDRINUSE, then
 * success); undefined when libc cannot be used here.
 */
function bindWithLibc(host: string, port: number): boolean | undefined {
  const libc = openLibc();
  if (typeof libc === "string") {
    console.log(`   (a), (b) skipped: ${libc}`);
    return undefined;
  }
  try {
    const plain = bindLikeTheNote(libc, host, port, false);
    outcome("(a) socket(), bind() without SO_REUSEADDR:", plain?.message);
    const reused = bindLikeTheNote(libc, host, port, true);
    outcome("(b) socket(), setsockopt(SO_REUSEADDR, 1), bind(), listen():", reused?.message);
    return plain?.errnoName === "EADDRINUSE" && reused === undefined;
  } finally {
    libc.unload();
  }
}

/**
 * The note's Python, with libc itself: socket(), optionally
 * setsockopt(SOL_SOCKET, SO_REUSEADDR, 1), bind() and listen(), then
 * close(). Returns the failed call's error, undefined when all succeeded.
 */
function bindLikeTheNote(
  libc: Libc,
  ipv4: string,
  port: number,
  reuseAddr: boolean,
): LibcError | undefined {
  let fd: number | undefined;
  try {
    fd = libc.socket(); // socket(AF_INET, SOCK_STREAM)
    if (reuseAddr) libc.setsockopt(fd, "SO_REUSEADDR", 1); // the note's 1: on
    libc.bind(fd, ipv4, port);
    libc.listen(fd, 128);
    return undefined;
  } catch (err) {
    if (err instanceof LibcError) return err;
    throw err;
  } finally {
    if (fd !== undefined) libc.close(fd);
  }
}

/** 3 (c): what any Deno server does; true when it could listen. */
function bindWithDenoListen(host: string, port: number): boolean {
  const label = "(c) Deno.listen(), which sets SO_REUSEADDR itself:";
  try {
    Deno.listen({ hostname: host, port }).close();
    outcome(label, undefined);
    return true;
  } catch (err) {
    outcome(label, `failed: ${(err as Error).message}`);
    return false;
  }
}
