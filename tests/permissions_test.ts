// Least privilege, as a Deno user expects it: each script's task in deno.json
// runs it with only what it needs (--allow-net, not -A), and with exactly
// those permissions nothing ever stops to ask on a terminal (a permission
// prompt in the middle of a chat is a defect): not for the environment
// (colours need --allow-env, and are left out without it), nor for /proc
// (reuse_server.ts reads it after each client only when it may). The
// shebangs, the `deno install -g` recipe and the README's commands use the
// same flags.

import assert from "node:assert/strict";
import { SCRIPTS } from "../tools/compile.ts";
import { connectClient, freePort, ROOT, run, spawnCommand, spawnRedis } from "./helpers.ts";
import { openTerminal, type Terminal } from "./tmux.ts";

interface Task {
  description?: string;
  command: string;
}

const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)) as {
  tasks: Record<string, string | Task>;
};

/** The six scripts, each with the task that runs it. */
const SCRIPT_TASKS: Record<string, string> = {
  "server.ts": "server",
  "client.ts": "client",
  "states.ts": "states",
  "reuse_server.ts": "reuse_server",
  "chat_server.ts": "chat_server",
  "chat_client.ts": "chat_client",
};

/** What each script needs, found by running it (see the header). */
const NEEDS: Record<string, string[]> = {
  "server.ts": ["--allow-net"],
  "client.ts": ["--allow-net"],
  // Deno reads /proc only with all access.
  "states.ts": ["-A"],
  // Without -A it serves as well and leaves out who closed first.
  "reuse_server.ts": ["--allow-net"],
  // Read access for the module --redis imports by a specifier built at run time.
  "chat_server.ts": ["--allow-net", "--allow-read=lib/cluster.ts"],
  "chat_client.ts": ["--allow-net"],
};

/** Scripts that must run as `./SCRIPT.ts`: every one. */
const EXECUTABLE: readonly string[] = SCRIPTS;

function taskCommand(name: string): string {
  const task = config.tasks[name];
  assert.ok(task !== undefined, `deno.json has no task '${name}'`);
  return typeof task === "string" ? task : task.command;
}

/** The permission flags of the `deno run FLAGS SCRIPT` task that runs `script`. */
function taskFlags(script: string): string[] {
  const words = taskCommand(SCRIPT_TASKS[script]).split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "run"], words.join(" "));
  const at = words.indexOf(script);
  assert.ok(at > 1, `task ${SCRIPT_TASKS[script]} does not run ${script}`);
  return words.slice(2, at);
}

// ------------------------------------------------------------- deno.json ---

Deno.test("permissions: every task says what it does; each script has its own task", () => {
  for (const [name, task] of Object.entries(config.tasks)) {
    assert.equal(typeof task, "object", `task ${name}: no description`);
    assert.ok((task as Task).description?.trim(), `task ${name}: empty description`);
  }
  for (const name of ["test", "check", "compile", "bench", "soak", "coverage"]) taskCommand(name);
  assert.match(
    taskCommand("coverage"),
    /deno test .*--coverage=coverage .*deno coverage .*coverage\//,
  );
  assert.match(taskCommand("reuse_demo"), /^deno run -A reuse_server\.ts --demo$/);
});

Deno.test("permissions: the servers, clients and chat run with --allow-net, not -A", () => {
  for (const script of Object.keys(SCRIPT_TASKS)) {
    assert.deepEqual(taskFlags(script), NEEDS[script], `task ${SCRIPT_TASKS[script]}`);
  }
});

// ------------------------------------------------------ on a terminal ---

/** `deno run FLAGS SCRIPT ARGS` as a person would type it: colours allowed. */
function commandLine(script: string, args: string[]): string {
  const words = ["deno", "run", ...taskFlags(script), script, ...args];
  return `cd '${ROOT}' && env -u NO_COLOR ${words.join(" ")}; echo "exit=$?"; sleep 60`;
}

const PROMPT = /Deno requests|NotCapable|Requires \w+ access|Uncaught|Allow\?/;

