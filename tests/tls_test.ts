// chat_server.ts --tls-cert/--tls-key and tools/cert.ts, with real peers:
// Deno.connectTls, ncat --ssl, openssl s_client, and a plain-TCP client
// that must get no chat.

import assert from "node:assert/strict";
import {
  delay,
  LineReader,
  readableOf,
  run,
  runScript,
  send,
  type Server,
  spawnCommand,
  startServer,
  stopServer,
} from "./helpers.ts";

/** A fresh certificate from tools/cert.ts, in a temporary directory. */
interface CertFiles {
  dir: string;
  cert: string;
  key: string;
  pem: string;
}

async function makeCert(): Promise<CertFiles> {
  const dir = await Deno.makeTempDir({ prefix: "tls_test_" });
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  const result = await runScript("tools/cert.ts", ["--cert", cert, "--key", key]);
  assert.equal(result.code, 0, result.stderr);
  return { dir, cert, key, pem: await Deno.readTextFile(cert) };
}

/** Runs `body` with a certificate and a chat server speaking TLS with it. */
async function withTlsServer(
  body: (server: Server, files: CertFiles) => Promise<void>,
  extraArgs: string[] = [],
): Promise<void> {
  const files = await makeCert();
  const server = await startServer("chat_server.ts", [
    "--tls-cert",
    files.cert,
    "--tls-key",
    files.key,
    ...extraArgs,
  ]);
  try {
    await body(server, files);
  } finally {
    const status = await stopServer(server);
    await Deno.remove(files.dir, { recursive: true });
    assert.equal(status.code, 0, `the server's exit: ${server.stderr.text}`);
  }
}

/** A chat client over TLS (Deno.connectTls), its welcome read. */
interface TlsChatClient {
  conn: Deno.TlsConn;
  lines: LineReader;
  nick: string;
  send(text: string): Promise<void>;
  close(): Promise<void>;
}

async function joinTls(port: number, pem: string, hostname = "127.0.0.1"): Promise<TlsChatClient> {
  const conn = await Deno.connectTls({ hostname, port, caCerts: [pem] });
  const lines = new LineReader(readableOf(conn));
  const welcome = await lines.next(10_000);
  const guest = /^\* welcome, you are (guest\d+)$/.exec(welcome);
  if (!guest) throw new Error(`not a chat welcome: ${welcome}`);
  await lines.waitFor("* type /help for commands");
  return {
    conn,
    lines,
    nick: guest[1],
    send: (text) => send(conn, text),
    async close() {
      try {
        conn.close();
      } catch {
        // Closed by the server already.
      }
      await lines.finished;
    },
  };
}

Deno.test("tools/cert.ts writes a leaf certificate Deno accepts, for localhost and 127.0.0.1", async () => {
  await withTlsServer(async (server, files) => {
    assert.equal((await Deno.stat(files.key)).mode! & 0o777, 0o600);
    for (const hostname of ["localhost", "127.0.0.1"]) {
      const client = await joinTls(server.port, files.pem, hostname);
      await client.close();
    }
    const again = await runScript("tools/cert.ts", ["--cert", files.cert, "--key", files.key]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error: .*cert\.pem exists; pass --force to replace it\n$/);
  });
});

Deno.test("two Deno TLS clients chat; the readiness line is unchanged", async () => {
  await withTlsServer(async (server, files) => {
    assert.equal(server.host, "127.0.0.1"); // startServer read "listening on HOST:PORT"
    const alice = await joinTls(server.port, files.pem);
    const bob = await joinTls(server.port, files.pem);
    try {
      await alice.lines.waitFor(`* ${bob.nick} joined`);
      await alice.send("你好，世界\n");
      assert.equal(await bob.lines.waitFor("你好"), `<${alice.nick}> 你好，世界`);
      await bob.send(`/msg ${alice.nick} 私聊\n`);
      assert.equal(await alice.lines.waitFor("私聊"), `<${bob.nick}> (private) 私聊`);
    } finally {
      await alice.close();
      await bob.close();
    }
  });
});

Deno.test("ncat --ssl (verifying localhost) and openssl s_client chat through the TLS server", async () => {
  await withTlsServer(async (server, files) => {
    const watcher = await joinTls(server.port, files.pem);
    const ncat = spawnCommand("ncat", [
      "--ssl",
      "--ssl-verify",
      "--ssl-trustfile",
      files.cert,
      "localhost",
      String(server.port),
    ], { stdin: "piped" });
    const openssl = spawnCommand("openssl", [
      "s_client",
      "-connect",
      `127.0.0.1:${server.port}`,
      "-CAfile",
      files.cert,
      "-verify_return_error",
      "-quiet",
    ], { stdin: "piped" });
    try {
      const ncatNick = /you are (guest\d+)/.exec(await ncat.stdout.waitFor("* welcome"))![1];
      const opensslNick = /you are (guest\d+)/.exec(await openssl.stdout.waitFor("* welcome"))![1];
      await ncat.write("从 ncat 来\n");
      assert.equal(await openssl.stdout.waitFor("ncat"), `<${ncatNick}> 从 ncat 来`);
      await openssl.write("from openssl\n");
      assert.equal(await ncat.stdout.waitFor("from openssl"), `<${opensslNick}> from openssl`);
      assert.equal(
        await watcher.lines.waitFor("from openssl"),
        `<${opensslNick}> from openssl`,
      );
    } finally {
      for (const peer of [ncat, openssl]) {
        await peer.closeStdin();
        peer.kill();
        await peer.exit();
      }
      await watcher.close();
    }
  });
});

