/**
 * bench/peers/deno_floor.ts: the idle-memory floor of a Deno server in
 * chat_server.ts's design: an accept loop and one pending 128-byte read per
 * connection, nothing else (it relays nothing). The one write is a welcome
 * line: the bench's clients count as admitted once a first line arrives.
 *
 *   deno run -N bench/peers/deno_floor.ts [--port N]   (default 0: any free port)
 */

const at = Deno.args.indexOf("--port");
const port = at === -1 ? 0 : Number(Deno.args[at + 1]);
const WELCOME = new TextEncoder().encode("* welcome to the Deno floor\n");

async function hold(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(128);
  try {
    await conn.write(WELCOME);
    while ((await conn.read(buf)) !== null) {
      // Discarded.
    }
  } catch {
    // Reset by the client.
  }
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`listening on 127.0.0.1:${listener.addr.port}`);
for await (const conn of listener) hold(conn);
