/**
 * bench/peers/deno_floor.ts: the idle-memory floor of a Deno server in
 * chat_server.ts's design: an accept loop and one pending 128-byte read per
 * connection, nothing else (it relays nothing). The one write is a welcome
 * line: the bench's clients count as admitted once a first line arrives.
 *
 * With --notice, once no client has connected for half a second, it writes
 * one line to every client: the least a room that says who joined must do.
 *
 * With --relay it is the latency floor of a Deno relay instead: Nagle off,
 * and whatever a client sends is written to every other client, one write
 * per receiver per read, nothing awaited (bench/floor_relay.c's shape).
 *
 *   deno run -N bench/peers/deno_floor.ts [--port N] [--notice | --relay]   (port 0: any free one)
 */

const at = Deno.args.indexOf("--port");
const port = at === -1 ? 0 : Number(Deno.args[at + 1]);
const WELCOME = new TextEncoder().encode("* welcome to the Deno floor\n");
const NOTICE = new TextEncoder().encode("* 1000 more joined\n");
const notice = Deno.args.includes("--notice");
const relay = Deno.args.includes("--relay");
const clients = new Set<Deno.TcpConn>();
let quiet: ReturnType<typeof setTimeout> | undefined;

/** One line to every client, once the connects have stopped for 500 ms. */
function noticeLater(): void {
  clearTimeout(quiet);
  quiet = setTimeout(() => {
    for (const conn of clients) conn.write(NOTICE).catch(() => {});
  }, 500);
}

const ignore = () => {};

/** What `from` sent, to every other client. */
function relayRead(from: Deno.TcpConn, bytes: Uint8Array): void {
  for (const conn of clients) if (conn !== from) conn.write(bytes).catch(ignore);
}

async function hold(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(relay ? 16 * 1024 : 128);
  if (relay) conn.setNoDelay(true);
  if (notice || relay) clients.add(conn);
  if (notice) noticeLater();
  try {
    await conn.write(WELCOME);
    let n: number | null;
    while ((n = await conn.read(buf)) !== null) {
      if (relay) relayRead(conn, buf.slice(0, n)); // else discarded
    }
  } catch {
    // Reset by the client.
  }
  clients.delete(conn);
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`listening on 127.0.0.1:${listener.addr.port}`);
for await (const conn of listener) hold(conn);
