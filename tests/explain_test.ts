// Black-box tests of --explain on server.ts, client.ts and reuse_server.ts:
// one line per step on stderr (`PYTHON_CALL  ->  DENO_CALL   RESULT`), and
// stdout exactly as without it.

import assert from "node:assert/strict";
import {
  colourEnv,
  connectClient,
  delay,
  ROOT,
  runInTerminal,
  runScript,
  type Server,
  startServer,
  stopServer,
} from "./helpers.ts";

const linux = Deno.build.os === "linux";

/** Ports vary from run to run; the rest of a line must not. */
function anyPort(line: string): string {
  return line.replace(/(127\.0\.0\.1|\[::1\]):\d+/g, "$1:PORT");
}

/**
 * One --explain line as a RegExp: the Python and Deno calls literally, the
 * result as a pattern.
 */
function explainLinePattern(python: string, deno: string, result: string): RegExp {
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${literal(python)} {2}-> {2}${literal(deno)} {3}${result}$`, "m");
}

/** The client's port, from the server's "HOST:PORT connected" line. */
function connectedPort(lines: string[], index = 0): number {
  const found = lines.filter((line) => / connected$/.test(line))[index];
  assert.ok(found, `no connected line in:\n${lines.join("\n")}`);
  return Number(/:(\d+) connected$/.exec(found)![1]);
}

/** Runs server.ts, lets `talk` be its one client, and returns all it printed. */
async function serveOnce(args: string[], talk: (port: number) => Promise<void>) {
  const server = await startServer("server.ts", args);
  await talk(server.port);
  const status = await server.exit();
  return {
    code: status.code,
    port: server.port,
    stdout: server.stdout.lines,
    stderr: server.stderr.lines,
  };
}

async function sayHello(port: number): Promise<void> {
  const client = await connectClient(port);
  await client.send("hello\n");
  assert.equal(await client.lines.next(), "thank you!");
  await client.close();
}

Deno.test("explain: server.ts --explain adds one line per step on stderr, stdout unchanged", async () => {
  const plain = await serveOnce([], sayHello);
  const explained = await serveOnce(["--explain"], sayHello);
  assert.equal(plain.code, 0);
  assert.equal(explained.code, 0);
  assert.deepEqual(explained.stdout.map(anyPort), plain.stdout.map(anyPort));
  assert.deepEqual(plain.stderr, []);

  const server = `127.0.0.1:${explained.port}`;
  const client = `127.0.0.1:${connectedPort(explained.stdout)}`;
  assert.deepEqual(explained.stderr, [
    `socket()+bind()+listen()  ->  Deno.listen({hostname, port})   listening on ${server}`,
    `accept()  ->  await listener.accept()   ${client} connected`,
    'recv(1024)  ->  conn.read(buf)   6 bytes: the line and its "\\n", 1 read',
    "send()  ->  conn.write()   11 bytes",
    `close()  ->  conn.close()   closed ${client}`,
    `close()  ->  listener.close()   stopped listening on ${server}`,
  ]);
});

Deno.test("explain: server.ts recv line counts the reads a split message took", async () => {
  const split = await serveOnce(["--explain"], async (port) => {
    const client = await connectClient(port);
    client.conn.setNoDelay(true); // each part its own segment
    for (const part of ["one ", "two ", "three\n"]) {
      await client.send(part);
      await delay(60);
    }
    assert.equal(await client.lines.next(), "thank you!");
    await client.close();
  });
  assert.equal(split.code, 0);
  assert.ok(split.stdout.includes("received: one two three"));
  const recv = split.stderr.find((line) => line.startsWith("recv("));
  const match = explainLinePattern(
    "recv(1024)",
    "conn.read(buf)",
    String
      .raw`14 bytes in (\d+) reads: the line and its "\\n"; one recv\(1024\) would have returned only the first (\d+) bytes`,
  ).exec(recv ?? "");
  assert.ok(match, recv);
  assert.ok(Number(match[1]) >= 2 && Number(match[2]) < 14, recv);
});

Deno.test("explain: server.ts recv line says how the message ended: EOF, --size, nothing", async () => {
  const recvLine = (lines: string[]) => lines.find((line) => line.startsWith("recv("));

  const eof = await serveOnce(["--explain"], async (port) => {
    const client = await connectClient(port);
    await client.send("no newline");
    await client.conn.closeWrite();
    assert.equal(await client.lines.next(), "thank you!");
    await client.close();
  });
  assert.equal(
    recvLine(eof.stderr),
    "recv(1024)  ->  conn.read(buf)   10 bytes, ended by the client's EOF (its FIN), 1 read",
  );

  const cut = await serveOnce(["--explain", "--size", "7"], async (port) => {
    const client = await connectClient(port);
    await client.send("ab你好cd\n"); // 7 bytes end inside 好: 5 are kept
    assert.equal(await client.lines.next(), "thank you!");
    await client.close();
  });
  assert.equal(
    recvLine(cut.stderr),
    "recv(7)  ->  conn.read(buf)   7 bytes, stopped at --size 7 (the text cut at a character " +
      "boundary), 1 read",
  );
  assert.ok(cut.stderr.includes("(stopped at --size 7 bytes; the rest was not read)"));

  const silent = await serveOnce(["--explain"], async (port) => {
    const client = await connectClient(port);
    await client.close();
  });
  assert.equal(silent.code, 0);
  assert.equal(
    recvLine(silent.stderr),
    `recv(1024)  ->  conn.read(buf)   0 bytes: the client closed without sending (Python's recv() returns b"")`,
  );
  assert.match(
    silent.stderr.at(-2)!,
    explainLinePattern("close()", "conn.close()", String.raw`closed 127\.0\.0\.1:\d+`),
  );
});