function assertNoPrompt(rows: string[], what: string): void {
  const text = rows.join("\n");
  assert.doesNotMatch(text, PROMPT, `${what} asked for a permission:\n${text}`);
}

const has = (pattern: RegExp) => (rows: string[]) => rows.some((row) => pattern.test(row));

async function withTerminals(fn: (open: (line: string) => Promise<Terminal>) => Promise<void>) {
  const terminals: Terminal[] = [];
  try {
    await fn(async (line) => {
      const terminal = await openTerminal(line, { columns: 120, rows: 30 });
      terminals.push(terminal);
      return terminal;
    });
  } finally {
    await Promise.all(terminals.map((terminal) => terminal.close()));
  }
}

Deno.test("permissions: chat_server and chat_client, under their tasks' flags, never prompt on a terminal", async () => {
  await withTerminals(async (open) => {
    const port = freePort();
    const server = await open(commandLine("chat_server.ts", ["--port", String(port)]));
    await server.waitFor(
      "the readiness line",
      has(new RegExp(`listening on 127\\.0\\.0\\.1:${port}`)),
    );
    const client = await open(
      commandLine("chat_client.ts", ["--port", String(port), "--nick", "ann"]),
    );
    await client.waitFor("the nick", has(/you are now ann/), 10_000);
    await client.type("你好 from a terminal");
    await client.press("Enter");
    await server.waitFor("the line", has(/<ann> 你好 from a terminal/), 10_000);
    await server.type("hi ann");
    await server.press("Enter");
    await client.waitFor("the operator's line", has(/<server> hi ann/), 10_000);
    await client.type("/quit");
    await client.press("Enter");
    assertNoPrompt(
      await client.waitFor("the client's exit", has(/^exit=0$/), 10_000),
      "chat_client",
    );
    await server.press("C-c");
    assertNoPrompt(
      await server.waitFor("the server's exit", has(/^exit=0$/), 10_000),
      "chat_server",
    );
  });
});

Deno.test("permissions: server, client and reuse_server with --explain, under their tasks' flags, never prompt", async () => {
  await withTerminals(async (open) => {
    const port = freePort();
    const reuse = await open(commandLine("reuse_server.ts", ["--port", String(port), "--explain"]));
    await reuse.waitFor(
      "the readiness line",
      has(new RegExp(`^listening on 127\\.0\\.0\\.1:${port}`)),
    );
    const client = await open(
      commandLine("client.ts", ["--port", String(port), "--explain", "-m", "hi"]),
    );
    assertNoPrompt(await client.waitFor("the reply", has(/^exit=0$/), 10_000), "client.ts");
    assert.ok(has(/^received: thank you!$/)(await client.screen()));
    // After each client it would read /proc to say who closed first: without
    // -A that read would prompt, so it must not be tried.
    await reuse.waitFor("the close", has(/^closed 127\.0\.0\.1:\d+$/), 10_000);
    await reuse.press("C-c");
    assertNoPrompt(await reuse.waitFor("its exit", has(/^exit=0$/), 10_000), "reuse_server.ts");

    const serverPort = freePort();
    const server = await open(
      commandLine("server.ts", ["--port", String(serverPort), "--explain"]),
    );
    await server.waitFor(
      "the readiness line",
      has(new RegExp(`^listening on 127\\.0\\.0\\.1:${serverPort}`)),
    );
    const peer = await connectClient(serverPort);
    await peer.send("hello\n");
    assert.equal(await peer.lines.next(), "thank you!");
    await peer.close();
    assertNoPrompt(await server.waitFor("its exit", has(/^exit=0$/), 10_000), "server.ts");
  });
});

// ------------------------------------------------------- chat --redis ---

async function redisAvailable(): Promise<boolean> {
  try {
    return (await run("redis-server", ["--version"])).code === 0;
  } catch {
    return false;
  }
}

