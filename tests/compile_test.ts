// Tests of tools/compile.ts (the `compile` task): its argument handling,
// error lines and the permissions baked into each binary, and, when deno
// compile can get its runtime, a real server binary that listens and answers
// like `deno run -N server.ts`.
//
// deno compile downloads Deno's runtime (denort) the first time and fails
// without network access. Whether that works here is only known by trying,
// so the real build runs once up front: if the runtime cannot be had, the
// binary test is ignored (deno test counts it as ignored) and the reason is
// printed. The offline error path is tested everywhere by forcing it: an
// empty DENO_DIR (no cached runtime) and a proxy on a closed loopback port.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  chooseScripts,
  compileFlags,
  explainCompileError,
  outputPath,
  parseCompileArgs,
  PERMISSIONS,
  ROOT as TOOL_ROOT,
  RUNTIME_DOWNLOAD_ERROR,
  SCRIPTS,
} from "../tools/compile.ts";
import { UsageError } from "../utils.ts";
import { connectClient, freePort, ROOT, run, spawnCommand } from "./helpers.ts";

const TOOL = join(ROOT, "tools", "compile.ts");

function compile(args: string[], env: Record<string, string> = {}) {
  return run(Deno.execPath(), ["run", "-A", TOOL, ...args], { env, timeoutMs: 180_000 });
}

// ------------------------------------------------ the real build, up front ---

const realBuild = await (async () => {
  const outDir = await Deno.makeTempDir({ prefix: "compile_test_" });
  const result = await compile(["--out-dir", outDir, "server.ts"]);
  const noRuntime = result.code !== 0 && result.stderr.includes(RUNTIME_DOWNLOAD_ERROR);
  if (noRuntime) {
    await Deno.remove(outDir, { recursive: true });
    console.log(
      "compile_test: skipping the compiled-binary test: deno compile cannot download its " +
        "runtime (denort) here (no network access, nothing cached); the tool said:\n  " +
        result.stderr.trim(),
    );
  }
  return { outDir, result, noRuntime };
})();

Deno.test({
  name: "compile: server.ts builds into a binary that answers --help and serves on --port 0",
  ignore: realBuild.noRuntime,
  async fn() {
    const { outDir, result } = realBuild;
    try {
      assert.equal(result.code, 0, result.stderr);
      const binary = outputPath(outDir, "server.ts");
      assert.match(result.stdout, /^built .*server from server\.ts \(\d+\.\d MiB\)\n$/);

      const help = await run(binary, ["--help"]);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^usage: deno run -A server\.ts/);

      const server = spawnCommand(binary, ["--port", "0"]);
      const ready = /^listening on 127\.0\.0\.1:(\d+)$/.exec(await server.stdout.next(15_000));
      if (!ready) {
        server.kill("SIGKILL");
        await server.exit();
        assert.fail(`no readiness line; stderr:\n${server.stderr.text}`);
      }
      const client = await connectClient(Number(ready[1]));
      await client.send("hello binary\n");
      assert.equal(await client.lines.next(), "thank you!");
      await client.close();
      assert.equal((await server.exit()).code, 0, server.stderr.text);
      assert.match(server.stdout.text, /\nreceived: hello binary$/);
    } finally {
      await Deno.remove(outDir, { recursive: true });
    }
  },
});

// ------------------------------------------------------------ error paths ---

Deno.test({
  name: "compile: without a cached runtime or network, one clear error line, exit 1",
  ignore: Deno.env.has("DENORT_BIN"), // a local runtime: nothing would be downloaded
  async fn() {
    const denoDir = await Deno.makeTempDir({ prefix: "compile_test_deno_dir_" });
    const outDir = await Deno.makeTempDir({ prefix: "compile_test_out_" });
    const closedPort = freePort(); // the "proxy": connecting there is refused at once
    try {
      const proxy = `http://127.0.0.1:${closedPort}`;
      const result = await compile(["--out-dir", outDir, "server.ts"], {
        DENO_DIR: denoDir, // nothing cached: deno compile must download denort
        HTTPS_PROXY: proxy,
        https_proxy: proxy,
        NO_PROXY: "",
        no_proxy: "",
      });
      assert.equal(result.code, 1);
      assert.equal(result.stdout, "");
      assert.equal(result.stderr, `error: ${RUNTIME_DOWNLOAD_ERROR}\n`);
      assert.match(RUNTIME_DOWNLOAD_ERROR, /^deno compile needs network access the first time/);
      assert.deepEqual([...Deno.readDirSync(outDir)], [], "no binary, no temporary file left");
    } finally {
      await Deno.remove(denoDir, { recursive: true });
      await Deno.remove(outDir, { recursive: true });
    }
  },
});

Deno.test("compile: --help exits 0; bad arguments exit 2 with error: and usage", async () => {
  const [help, unknown, flag] = await Promise.all([
    compile(["--help"]),
    compile(["nosuch.ts"]),
    compile(["--bogus"]),
  ]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: deno run -A tools\/compile\.ts/);
  assert.match(help.stdout, /--out-dir DIR/);
  for (const result of [unknown, flag]) {
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^error: /);
    assert.match(result.stderr, /\nusage: deno run -A tools\/compile\.ts/);
    assert.equal(result.stdout, "");
  }
  assert.match(unknown.stderr, /^error: unknown script 'nosuch\.ts'; choose from server\.ts, /);
  assert.match(flag.stderr, /^error: unknown option '--bogus'/);
});

