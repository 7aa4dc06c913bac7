// server.ts: the notes' section "TCP服务器" (a one-shot TCP server).
//
//   deno run -A server.ts [--host H] [--port P] [--reply TEXT] [--size N]
//   nc 127.0.0.1 8080          # the note's own test, in another terminal
//
// Like the note: listen, accept one client, receive one message, send a
// reply, close the client, close the listener. Unlike the note, a message
// that arrives in several TCP segments is still one message (recv(1024)
// returns whatever one segment held), a Chinese character split between
// two segments comes out whole, and a client that vanishes is reported.

import {
  acceptClient,
  announceListening,
  closeQuietly,
  formatAddress,
  listenTcp,
  onStopSignal,
  paint,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  readMessage,
  runMain,
  sanitizeText,
  signalExitCode,
  writeAll,
} from "./utils.ts";

export const USAGE = `usage: deno run -A server.ts [--host H] [--port P] [--reply TEXT] [--size N]

Listens on H:P, accepts one client, prints what it sends, replies, and exits:
the notes' section "TCP服务器". Try it with: nc 127.0.0.1 8080

options:
  --host H        address to listen on (default 127.0.0.1; 0.0.0.0 for all IPv4, :: for all)
  -p, --port P    port to listen on (default 8080; 0 picks any free port)
  --reply TEXT    reply sent to the client, a newline is added (default "thank you!")
  --size N        most bytes read for the message, like the note's recv(1024) (default 1024)
  -h, --help      show this help

The message ends at a newline, when the client closes its side, or after N bytes.
The first line printed is "listening on HOST:PORT" with the real port.
Exit status: 0 served a client, 1 runtime error (e.g. port in use), 2 bad usage,
130 interrupted by Ctrl+C before a client was served.`;

export async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    reply: { type: "string", default: "thank you!" },
    size: { type: "string", default: "1024" },
  }, USAGE);
  const host = parseHost(flags.host);
  const port = parsePort(flags.port);
  const size = parseIntFlag(flags.size, "--size", 1);

  // socket() + bind() + listen(): Deno.listen does all three.
  const listener = listenTcp(host, port);

  let client: Deno.TcpConn | undefined;
  let interrupted: number | undefined;
  const removeSignals = onStopSignal((signal) => {
    interrupted = signalExitCode(signal);
    console.error("interrupted");
    closeQuietly(client);
    closeQuietly(listener);
  });
  // Announced only once Ctrl+C is handled: whoever waits for it may signal.
  announceListening(listener);

  try {
    // accept(): wait for one client.
    client = await acceptClient(listener);
    if (!client) return interrupted ?? 1;
    const peer = formatAddress(client.remoteAddr);
    console.log(`${peer} connected`);

    // recv(): one message, however many segments carry it.
    const message = await readMessage(client, size);
    if (!message) {
      console.log(`${peer} closed the connection without sending anything`);
      return 0;
    }
    console.log(`received: ${sanitizeText(message.text)}`);
    if (message.end === "size") {
      console.error(paint("yellow", `(cut at --size ${size} bytes)`, "stderr"));
    }

    // send(): the reply, all of it (conn.write may write only part).
    try {
      await writeAll(client, new TextEncoder().encode(`${flags.reply}\n`));
    } catch {
      console.error(`${peer} went away before the reply could be sent`);
      return 1;
    }
    return 0;
  } catch (err) {
    if (interrupted !== undefined) return interrupted;
    throw err;
  } finally {
    // close(): the client first, then the listening socket.
    removeSignals();
    closeQuietly(client);
    closeQuietly(listener);
  }
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