Deno.test({
  name: "permissions: chat_server --redis under its task's flags loads its Redis link",
  ignore: !(await redisAvailable()),
  async fn() {
    const redisPort = freePort();
    const redis = spawnRedis(redisPort);
    const words = [...taskFlags("chat_server.ts"), "chat_server.ts", "--port", "0"];
    const chat = spawnCommand("bash", [
      "-c",
      `cd '${ROOT}' && for i in $(seq 50); do redis-cli -p ${redisPort} ping >/dev/null 2>&1 && break; sleep 0.1; done; ` +
      `exec deno run ${words.join(" ")} --redis redis://127.0.0.1:${redisPort}`,
    ]);
    try {
      const ready = /^listening on 127\.0\.0\.1:(\d+)$/.exec(await chat.stdout.next(30_000));
      assert.ok(ready, chat.stderr.text);
      const client = await connectClient(Number(ready[1]));
      assert.match(await client.lines.next(10_000), /welcome, you are guest1/);
      await client.close();
      chat.kill("SIGINT");
      assert.equal((await chat.exit()).code, 0, chat.stderr.text);
      assert.doesNotMatch(chat.stderr.text, /error|Requires/, chat.stderr.text);
    } finally {
      chat.kill("SIGKILL");
      await chat.exit();
      redis.kill("SIGTERM");
      await redis.exit();
    }
  },
});

// ------------------------------------------------ shebangs and install ---

Deno.test("permissions: a script's shebang has its task's flags; ./server.ts runs", async () => {
  for (const script of Object.keys(SCRIPT_TASKS)) {
    const first = Deno.readTextFileSync(`${ROOT}${script}`).split("\n")[0];
    if (!first.startsWith("#!")) {
      assert.ok(!EXECUTABLE.includes(script), `${script} has no shebang`);
      continue;
    }
    assert.equal(first, `#!/usr/bin/env -S deno run ${taskFlags(script).join(" ")}`, script);
    assert.ok((Deno.statSync(`${ROOT}${script}`).mode! & 0o111) !== 0, `${script}: not executable`);
  }
  const results = await Promise.all(
    EXECUTABLE.map((script) => run(`${ROOT}${script}`, ["--help"])),
  );
  results.forEach((result, i) => {
    assert.equal(result.code, 0, `./${EXECUTABLE[i]} --help: ${result.stderr}`);
    assert.match(result.stdout, /^usage: /);
  });
});

Deno.test("permissions: the README's deno install -g recipe gives chat-server and chat", async () => {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const recipes = readme.split("\n").filter((line) => line.startsWith("deno install -g "));
  assert.equal(recipes.length, 2, recipes.join("\n"));
  const root = await Deno.makeTempDir({ prefix: "install_test_" });
  try {
    for (const recipe of recipes) {
      const words = recipe.replace(/\s+#.*$/, "").replaceAll('"$PWD/', `"${ROOT}`)
        .replaceAll('"', "").split(/\s+/);
      const result = await run(Deno.execPath(), [...words.slice(1), "--root", root]);
      assert.equal(result.code, 0, result.stderr);
    }
    for (const name of ["chat-server", "chat"]) {
      const installed = Deno.readTextFileSync(`${root}/bin/${name}`);
      assert.match(installed, /deno run .*--allow-net /, installed);
      assert.doesNotMatch(installed, /--allow-all|\s-A\s/, installed);
      const help = await run(`${root}/bin/${name}`, ["--help"]);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^usage: /);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("permissions: the README's commands run the servers, clients and chat without -A", () => {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const script = /deno run ((?:-\S+ )*)(server|client|reuse_server|chat_server|chat_client)\.ts/g;
  let seen = 0;
  for (const line of readme.split("\n")) {
    if (line.startsWith("$ ")) continue; // a transcript: what was run, kept as it was
    for (const match of line.matchAll(script)) {
      seen++;
      const flags = match[1].trim().split(/\s+/);
      const demo = match[2] === "reuse_server" && line.includes("--demo");
      if (!demo) assert.ok(!flags.includes("-A"), `README: ${line}`);
    }
  }
  assert.ok(seen >= 6, `only ${seen} commands found`);
});