Deno.test("explain: client.ts --explain: connect, input(), send, recv, close; stdout unchanged", async () => {
  const exchange = async (args: string[], options: { stdin?: string } = {}) => {
    const server = await startServer("server.ts");
    const client = await runScript("client.ts", ["--port", String(server.port), ...args], {
      ...options,
      timeoutMs: 10_000,
    });
    assert.equal((await server.exit()).code, 0);
    return { ...client, port: server.port };
  };
  const plain = await exchange(["--message", "hello server"]);
  const explained = await exchange(["--message", "hello server", "--explain"]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(explained.code, 0, explained.stderr);
  assert.equal(plain.stdout, "received: thank you!\n");
  assert.equal(explained.stdout, plain.stdout);
  assert.equal(plain.stderr, "");

  const server = `127.0.0.1:${explained.port}`;
  const lines = explained.stderr.trimEnd().split("\n");
  assert.match(
    lines[0],
    explainLinePattern(
      "socket()+connect(address)",
      "Deno.connect({hostname, port})",
      String.raw`connected to ${server.replaceAll(".", "\.")} from 127\.0\.0\.1:\d+`,
    ),
  );
  assert.deepEqual(lines.slice(1), [
    'input("Words: ")  ->  --message TEXT   "hello server"',
    'send(msg.encode())  ->  conn.write(bytes)   13 bytes: the line and its "\\n"',
    'recv(1024)  ->  conn.read(buf)   11 bytes: the line and its "\\n", 1 read',
    `close()  ->  conn.close()   closed the connection to ${server}`,
  ]);

  // Without --message the line comes from stdin, through node:readline.
  const piped = await exchange(["--explain"], { stdin: "from stdin\n" });
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(piped.stdout, "received: thank you!\n");
  assert.match(
    piped.stderr,
    explainLinePattern('input("Words: ")', 'node:readline, one "line" event', '"from stdin"'),
  );
});

Deno.test("explain: client.ts --explain names the failed step, then the one error: line", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close(); // nothing listens there now
  const result = await runScript("client.ts", ["--port", String(port), "-m", "hi", "--explain"]);
  assert.equal(result.code, 1);
  assert.equal(result.stdout, "");
  const lines = result.stderr.trimEnd().split("\n");
  assert.deepEqual(lines.slice(0, 1), [
    "socket()+connect(address)  ->  Deno.connect({hostname, port})   failed (see the error line)",
  ]);
  assert.match(lines[1], /^error: cannot connect to 127\.0\.0\.1:\d+: connection refused/);
  assert.equal(lines.length, 2);
});

/** One exchange the way a polite client does it: send, read the reply, wait for EOF, close. */
async function exchange(port: number, text: string): Promise<void> {
  const client = await connectClient(port);
  await client.send(`${text}\n`);
  assert.equal(await client.lines.next(), "thank you!");
  await client.lines.end(); // the server closes first
  await client.close();
}

async function serveTwo(args: string[]): Promise<{ server: Server; code: number }> {
  const server = await startServer("reuse_server.ts", args);
  await exchange(server.port, "first");
  await server.stdout.waitFor(/^closed /);
  await exchange(server.port, "second");
  await server.stdout.waitFor(/^closed /);
  return { server, code: (await stopServer(server)).code };
}

