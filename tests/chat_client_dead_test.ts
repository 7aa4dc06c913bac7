// Tests of chat_client.ts --timeout: a server that vanishes without a FIN or
// RST (a black hole) is reported instead of waited for forever, a live but
// quiet chat_server.ts is pinged without the user seeing it, and peers that
// are not chat_server.ts (nc -l) are never pinged.

import assert from "node:assert/strict";
import {
  delay,
  freePort,
  ROOT,
  send,
  spawnCommand,
  spawnScript,
  startServer,
  stopServer,
  waitForListen,
} from "./helpers.ts";

const chatServerExists = await Deno.stat(`${ROOT}chat_server.ts`).then(() => true, () => false);

function spawnClient(port: number, args: string[] = []) {
  // stdin stays open (piped, never closed): the client must not be ending on its own.
  return spawnScript("chat_client.ts", ["--port", String(port), ...args], { stdin: "piped" });
}

/**
 * A one-connection TCP relay in front of 127.0.0.1:targetPort. After
 * blackHole() it still reads both ways but forwards nothing and closes
 * nothing: what the client sees of a server whose host lost power.
 * Everything the client sent, forwarded or not, is kept for assertions.
 */
function startRelay(targetPort: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.TcpConn[] = [];
  const pumps: Promise<void>[] = [];
  const decoder = new TextDecoder();
  let fromClient = "";
  let dropping = false;

  const pump = async (from: Deno.TcpConn, to: Deno.TcpConn, record = false) => {
    const buffer = new Uint8Array(16 * 1024);
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        if (record) fromClient += decoder.decode(buffer.subarray(0, n), { stream: true });
        if (!dropping) await send(to, buffer.subarray(0, n));
      }
      if (!dropping) await to.closeWrite(); // pass the FIN on, unless we play dead
    } catch {
      // Closed by close(), or the other side went away.
    }
  };

  const accepting = (async () => {
    const client = await listener.accept();
    conns.push(client);
    const server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    conns.push(server);
    pumps.push(pump(client, server, true), pump(server, client));
  })().catch(() => {}); // the listener closed before anyone connected

  return {
    port: listener.addr.port,
    blackHole() {
      dropping = true;
    },
    fromClient: () => fromClient,
    async close() {
      listener.close();
      await accepting;
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.all(pumps);
    },
  };
}

const GREETING_END = "* type /help for commands; lines up to 4096 bytes"; // chat_server.ts's third line to a newcomer

Deno.test({
  name: "chat_client --timeout: a black-holed server is reported dead, exit 1, within the timeout",
  ignore: !chatServerExists,
  async fn() {
    const server = await startServer("chat_server.ts");
    const relay = startRelay(server.port);
    const client = spawnClient(relay.port, ["--timeout", "2"]);
    try {
      await client.stdout.waitFor(GREETING_END);
      relay.blackHole();
      const started = Date.now();
      const status = await client.exit(8000); // SIGKILL (status 137) if it hangs
      const waited = Date.now() - started;
      assert.equal(status.code, 1, `status ${status.code} after ${waited} ms`);
      // Not before the timeout (the last byte came just before the black hole), not much after.
      assert.ok(waited >= 1500 && waited < 5000, `gave up after ${waited} ms`);
      assert.equal(
        client.stderr.text,
        `error: no answer from 127.0.0.1:${relay.port} for 2 s; the server or the network is gone`,
      );
      // It asked before giving up; the question fell into the hole.
      assert.deepEqual(relay.fromClient().match(/^\/ping .*$/gm), ["/ping alive-1"]);
      assert.ok(!client.stdout.text.includes("pong"), client.stdout.text);
    } finally {
      client.kill();
      await client.exit();
      await relay.close();
      await stopServer(server);
    }
  },
});

Deno.test({
  name: "chat_client --timeout: a quiet live server is pinged, the pongs are swallowed",
  ignore: !chatServerExists,
  async fn() {
    const server = await startServer("chat_server.ts");
    const relay = startRelay(server.port); // forwards everything; it only counts the pings
    const client = spawnClient(relay.port, ["--timeout", "1"]);
    try {
      await client.stdout.waitFor(GREETING_END);
      await delay(3000); // six timeouts' halves of silence but for the pongs
      // Still connected and chatting: a command gets its answer.
      await client.write("/who\n");
      assert.match(await client.stdout.waitFor("* online"), /^\* online \(1\): guest\d+$/);
      const pings = relay.fromClient().match(/^\/ping .*$/gm) ?? [];
      assert.ok(pings.length >= 3, `only ${pings.length} pings in 3 s`);
      assert.deepEqual(pings, pings.map((_, i) => `/ping alive-${i + 1}`));
      assert.ok(!client.stdout.lines.some((line) => line.includes("pong")), client.stdout.text);
      assert.equal(client.stderr.text, "");
      // The user's own /ping is answered and shown as usual.
      await client.write("/ping me\n");
      assert.equal(await client.stdout.waitFor("pong"), "* pong me");
      await client.closeStdin();
      assert.equal((await client.exit()).code, 0);
      assert.equal(client.stderr.text, "* connection closed by server");
    } finally {
      client.kill();
      await client.exit();
      await relay.close();
      await stopServer(server);
    }
  },
});

Deno.test("chat_client --timeout: nc -l is never pinged and never timed out", async () => {
  const port = freePort();
  const nc = spawnCommand("nc", ["-l", "127.0.0.1", String(port)], { stdin: "piped" });
  await waitForListen(port);
  const client = spawnClient(port, ["--timeout", "1"]);
  try {
    // Only a first line that is chat_server's welcome arms the check.
    await nc.write("hello from nc\n* welcome, you are mallory\n");
    assert.equal(await client.stdout.next(), "hello from nc");
    assert.equal(await client.stdout.next(), "* welcome, you are mallory");
    await delay(2000);
    await client.write("still here\n");
    assert.equal(await nc.stdout.next(), "still here");
    assert.ok(!nc.stdout.text.includes("/ping"), nc.stdout.text);
    assert.deepEqual(nc.stdout.lines, ["still here"]);
    assert.equal(client.stderr.text, "");
    nc.kill("SIGTERM"); // nc closes its socket: the client sees EOF
    await nc.exit();
    assert.equal((await client.exit()).code, 0);
    assert.equal(client.stderr.text, "* connection closed by server");
  } finally {
    client.kill();
    nc.kill();
    await client.exit();
    await nc.exit();
  }
});