Deno.test("compile: a stand-in runtime (DENORT_BIN) builds each named script, one line each", async () => {
  // DENORT_BIN makes deno compile use a local runtime instead of downloading
  // one. The deno binary itself is NOT a working runtime (the result runs as
  // the deno CLI), but it lets the tool's success path run offline.
  const outDir = await Deno.makeTempDir({ prefix: "compile_test_standin_" });
  try {
    const result = await compile(["--out-dir", outDir, "server", "client.ts", "server.ts"], {
      DENORT_BIN: Deno.execPath(),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    const lines = result.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2, result.stdout); // server named twice: built once
    assert.match(lines[0], /^built \S*server from server\.ts \(\d+\.\d MiB\)$/);
    assert.match(lines[1], /^built \S*client from client\.ts \(\d+\.\d MiB\)$/);
    for (const script of ["server.ts", "client.ts"]) {
      const info = await Deno.stat(outputPath(outDir, script));
      assert.ok(info.isFile && (info.mode! & 0o111) !== 0, `${script}: not an executable`);
    }
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});

// ------------------------------------------------------------ unit tests ---

Deno.test("compile: chooseScripts picks existing scripts, in order, or the named ones", () => {
  const present = new Set(["server.ts", "client.ts", "chat_server.ts"]);
  const exists = (script: string) => present.has(script);
  assert.deepEqual(chooseScripts([], exists), ["server.ts", "client.ts", "chat_server.ts"]);
  assert.deepEqual(chooseScripts(["client", "./server.ts", "client.ts"], exists), [
    "client.ts",
    "server.ts",
  ]);
  assert.throws(() => chooseScripts(["utils.ts"], exists), UsageError); // not a script
  assert.throws(() => chooseScripts(["tests/helpers"], exists), UsageError);
  assert.throws(() => chooseScripts(["states.ts"], exists), {
    message: "states.ts does not exist in this project (yet)",
  });
  assert.throws(() => chooseScripts([], () => false), /none of server\.ts, client\.ts/);
  assert.equal(SCRIPTS.length, 6);
});

Deno.test("compile: each binary has its script's narrow permissions baked in, not -A", () => {
  // A binary cannot be given permissions when it runs: it needs, baked in, all
  // its script's features need, and no more.
  const net = ["--allow-net"];
  assert.deepEqual(compileFlags("server.ts"), net);
  assert.deepEqual(compileFlags("client.ts"), net);
  assert.deepEqual(compileFlags("chat_client.ts"), net);
  // --redis imports lib/cluster.ts, named so that it is in the binary.
  assert.deepEqual(compileFlags("chat_server.ts"), [
    ...net,
    "--allow-read",
    "--include",
    "lib/cluster.ts",
  ]);
  // Deno reads /proc only with all access.
  assert.deepEqual(compileFlags("states.ts"), ["--allow-all"]);
  assert.deepEqual(compileFlags("reuse_server.ts"), ["--allow-all"]);
  assert.deepEqual(Object.keys(PERMISSIONS), [...SCRIPTS]);
});

Deno.test("compile: parseCompileArgs defaults to dist/ in the project", () => {
  const options = parseCompileArgs([], (script) => script === "server.ts");
  assert.equal(options.outDir, join(TOOL_ROOT, "dist"));
  assert.equal(TOOL_ROOT, ROOT);
  assert.deepEqual(options.scripts, ["server.ts"]);
  assert.deepEqual(parseCompileArgs(["--out-dir", "/tmp/x", "server"], () => true), {
    outDir: "/tmp/x",
    scripts: ["server.ts"],
  });
  assert.throws(() => parseCompileArgs(["--out-dir"], () => true), UsageError);
  assert.throws(() => parseCompileArgs(["--out-dir", ""], () => true), UsageError);
});

Deno.test("compile: explainCompileError turns deno's output into one line", () => {
  const offline = [
    "Check server.ts",
    "Compile server.ts to dist/server",
    "Download https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip",
    "error: Writing deno compile executable to temporary file 'dist/server.tmp-1'",
    "",
    "Caused by:",
    "    0: Setting up base binary.",
    "    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-" +
    "unknown-linux-gnu.zip): client error (Connect): dns error: failed to lookup address",
    "",
    "Stack backtrace:",
    "   0: <unknown>",
  ].join("\n");
  assert.equal(explainCompileError(offline, "server.ts"), RUNTIME_DOWNLOAD_ERROR);

  const typeError = [
    "Check server.ts",
    "TS2322 [ERROR]: Type 'number' is not assignable to type 'string'.",
    "const x: string = 1;",
    "      ^",
    "    at file:///work/main/server.ts:1:7",
    "",
    "error: Type checking failed.",
    "",
    "  \x1b[33minfo:\x1b[39m The program failed type-checking, but it still might work correctly.",
    "  \x1b[36mhint:\x1b[39m Re-run with \x1b[4m--no-check\x1b[24m to skip type-checking.",
  ].join("\n");
  assert.equal(
    explainCompileError(typeError, "server.ts"),
    "cannot compile server.ts: TS2322 [ERROR]: Type 'number' is not assignable to type 'string'.",
  );

  // A successful download followed by another failure is not a download problem.
  const diskFull = [
    "Check client.ts",
    "Compile client.ts to dist/client",
    "Download https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip",
    "error: No space left on device (os error 28)",
  ].join("\n");
  assert.equal(
    explainCompileError(diskFull, "client.ts"),
    "cannot compile client.ts: No space left on device (os error 28)",
  );
  assert.equal(
    explainCompileError("", "client.ts"),
    "cannot compile client.ts: deno compile failed without a message",
  );
});
