#!/usr/bin/env -S deno run --allow-net
// server.ts: the notes' section "TCP服务器" (a one-shot TCP server).
//
//   deno run -A server.ts [--host H] [--port P] [--reply TEXT] [--size N] [--explain]
//   nc 127.0.0.1 8080          # the note's own test, in another terminal
//
// Like the note: listen, accept one client, receive one message, send a
// reply, close the client, close the listener. Unlike the note, a message
// that arrives in several TCP segments is still one message (recv(1024)
// returns whatever one segment held), a Chinese character split between
// two segments comes out whole, and a client that vanishes is reported.
// `--explain` prints, before each step's output, the note's Python call, the
// Deno call that does it and what it really did (on stderr).
//
// Reading guide (the note's line -> where it happens here, all in main()):
//   socket() + bind() + listen()   Deno.listen({hostname, port}); withHints (lib/net.ts)
//                                  turns "port in use" and the like into one error: line
//   accept()                       listener.accept(), via acceptClient (lib/net.ts), which
//                                  retries when a client resets before it is accepted
//   recv(1024) + decode()          readMessage (lib/message.ts): up to a newline,
//                                  the client's EOF, or --size bytes
//   print("接收数据：", ...)        printReceived (lib/message.ts)
//   send("tankes.".encode())       writeAll (lib/net.ts): conn.write() may write only part
//   client_socket.close()          closeQuietly(client)
//   server_sock.close()            closeQuietly(listener)

import {
  onStopSignal,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  runMain,
  signalExitCode,
} from "./utils.ts";
import {
  acceptClient,
  announceListening,
  closeQuietly,
  formatAddress,
  withHints,
  writeAll,
} from "./lib/net.ts";
import { describeReceived, describeSent, explainer } from "./lib/explain.ts";
import { printReceived, readMessage } from "./lib/message.ts";

const USAGE =
  `usage: deno run -A server.ts [--host H] [--port P] [--reply TEXT] [--size N] [--explain]

Listens on H:P, accepts one client, prints what it sends, replies, and exits:
the notes' section "TCP服务器". Try it with: nc 127.0.0.1 8080

options:
  --host H        address to listen on (default 127.0.0.1; 0.0.0.0 for all IPv4, :: for all)
  -p, --port P    port to listen on (default 8080; 0 picks any free port)
  --reply TEXT    reply sent to the client, a newline is added (default "thank you!")
  --size N        most bytes read for the message, like the note's recv(1024) (default 1024)
  --explain       before each step, print the note's Python call, the Deno call
                  that does it and its result (on stderr; stdout is unchanged)
  -h, --help      show this help

The message ends at a newline, when the client closes its side, or after N bytes.
The first line printed is "listening on HOST:PORT" with the real port.
Exit status: 0 served a client, 1 runtime error (e.g. port in use), 2 bad usage,
130 interrupted by Ctrl+C (143 by SIGTERM) before a client was served.`;

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    reply: { type: "string", default: "thank you!" },
    size: { type: "string", default: "1024" },
    explain: { type: "boolean", default: false },
  }, USAGE);
  const host = parseHost(flags.host);
  const port = parsePort(flags.port);
  const size = parseIntFlag(flags.size, "--size", 1);
  const explain = explainer(flags.explain);

  // socket() + bind() + listen(): Deno.listen does all three.
  const where = formatAddress({ hostname: host, port });
  const listener = withHints(`listen on ${where}`, () => Deno.listen({ hostname: host, port }));
  const address = formatAddress(listener.addr);

  let client: Deno.TcpConn | undefined;
  let interrupted: number | undefined;
  const removeSignals = onStopSignal((signal) => {
    interrupted = signalExitCode(signal);
    console.error("interrupted");
    closeQuietly(client);
    closeQuietly(listener);
  });
  // Announced only once Ctrl+C is handled: whoever waits for it may signal.
  explain("socket()+bind()+listen()", "Deno.listen({hostname, port})", `listening on ${address}`);
  announceListening(listener);

  let peer: string | undefined;
  try {
    // accept(): wait for one client.
    client = await acceptClient(listener);
    if (!client) return interrupted ?? 1;
    peer = formatAddress(client.remoteAddr);
    explain("accept()", "await listener.accept()", `${peer} connected`);
    console.log(`${peer} connected`);

    // recv(1024): one message, however many segments carry it.
    const message = await readMessage(client, size);
    explain(`recv(${size})`, "conn.read(buf)", describeReceived(message, size, "the client"));
    if (!message) {
      console.log(`${peer} closed the connection without sending anything`);
      return interrupted ?? 0;
    }
    printReceived(message, size);

    // send(): the whole reply (conn.write may write only part).
    const reply = new TextEncoder().encode(`${flags.reply}\n`);
    try {
      const writes = await writeAll(client, reply);
      explain("send()", "conn.write()", describeSent(reply.length, writes));
    } catch {
      explain("send()", "conn.write()", `failed: ${peer} went away`);
      console.error(`${peer} went away before the reply could be sent`);
      return interrupted ?? 1;
    }
    return interrupted ?? 0;
  } catch (err) {
    if (interrupted !== undefined) return interrupted;
    throw err;
  } finally {
    // close(): the client first, then the listening socket.
    removeSignals();
    closeQuietly(client);
    if (peer) explain("close()", "conn.close()", `closed ${peer}`);
    closeQuietly(listener);
    explain("close()", "listener.close()", `stopped listening on ${address}`);
  }
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