Deno.test("explain: reuse_server.ts --explain: SO_REUSEADDR, listen(128), then each client's steps", async () => {
  const plain = await serveTwo([]);
  const explained = await serveTwo(["--explain"]);
  assert.equal(plain.code, 0);
  assert.equal(explained.code, 0);
  // Which side the kernel had in FIN_WAIT_* may differ between runs; nothing else may.
  const same = (line: string) => anyPort(line).replace(/\(kernel: \w+\)/, "(kernel: STATE)");
  const stdout = explained.server.stdout.lines;
  assert.deepEqual(stdout.map(same), plain.server.stdout.lines.map(same));
  assert.equal(plain.server.stderr.text, "stopped");

  const server = `127.0.0.1:${explained.server.port}`;
  const perClient = (index: number) => {
    const client = `127.0.0.1:${connectedPort(stdout, index)}`;
    const closed = stdout.filter((line) => line.startsWith("closed "))[index];
    return [
      `accept()  ->  await listener.accept()   ${client} connected`,
      `recv(1024)  ->  conn.read(buf)   ${
        index === 0 ? 6 : 7
      } bytes: the line and its "\\n", 1 read`,
      "send()  ->  conn.write()   11 bytes",
      `close()  ->  conn.close()   ${closed}`, // the same words as stdout's close line
    ];
  };
  assert.deepEqual(explained.server.stderr.lines, [
    "setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)  ->  nothing to call: Deno.listen sets it itself " +
    `on Unix   ${Deno.build.os === "windows" ? "not set (Windows)" : "SO_REUSEADDR on"}`,
    "socket()+bind()+listen(128)  ->  Deno.listen({hostname, port, tcpBacklog: 128})   " +
    `listening on ${server}`,
    ...perClient(0),
    ...perClient(1),
    `close()  ->  listener.close()   stopped listening on ${server}`,
    "stopped",
  ]);
  if (linux) assert.match(stdout.at(-1)!, /^closed 127\.0\.0\.1:\d+ first \(kernel: \w+\)/);
});

Deno.test("explain: reuse_server.ts --backlog shows in the listen line", async () => {
  const server = await startServer("reuse_server.ts", ["--explain", "--backlog", "5"]);
  assert.equal((await stopServer(server)).code, 0);
  assert.match(
    server.stderr.lines[1],
    explainLinePattern(
      "socket()+bind()+listen(5)",
      "Deno.listen({hostname, port, tcpBacklog: 5})",
      String.raw`listening on 127\.0\.0\.1:\d+`,
    ),
  );
});

Deno.test("explain: --help documents --explain; reuse_server --demo --explain is a usage error", async () => {
  for (const script of ["server.ts", "client.ts", "reuse_server.ts"]) {
    const help = await runScript(script, ["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^ {2}--explain {2}/m, script);
  }
  const demo = await runScript("reuse_server.ts", ["--demo", "--explain"]);
  assert.equal(demo.code, 2);
  assert.match(demo.stderr, /^error: --explain goes with the server/);
  assert.equal(demo.stdout, "");
});

Deno.test("explain: the lines are dim on a terminal, plain in a pipe or with NO_COLOR", async () => {
  const dim = "\x1b[2m"; // what styleText("dim") starts with on a terminal
  const client = async (terminal: boolean) => {
    const server = await startServer("server.ts");
    const args = ["run", "-A", `${ROOT}client.ts`, "--port", String(server.port), "-m", "hi"];
    if (terminal) { // stdout and stderr are the same terminal here
      const shown = await runInTerminal(Deno.execPath(), [...args, "--explain"]);
      assert.equal((await server.exit()).code, 0);
      assert.equal(shown.code, 0, shown.output);
      return { stdout: shown.output, stderr: "" };
    }
    const output = await new Deno.Command(Deno.execPath(), {
      args: [...args, "--explain"],
      clearEnv: true,
      env: colourEnv(), // colour allowed: only the pipe should keep it plain
      stdin: "null",
    }).output();
    assert.equal((await server.exit()).code, 0);
    const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    assert.equal(output.code, 0, decode(output.stderr));
    return { stdout: decode(output.stdout), stderr: decode(output.stderr) };
  };

  const onTerminal = await client(true);
  assert.ok(
    onTerminal.stdout.includes(`${dim}recv(1024)  ->  conn.read(buf)   11 bytes: the line`),
    onTerminal.stdout,
  );
  assert.ok(onTerminal.stdout.includes("received: thank you!"), onTerminal.stdout);

  // Piped, colour allowed by the environment: still plain, as every test above (NO_COLOR) is.
  const piped = await client(false);
  assert.equal(piped.stdout, "received: thank you!\n");
  assert.match(piped.stderr, /^recv\(1024\) {2}-> {2}conn\.read\(buf\) {3}11 bytes: /m);
  assert.ok(!piped.stderr.includes("\x1b["), piped.stderr);
});

Deno.test("explain: client and server count the same bytes for the same line", async () => {
  const server = await startServer("server.ts", ["--explain", "--reply", "谢谢"]);
  const client = await runScript("client.ts", [
    "--port",
    String(server.port),
    "--explain",
    "-m",
    "你好 server",
  ]);
  assert.equal((await server.exit()).code, 0);
  assert.equal(client.code, 0, client.stderr);
  const count = (lines: string[], call: string) =>
    Number(/ {3}(\d+) bytes/.exec(lines.find((line) => line.startsWith(call)) ?? "")?.[1]);
  const clientLines = client.stderr.split("\n");
  // "你好 server\n": 6 + 7 + 1 bytes; the reply "谢谢\n": 7.
  assert.equal(count(clientLines, "send("), 14);
  assert.equal(count(server.stderr.lines, "recv("), 14, "the line and its \\n, as sent");
  assert.equal(count(server.stderr.lines, "send("), 7);
  assert.equal(count(clientLines, "recv("), 7, "the reply and its \\n, as sent");
});
