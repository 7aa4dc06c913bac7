/**
 * bench/peers/deno_floor.ts: the idle-memory floor of a Deno server in
 * chat_server.ts's design: an accept loop and one pending 128-byte read per
 * connection, nothing else (it relays nothing). The one write is a welcome
 * line: the bench's clients count as admitted once a first line arrives.
 *
 * With --notice, once no client has connected for half a second, it writes
 * one line to every client: the least a room that says who joined must do.
 *
 *   deno run -N bench/peers/deno_floor.ts [--port N] [--notice]   (port 0: any free one)
 */

const at = Deno.args.indexOf("--port");
const port = at === -1 ? 0 : Number(Deno.args[at + 1]);
const WELCOME = new TextEncoder().encode("* welcome to the Deno floor\n");
const NOTICE = new TextEncoder().encode("* 1000 more joined\n");
const notice = Deno.args.includes("--notice");
const clients = new Set<Deno.TcpConn>();
let quiet: ReturnType<typeof setTimeout> | undefined;

/** One line to every client, once the connects have stopped for 500 ms. */
function noticeLater(): void {
  clearTimeout(quiet);
  quiet = setTimeout(() => {
    for (const conn of clients) conn.write(NOTICE).catch(() => {});
  }, 500);
}

async function hold(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(128);
  if (notice) {
    clients.add(conn);
    noticeLater();
  }
  try {
    await conn.write(WELCOME);
    while ((await conn.read(buf)) !== null) {
      // Discarded.
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