Deno.test("a TLS client that sends its last line and EOF still gets the answer", async () => {
  await withTlsServer(async (server, files) => {
    const result = await run("ncat", [
      "--ssl",
      "--ssl-verify",
      "--ssl-trustfile",
      files.cert,
      "localhost",
      String(server.port),
    ], { stdin: "/who\n", timeoutMs: 10_000 });
    assert.match(result.stdout, /^\* online \(1\): guest\d+$/m, result.stderr);
  });
});

/** Open file descriptors of a process (Linux). */
async function openFds(pid: number): Promise<number> {
  let count = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) count++;
  return count;
}

Deno.test("a plain-TCP client gets no chat; the TLS server keeps serving and leaks nothing", async () => {
  await withTlsServer(async (server, files) => {
    const before = await joinTls(server.port, files.pem);
    const fdsBefore = await openFds(server.child.pid);
    for (let i = 0; i < 20; i++) {
      const plain = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await send(plain, "hello in plain text\n");
      const received = new Uint8Array(4096);
      let seen = "";
      for (let n; (n = await plain.read(received).catch(() => null)) !== null;) {
        seen += new TextDecoder().decode(received.subarray(0, n));
      }
      plain.close();
      assert(!seen.includes("welcome"), `a plain client got chat: ${JSON.stringify(seen)}`);
    }
    assert.equal(before.lines.peek(), undefined, "the room saw the plain clients");
    const after = await joinTls(server.port, files.pem);
    await after.send("still here\n");
    assert.equal(await before.lines.waitFor("still here"), `<${after.nick}> still here`);
    await after.close();
    await before.lines.waitFor(`* ${after.nick} left`);
    assert.ok(await openFds(server.child.pid) < fdsBefore + 3);
    await before.close();
  });
});

Deno.test("connections that never finish a handshake (probes, silent clients) are closed", async () => {
  await withTlsServer(async (server) => {
    const fdsBefore = await openFds(server.child.pid);
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    for (let i = 0; i < 10; i++) {
      (await Deno.connect({ hostname: "127.0.0.1", port: server.port })).close(); // a port probe
    }
    await delay(300);
    assert.ok(await openFds(server.child.pid) > fdsBefore, "held while they might still speak");
    const closed = await silent.read(new Uint8Array(16)).catch(() => null);
    assert.equal(closed, null, "a client silent for the handshake timeout is closed");
    silent.close();
    await delay(300);
    assert.ok(await openFds(server.child.pid) <= fdsBefore, "nothing left behind");
  });
});

Deno.test("--tls-cert and --tls-key: both or neither, readable, PEM, a matching pair", async () => {
  const files = await makeCert();
  const other = await makeCert();
  try {
    const cases: [string[], RegExp][] = [
      [["--tls-cert", files.cert], /^error: --tls-cert FILE and --tls-key FILE go together/],
      [["--tls-key", files.key], /^error: --tls-cert FILE and --tls-key FILE go together/],
      [
        ["--tls-cert", `${files.dir}/missing.pem`, "--tls-key", files.key],
        /^error: --tls-cert .*missing\.pem: cannot read it \(no such file\)/,
      ],
      [
        ["--tls-cert", files.key, "--tls-key", files.key],
        /^error: --tls-cert .*: not a PEM certificate/,
      ],
      [
        ["--tls-cert", files.cert, "--tls-key", files.cert],
        /^error: --tls-key .*: not a PEM private key/,
      ],
      [
        ["--tls-cert", files.cert, "--tls-key", other.key],
        /^error: --tls-key .*: not the key of the certificate in /,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await runScript("chat_server.ts", ["--port", "0", ...args]);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, message);
      assert(!result.stderr.includes("    at "), result.stderr);
    }
  } finally {
    await Deno.remove(files.dir, { recursive: true });
    await Deno.remove(other.dir, { recursive: true });
  }
});

Deno.test("TCP_NODELAY holds under TLS: a second small write is not held for an ACK", async () => {
  // B asks /ping and, 2 ms later, A says a line: the server writes B twice,
  // B sending nothing in between. With Nagle's algorithm on, the second
  // write waits for B's delayed ACK of the first (~40 ms on Linux).
  await withTlsServer(async (server, files) => {
    const a = await joinTls(server.port, files.pem);
    const b = await joinTls(server.port, files.pem);
    await a.lines.waitFor(`* ${b.nick} joined`);
    const latencies: number[] = [];
    try {
      for (let round = 0; round < 30; round++) {
        await b.send(`/ping ${round}\n`);
        await new Promise((resolve) => setTimeout(resolve, 2));
        const sent = performance.now();
        await a.send(`line ${round}\n`);
        await b.lines.waitFor(`<${a.nick}> line ${round}`);
        latencies.push(performance.now() - sent);
      }
    } finally {
      await a.close();
      await b.close();
    }
    latencies.sort((x, y) => x - y);
    const median = latencies[latencies.length >> 1];
    assert.ok(median < 15, `median ${median.toFixed(1)} ms: ${latencies.map(Math.round)}`);
  });
});

Deno.test("openssl is what tools/cert.ts needs: without it, one error line and exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tls_test_" });
  try {
    const result = await run(Deno.execPath(), [
      "run",
      "-A",
      "tools/cert.ts",
      "--cert",
      `${dir}/c.pem`,
      "--key",
      `${dir}/k.pem`,
    ], { env: { PATH: dir } });
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      "error: openssl not found; install it: sudo apt-get install openssl\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
