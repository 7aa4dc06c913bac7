// Black-box tests of chat_server.ts --redis URL [--room NAME]: several
// instances sharing one Redis act as one chat room (the contract is issue 7).
// Every test starts its own redis-server on a free loopback port and real
// chat_server.ts processes on --port 0, and talks to them over TCP like the
// other chat tests: lines from each client reach every other client on every
// instance exactly once and in per-sender order, /msg, /who (-v), renames and
// guest nicks work cluster-wide, a /nick race across instances has one
// winner, an instance killed with SIGKILL is noticed (its users leave, their
// nicks free up), Redis going away and coming back is announced and loses or
// repeats nothing it should not, different rooms on one Redis stay apart, and
// the startup and usage errors are one `error:` line. Without --redis the
// static module graph must stay free of npm:redis.
//
// The tests that need a redis-server are ignored (with a printed reason) when
// none is installed; the ones that only run chat_server.ts or `deno info`
// (Redis down at start, usage, module graph) run anyway.

import assert from "node:assert/strict";
import {
  type ChatClient,
  type Client,
  delay,
  freePort,
  joinChat,
  joinChatAs,
  ROOT,
  run,
  runScript,
  type Script,
  send,
  type Server,
  spawnRedis,
  startServer,
  stopServer,
  text,
} from "./helpers.ts";
import { FaultProxy } from "./fault_proxy.ts";
import { joinCluster } from "../lib/cluster.ts";
import type { JoinCluster } from "../lib/room_link.ts";

// chat_server.ts loads lib/cluster.ts from a specifier the type checker
// cannot follow (so that Deno does not fetch npm:redis ahead of time): this
// keeps what it expects and what the module exports in step.
const _loadedAs: JoinCluster = joinCluster;

/** Why the tests that need redis-server cannot run here, or undefined. */
const NO_REDIS = await (async () => {
  try {
    const { success } = await new Deno.Command("redis-server", {
      args: ["--version"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success ? undefined : "`redis-server --version` failed";
  } catch {
    return "redis-server is not installed (CI installs it)";
  }
})();
if (NO_REDIS) console.log(`chat_cluster_test: ignoring the tests that need Redis: ${NO_REDIS}`);

/** A chat_server.ts --redis instance; `label` is HOST:PORT from its readiness line. */
type Instance = Server & { label: string };

interface Redis {
  port: number;
  url: string;
  proc: Script;
}

/**
 * Everything one test started. `end()` closes clients, stops the chat
 * instances (SIGTERM; with `check`, each must exit 0), then the redis-servers.
 * It is idempotent, so the finally block can always call it.
 */
class Cluster {
  #redises: Redis[] = [];
  #instances: Instance[] = [];
  #clients: Client[] = [];

  /** Starts redis-server on `port` (default: a free one) and waits for PONG. */
  async redis(port = freePort()): Promise<Redis> {
    const proc = spawnRedis(port);
    const redis = { port, url: `redis://127.0.0.1:${port}`, proc };
    this.#redises.push(redis);
    await waitForRedis(redis);
    return redis;
  }

  /** SIGTERM, and waits for its exit status. */
  async stopRedis(redis: Redis): Promise<Deno.CommandStatus> {
    this.#redises = this.#redises.filter((r) => r !== redis);
    return await stopServer(redis.proc);
  }

  /** Starts `count` instances on `redis` at once, each with `args` after --redis URL. */
  async chats(
    redis: Redis | string,
    count: number,
    args: string[] = [],
    options: { stdin?: "piped" | "null" } = {},
  ): Promise<Instance[]> {
    const url = typeof redis === "string" ? redis : redis.url;
    const started = await Promise.allSettled(
      Array.from(
        { length: count },
        () => startServer("chat_server.ts", ["--redis", url, ...args], options),
      ),
    );
    const instances: Instance[] = [];
    for (const result of started) {
      if (result.status === "fulfilled") {
        const server = result.value;
        const label = server.stdout.lines[0].replace(/^listening on /, "");
        const instance = { ...server, label };
        this.#instances.push(instance);
        instances.push(instance);
      }
    }
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return instances;
  }

  async chat(
    redis: Redis | string,
    args: string[] = [],
    options: { stdin?: "piped" | "null" } = {},
  ): Promise<Instance> {
    return (await this.chats(redis, 1, args, options))[0];
  }

  /** kill -9, and waits for it to be gone. */
  async kill9(instance: Instance): Promise<void> {
    this.#instances = this.#instances.filter((i) => i !== instance);
    instance.kill("SIGKILL");
    await instance.exit();
  }

  /** Connects and reads the three welcome lines; returns the guest nick too. */
  async join(instance: Instance): Promise<ChatClient> {
    const client = await joinChat(instance.port);
    this.#clients.push(client);
    return client;
  }

  /** Joins and takes `nick`; `guest` is the nick it had before. */
  async joinAs(instance: Instance, nick: string): Promise<ChatClient & { guest: string }> {
    const client = await joinChatAs(instance.port, nick, { amidOthers: true });
    this.#clients.push(client);
    return client;
  }

  async end(check: boolean): Promise<void> {
    const clients = this.#clients.splice(0);
    await Promise.all(clients.map((c) => c.close()));
    const instances = this.#instances.splice(0);
    const statuses = await Promise.all(instances.map((i) => stopServer(i)));
    const redises = this.#redises.splice(0);
    await Promise.all(redises.map((r) => stopServer(r.proc)));
    if (!check) return;
    instances.forEach((instance, i) => {
      assert.equal(
        statuses[i].code,
        0,
        `instance ${instance.label} exited ${statuses[i].code} on SIGTERM; stderr:\n` +
          instance.stderr.text,
      );
    });
  }
}

/** A test that needs redis-server: `cluster: NAME`, with a Cluster cleaned up in any case. */
function clusterTest(name: string, fn: (cluster: Cluster) => Promise<void>) {
  Deno.test({
    name: `cluster: ${name}`,
    ignore: NO_REDIS !== undefined,
    async fn() {
      const cluster = new Cluster();
      try {
        await fn(cluster);
        await cluster.end(true);
      } finally {
        await cluster.end(false);
      }
    },
  });
}

/** Until redis-server answers PING with +PONG (bounded). */
async function waitForRedis(redis: Redis, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pong(redis.port)) return;
    await delay(20);
  }
  throw new Error(
    `redis-server on port ${redis.port} did not answer within ${timeoutMs} ms:\n` +
      `${redis.proc.stdout.text}\n${redis.proc.stderr.text}`,
  );
}

async function pong(port: number): Promise<boolean> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return false;
  }
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      conn.close();
    }
  };
  const timer = setTimeout(close, 1000); // a pending read then throws
  try {
    await send(conn, "PING\r\n");
    const buffer = new Uint8Array(64);
    const n = await conn.read(buffer);
    return n !== null && text(buffer.subarray(0, n)).startsWith("+PONG");
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    close();
  }
}

/** The last lines a client got, for failure messages. */
function tail(client: Client, count = 30): string {
  return client.lines.lines.slice(-count).join("\n");
}

/**
 * Waits until the client has received a line equal to `want` (or matching
 * it) at any point, without moving its read position; returns the line.
 */
async function seen(client: Client, want: string | RegExp, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const matches = (line: string) => typeof want === "string" ? line === want : want.test(line);
  while (true) {
    const found = client.lines.lines.find(matches);
    if (found !== undefined) return found;
    if (Date.now() >= deadline) {
      throw new Error(`no line ${want} within ${timeoutMs} ms; last lines:\n${tail(client)}`);
    }
    await delay(20);
  }
}

/** How many times the client received exactly `line`. */
function countOf(client: Client, line: string): number {
  return client.lines.lines.filter((l) => l === line).length;
}

/**
 * Asks `/who` (or `/who -v`) until the answer is `want` (a line, or the
 * count N of `* online (N): ...`); bounded. Returns the answer.
 */
async function waitForWho(
  client: Client,
  want: string | number,
  options: { verbose?: boolean; timeoutMs?: number } = {},
): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    await client.send(options.verbose ? "/who -v\n" : "/who\n");
    const line = await client.lines.waitFor(/^\* online \(/, 5000);
    const ok = typeof want === "number" ? line.startsWith(`* online (${want}):`) : line === want;
    if (ok) return line;
    if (Date.now() >= deadline) {
      throw new Error(`still '${line}' after ${timeoutMs} ms, want ${want}`);
    }
    await delay(50);
  }
}

/** What `client` got from `nick`: its chat lines and its /me lines, in arrival order. */
function from(client: Client, nick: string): string[] {
  return client.lines.lines.filter((l) =>
    l.startsWith(`<${nick}> `) || l.startsWith(`* ${nick} says`)
  );
}

/** Lines received more than once (ignoring /who answers, which may repeat). */
function repeated(client: Client): string[] {
  const counts = new Map<string, number>();
  for (const line of client.lines.lines) {
    if (!line.startsWith("* online (")) counts.set(line, (counts.get(line) ?? 0) + 1);
  }
  return [...counts].filter(([, n]) => n > 1).map(([line, n]) => `${n}x ${line}`);
}

// ------------------------------------------------------------------ tests ---

clusterTest("two instances, two clients each: every line once, in order; /me, joins", async (c) => {
  const redis = await c.redis();
  const [A, B] = await c.chats(redis, 2);
  const a1 = await c.joinAs(A, "a1");
  const b1 = await c.joinAs(B, "b1");
  await waitForWho(a1, "* online (2): a1, b1");
  await waitForWho(b1, "* online (2): a1, b1");

  // Join notices cross instances, under the name a first /nick gave.
  const a2 = await c.joinAs(A, "a2");
  await seen(b1, "* a2 joined");
  const b2 = await c.joinAs(B, "b2");
  await seen(a1, "* b2 joined");
  await seen(a2, "* b2 joined");
  for (const client of [a1, b1]) {
    const guests = client.lines.lines.filter((line) => /^\* guest\d+ (joined|is now)/.test(line));
    assert.deepEqual(guests, [], "never heard of as a guest");
  }
  const everyone = [a1, a2, b1, b2];
  for (const client of everyone) await waitForWho(client, "* online (4): a1, a2, b1, b2");

  // Two senders, one on each instance, 50 lines each at the same time, then /me.
  const senders = [a1, b1];
  const count = 50;
  const expected = (nick: string) => [
    ...Array.from({ length: count }, (_, i) => `<${nick}> line ${i} from ${nick}`),
    `* ${nick} says goodbye`,
  ];
  await Promise.all(senders.map(async (sender) => {
    for (let i = 0; i < count; i++) await sender.send(`line ${i} from ${sender.nick}\n`);
    await sender.send("/me says goodbye\n");
  }));
  for (const receiver of everyone) {
    for (const sender of senders) {
      if (sender !== receiver) await seen(receiver, `* ${sender.nick} says goodbye`, 10_000);
    }
  }
  for (const receiver of everyone) await waitForWho(receiver, 4); // anything late has come
  for (const receiver of everyone) {
    for (const sender of senders) {
      assert.deepEqual(
        from(receiver, sender.nick),
        sender === receiver ? [] : expected(sender.nick),
        `${receiver.nick} from ${sender.nick}`,
      );
    }
  }
  for (const [client, newcomer] of [[b1, "a2"], [a1, "b2"], [a2, "b2"]] as const) {
    assert.equal(countOf(client, `* ${newcomer} joined`), 1, `${client.nick}: ${newcomer} joined`);
  }
  for (const client of everyone) assert.deepEqual(repeated(client), [], client.nick);
});

clusterTest("three instances: lines flow all ways; a rename is seen everywhere", async (c) => {
  const redis = await c.redis();
  const instances = await c.chats(redis, 3);
  const nicks = ["ann", "ben", "cat"];
  const clients = await Promise.all(instances.map((instance, i) => c.joinAs(instance, nicks[i])));
  for (const client of clients) await waitForWho(client, "* online (3): ann, ben, cat");

  const count = 10;
  await Promise.all(clients.map(async (sender) => {
    for (let i = 0; i < count; i++) await sender.send(`${sender.nick} #${i}\n`);
  }));
  for (const receiver of clients) {
    for (const sender of clients) {
      if (sender === receiver) continue;
      await seen(receiver, `<${sender.nick}> ${sender.nick} #${count - 1}`, 10_000);
    }
  }
  for (const receiver of clients) {
    for (const sender of clients) {
      const want = sender === receiver
        ? []
        : Array.from({ length: count }, (_, i) => `<${sender.nick}> ${sender.nick} #${i}`);
      assert.deepEqual(from(receiver, sender.nick), want, `${receiver.nick} from ${sender.nick}`);
    }
  }

  const [ann, ben, cat] = clients;
  await ann.send("/nick anna\n");
  assert.equal(await ann.lines.waitFor(/^\* you are now |^!/), "* you are now anna");
  await seen(ben, "* ann is now anna");
  await seen(cat, "* ann is now anna");
  await ann.send("renamed\n");
  await seen(ben, "<anna> renamed");
  await seen(cat, "<anna> renamed");
  for (const client of clients) await waitForWho(client, "* online (3): anna, ben, cat");

  // Leaving crosses too: /quit, and a connection that just closes.
  await cat.send("/quit\n");
  assert.equal(await cat.lines.waitFor("bye"), "* bye");
  await seen(ann, "* cat left");
  await seen(ben, "* cat left");
  await ben.close();
  await seen(ann, "* ben left");
  await waitForWho(ann, "* online (1): anna");
  for (const client of clients) assert.deepEqual(repeated(client), [], client.nick);
});

clusterTest("/msg across instances, unknown nick; /who and /who -v are cluster-wide", async (c) => {
  const redis = await c.redis();
  const [A, B] = await c.chats(redis, 2);
  const alice = await c.joinAs(A, "alice");
  const bob = await c.joinAs(B, "bob");
  const carol = await c.joinAs(A, "carol");
  for (const client of [alice, bob, carol]) {
    await waitForWho(client, "* online (3): alice, bob, carol");
  }

  await alice.send("/msg bob psst 你好\n");
  assert.equal(await bob.lines.waitFor("(private)"), "<alice> (private) psst 你好");
  assert.equal(await alice.lines.waitFor("(private to"), "* (private to bob) psst 你好");
  await bob.send("/msg alice got it\n");
  assert.equal(await alice.lines.waitFor("(private)"), "<bob> (private) got it");
  assert.equal(await bob.lines.waitFor("(private to"), "* (private to alice) got it");
  await bob.send("/msg nobody hi\n");
  assert.equal(await bob.lines.waitFor(/^!/), "! no one called 'nobody' is online");
  await alice.send("/msg nobody hi\n");
  assert.equal(await alice.lines.waitFor(/^!/), "! no one called 'nobody' is online");

  const verbose = `* online (3): alice [${A.label}], bob [${B.label}], carol [${A.label}]`;
  for (const client of [alice, bob, carol]) {
    assert.equal(await waitForWho(client, 3), "* online (3): alice, bob, carol");
    assert.equal(await waitForWho(client, verbose, { verbose: true }), verbose);
  }
  assert.ok(!carol.lines.text.includes("psst"), "carol must not see the private message");
  assert.ok(!carol.lines.text.includes("got it"), "carol must not see the private message");
  for (const instance of [A, B]) {
    assert.ok(!instance.stdout.text.includes("psst"), "the operator sees no private text");
  }
});

clusterTest("guest nicks are unique; a /nick race across instances has one winner", async (c) => {
  const redis = await c.redis();
  const [A, B] = await c.chats(redis, 2);
  const guests = await Promise.all(
    Array.from({ length: 8 }, (_, i) => c.join(i % 2 ? B : A)),
  );
  const guestNicks = guests.map((g) => g.nick);
  assert.equal(new Set(guestNicks).size, guestNicks.length, `guest nicks: ${guestNicks}`);

  const [x, y] = guests; // x on A, y on B
  await waitForWho(x, 8);
  await waitForWho(y, 8);
  const nickOf = new Map<ChatClient, string>([[x, x.nick], [y, y.nick]]);
  for (let round = 0; round < 10; round++) {
    // Odd rounds differ in case only: nicks are unique case-insensitively.
    const wanted = new Map([[x, `bob${round}`], [y, round % 2 ? `BOB${round}` : `bob${round}`]]);
    await Promise.all([x, y].map((client) => client.send(`/nick ${wanted.get(client)}\n`)));
    const answers = await Promise.all(
      [x, y].map((client) => client.lines.waitFor(/^\* you are now |^! /, 5000)),
    );
    const winners = [x, y].filter((_, i) => answers[i].startsWith("* you are now"));
    assert.equal(winners.length, 1, `round ${round}: ${answers.join(" | ")}`);
    const [winner] = winners;
    const loser = winner === x ? y : x;
    assert.equal(answers[[x, y].indexOf(winner)], `* you are now ${wanted.get(winner)}`);
    assert.equal(answers[[x, y].indexOf(loser)], `! nick '${wanted.get(loser)}' is taken`);
    await seen(loser, `* ${nickOf.get(winner)} is now ${wanted.get(winner)}`);
    nickOf.set(winner, wanted.get(winner)!);
  }
  const everyone = [...guestNicks.slice(2), ...nickOf.values()].sort();
  await waitForWho(x, `* online (8): ${everyone.join(", ")}`);
  await waitForWho(y, `* online (8): ${everyone.join(", ")}`);
});

clusterTest(
  "kill -9 of an instance: its users leave (server lost), their nicks free up",
  async (c) => {
    const redis = await c.redis();
    const [A, B] = await c.chats(redis, 2);
    await c.joinAs(A, "doomed1");
    await c.joinAs(A, "doomed2");
    const sam = await c.joinAs(B, "sam");
    await waitForWho(sam, "* online (3): doomed1, doomed2, sam");

    const killedAt = Date.now();
    await c.kill9(A);
    const left = (ms: number) => Math.max(1, killedAt + ms - Date.now());
    await seen(sam, "* doomed1 left (server lost)", left(8000));
    await seen(sam, "* doomed2 left (server lost)", left(8000));
    console.log(`  users of the dead instance shown as left after ${Date.now() - killedAt} ms`);
    await waitForWho(sam, "* online (1): sam", { timeoutMs: left(8000) });
    let answer = "";
    while (answer !== "* you are now doomed1") {
      if (Date.now() - killedAt > 8000) {
        assert.fail(`sam could not take doomed1 within 8 s of the kill: ${answer}`);
      }
      await sam.send("/nick doomed1\n");
      answer = await sam.lines.waitFor(/^\* you are now |^! /, 5000);
      if (answer !== "* you are now doomed1") await delay(100);
    }
    console.log(`  nick of a dead instance's user free after ${Date.now() - killedAt} ms`);
    assert.equal(countOf(sam, "* doomed1 left (server lost)"), 1);
    assert.equal(countOf(sam, "* doomed2 left (server lost)"), 1);
  },
);

clusterTest("Redis lost mid-chat: local chat goes on, link restored, nothing twice", async (c) => {
  const redis = await c.redis();
  const [A, B] = await c.chats(redis, 2);
  const a1 = await c.joinAs(A, "a1");
  const a2 = await c.joinAs(A, "a2");
  const b1 = await c.joinAs(B, "b1");
  const everyone = [a1, a2, b1];
  for (const client of everyone) await waitForWho(client, "* online (3): a1, a2, b1");
  await a1.send("before the outage\n");
  await seen(b1, "<a1> before the outage");
  await seen(a2, "<a1> before the outage");

  const stopped = await c.stopRedis(redis);
  assert.ok(stopped.success || stopped.signal === "SIGTERM", `redis-server: ${stopped.code}`);
  for (const client of everyone) await seen(client, "* link to other servers lost", 5000);
  await a1.send("during from a1\n");
  await a2.send("during from a2\n");
  await b1.send("during from b1\n");
  await seen(a2, "<a1> during from a1");
  await seen(a1, "<a2> during from a2");

  await c.redis(redis.port); // the same URL again
  for (const client of everyone) await seen(client, "* link restored", 8000);
  for (const client of everyone) await waitForWho(client, "* online (3): a1, a2, b1");
  await a1.send("after from a1\n");
  await b1.send("after from b1\n");
  await seen(b1, "<a1> after from a1");
  await seen(a1, "<b1> after from b1");
  await seen(a2, "<b1> after from b1");
  for (const client of everyone) await waitForWho(client, 3); // anything late has come

  assert.ok(!b1.lines.text.includes("during from a"), "lines said during the outage stay local");
  assert.ok(!a1.lines.text.includes("during from b1"), "lines said during the outage stay local");
  assert.ok(!a2.lines.text.includes("during from b1"), "lines said during the outage stay local");
  for (const client of everyone) {
    assert.deepEqual(repeated(client), [], `${client.nick} got lines twice:\n${tail(client)}`);
    assert.equal(countOf(client, "* link to other servers lost"), 1);
    assert.equal(countOf(client, "* link restored"), 1);
  }
  // The fresh Redis knows a1 again: nobody elsewhere can take the nick.
  await b1.send("/nick a1\n");
  assert.equal(await b1.lines.waitFor(/^\* you are now |^! /), "! nick 'a1' is taken");
});

Deno.test("cluster: Redis down at start: exit 1 with one error line, no stack trace", async () => {
  const port = freePort(); // nothing listens there
  const url = `redis://127.0.0.1:${port}`;
  const started = Date.now();
  const result = await runScript("chat_server.ts", ["--port", "0", "--redis", url], {
    timeoutMs: 15_000,
  });
  const elapsed = Date.now() - started;
  assert.equal(result.code, 1, `exit ${result.code}; stderr:\n${result.stderr}`);
  assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one stderr line, got:\n${result.stderr}`);
  assert.match(lines[0], /^error: /);
  assert.ok(lines[0].includes(url), `the error names the URL: ${lines[0]}`);
  assert.ok(!/^ {4}at /m.test(result.stderr), "no stack trace");
  assert.ok(!result.stdout.includes("listening on"), "it must not listen without Redis");
});

Deno.test("cluster: --room without --redis, a bad --redis URL or room are usage errors", async () => {
  const closed = `redis://127.0.0.1:${freePort()}`;
  const cases: [string[], RegExp][] = [
    [["--room", "x"], /^error: --room needs --redis/],
    [["--redis", "http://x"], /^error: /],
    [["--redis", closed, "--room", "bad name"], /^error: /],
    [["--redis", closed, "--room", "r".repeat(65)], /^error: /],
    [["--redis", closed, "--room", ""], /^error: /],
  ];
  for (const [args, error] of cases) {
    const result = await runScript("chat_server.ts", ["--port", "0", ...args], {
      timeoutMs: 15_000,
    });
    assert.equal(result.code, 2, `${args.join(" ")}: exit ${result.code}\n${result.stderr}`);
    assert.match(result.stderr, error, args.join(" "));
    assert.match(result.stderr, /\nusage: deno run -A chat_server\.ts/, args.join(" "));
    assert.ok(!/^ {4}at /m.test(result.stderr), "no stack trace");
  }
});

Deno.test("cluster: without --redis the static module graph has no npm:redis", async () => {
  const result = await run(Deno.execPath(), ["info", "--json", `${ROOT}chat_server.ts`], {
    timeoutMs: 30_000,
  });
  assert.equal(result.code, 0, result.stderr);
  interface Dependency {
    specifier: string;
    code?: { specifier: string };
    type?: { specifier: string };
    isDynamic?: boolean;
  }
  const info = JSON.parse(result.stdout) as {
    roots: string[];
    modules: { specifier: string; dependencies?: Dependency[] }[];
    redirects: Record<string, string>;
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const resolve = (specifier: string) => info.redirects[specifier] ?? specifier;
  // Walk only static imports: the --redis code is loaded by a dynamic import().
  const reached = new Set<string>();
  const todo = info.roots.map(resolve);
  while (todo.length) {
    const specifier = todo.pop()!;
    if (reached.has(specifier)) continue;
    reached.add(specifier);
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dependency.isDynamic) continue;
      reached.add(dependency.specifier);
      for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
        if (target) todo.push(resolve(target));
      }
    }
  }
  const offending = [...reached].filter((s) =>
    s.includes("npm:redis") || s.includes("redis@") || s.endsWith("lib/cluster.ts")
  );
  assert.deepEqual(offending, [], `statically imported by chat_server.ts: ${offending}`);
  assert.ok(reached.has(info.roots[0]), "the walk found the root");
});

Deno.test("cluster: without --redis chat_server.ts runs with an empty cache, offline", async () => {
  // --cached-only with a fresh DENO_DIR: any npm: module it needed would
  // have to be downloaded, so this run fails if one is loaded.
  const denoDir = await Deno.makeTempDir({ prefix: "chat_offline_" });
  try {
    const offline = (args: string[]) =>
      run(Deno.execPath(), ["run", "-A", "--cached-only", `${ROOT}chat_server.ts`, ...args], {
        env: { DENO_DIR: denoDir },
        timeoutMs: 60_000,
      });
    const help = await offline(["--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /--redis URL/);
    // The control: with --redis the Redis client is needed, and is not there.
    const cluster = await offline(["--port", "0", "--redis", "redis://127.0.0.1:9"]);
    assert.equal(cluster.code, 1, cluster.stderr);
    assert.match(
      cluster.stderr,
      /^error: cannot load the Redis client npm:redis@5 \(.*\); .*network\n$/,
    );
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

clusterTest(
  "a server cut off from Redis for over 4 s is shown as left, then joining again",
  async (c) => {
    const redis = await c.redis();
    // B reaches Redis through a proxy; closing it cuts B off (connections
    // closed, new ones refused) and a new one on the same port lets B back.
    let proxy = FaultProxy.start(redis.port);
    try {
      const A = await c.chat(redis);
      const B = await c.chat(`redis://127.0.0.1:${proxy.port}`);
      const ivy = await c.joinAs(A, "ivy");
      const jay = await c.joinAs(B, "jay");
      await waitForWho(ivy, "* online (2): ivy, jay");
      const port = proxy.port;
      await proxy.close();
      assert.equal(await jay.lines.waitFor(/link/, 10_000), "* link to other servers lost");
      assert.equal(await ivy.lines.waitFor(/jay left/, 10_000), "* jay left (server lost)");
      proxy = FaultProxy.start(redis.port, { port });
      assert.equal(await jay.lines.waitFor(/link restored/, 15_000), "* link restored");
      assert.equal(await ivy.lines.waitFor(/jay joined/, 10_000), "* jay joined");
      await jay.send("back\n");
      assert.equal(await ivy.lines.waitFor(/^<jay>/, 10_000), "<jay> back");
      assert.ok(!ivy.lines.lines.includes("* link to other servers lost"), "A never lost its link");
    } finally {
      await proxy.close();
    }
  },
);

clusterTest("events anyone publishes on the room's channel are sanitised or ignored", async (c) => {
  const redis = await c.redis();
  const A = await c.chat(redis);
  const ann = await c.joinAs(A, "ann");
  const publish = async (message: string) => {
    const result = await run("redis-cli", [
      "-p",
      String(redis.port),
      "PUBLISH",
      "chat:lobby:events",
      message,
    ]);
    assert.equal(result.code, 0, result.stderr);
  };
  const evil = (seq: number, event: Record<string, unknown>) =>
    JSON.stringify({ from: "evil", label: "\x1b[2J", seq, ...event });
  await publish("not json at all");
  await publish(evil(1, { type: "roster", nicks: 5 })); // malformed
  await publish(evil(2, { type: "join", nick: "eve\x1b[1m", line: "* eve\x1b[1m joined" }));
  await publish(evil(3, { type: "say", line: "<mallory> \x1b[2Jhi\r<ann> I owe you" }));
  await publish(evil(3, { type: "say", line: "<mallory> a repeat of seq 3" })); // a duplicate
  assert.equal(await ann.lines.waitFor(/^<mallory>/), "<mallory> \\x1b[2Jhi\\r<ann> I owe you");
  await ann.send("/who -v\n/ping still\n");
  assert.equal(
    await ann.lines.waitFor(/^\* online/),
    `* online (2): ann [${A.label}], eve\\x1b[1m [\\x1b[2J]`,
  );
  assert.equal(await ann.lines.waitFor(/pong/), "* pong still");
  assert.ok(!ann.lines.text.includes("\x1b"), "no raw ESC reached the client");
  assert.ok(!ann.lines.text.includes("repeat"), "a repeated sequence number is dropped");
});

clusterTest("two rooms on one Redis are independent", async (c) => {
  const redis = await c.redis();
  const [A1, A2] = await c.chats(redis, 2, ["--room", "a"]);
  const [B1, B2] = await c.chats(redis, 2, ["--room", "b"]);
  const alice = await c.joinAs(A1, "alice");
  const amos = await c.joinAs(A2, "amos");
  const bella = await c.joinAs(B1, "bella");
  const alsoAlice = await c.joinAs(B2, "alice"); // a nick is taken per room only
  await waitForWho(alice, "* online (2): alice, amos");
  await waitForWho(amos, "* online (2): alice, amos");
  await waitForWho(bella, "* online (2): alice, bella");
  await waitForWho(alsoAlice, "* online (2): alice, bella");

  await alice.send("said in room a\n");
  await alsoAlice.send("said in room b\n");
  await seen(amos, "<alice> said in room a");
  await seen(bella, "<alice> said in room b");
  await delay(200); // Redis delivers a message to all subscribers at once
  for (const client of [alice, amos, bella, alsoAlice]) await waitForWho(client, 2);
  for (const client of [bella, alsoAlice]) {
    assert.ok(!client.lines.text.includes("room a"), `room b saw room a:\n${tail(client)}`);
    assert.ok(!client.lines.text.includes("amos"), `room b saw room a:\n${tail(client)}`);
  }
  for (const client of [alice, amos]) {
    assert.ok(!client.lines.text.includes("room b"), `room a saw room b:\n${tail(client)}`);
    assert.ok(!client.lines.text.includes("bella"), `room a saw room b:\n${tail(client)}`);
  }
});

clusterTest("console lines and /kick reach users on other instances", async (c) => {
  const redis = await c.redis();
  const A = await c.chat(redis, [], { stdin: "piped" });
  const B = await c.chat(redis);
  const alice = await c.joinAs(A, "alice");
  const bob = await c.joinAs(B, "bob");
  const carol = await c.joinAs(B, "carol");
  for (const client of [alice, bob, carol]) {
    await waitForWho(client, "* online (3): alice, bob, carol");
  }
  await A.write("hello from the console\n");
  for (const client of [alice, bob, carol]) await seen(client, "<server> hello from the console");
  await A.write("/kick bob\n");
  assert.equal(await bob.lines.waitFor("kicked"), "* you were kicked by the operator");
  await bob.lines.end();
  await seen(alice, "* bob left (kicked)");
  await seen(carol, "* bob left (kicked)");
  await waitForWho(alice, "* online (2): alice, carol");
});

clusterTest(
  "history is the room's: a newcomer on any instance gets it, and after a restart",
  async (c) => {
    const redis = await c.redis();
    const [A, B] = await c.chats(redis, 2, ["--history", "3"]);
    const ann = await c.joinAs(A, "ann");
    const bob = await c.joinAs(B, "bob");
    await waitForWho(ann, "* online (2): ann, bob");
    for (const [speaker, text] of [[ann, "a1"], [bob, "b1"], [ann, "a2"], [bob, "b2"]] as const) {
      await speaker.send(`${text}\n`);
      await seen(speaker === ann ? bob : ann, `<${speaker.nick}> ${text}`);
    }
    const expected = ["<bob> b1", "<ann> a2", "<bob> b2"];
    const onA = await c.join(A);
    assert.deepEqual(onA.history, expected, "on the instance that kept them");
    const onB = await c.join(B);
    assert.deepEqual(onB.history, expected, "on the other one");
    // A new instance, or one restarted, loads the room's history from Redis.
    const fresh = await c.chat(redis, ["--history", "3"]);
    const onFresh = await c.join(fresh);
    assert.deepEqual(onFresh.history, expected, "after a restart");
    const stored = await run("redis-cli", ["-p", String(redis.port), "llen", "chat:lobby:history"]);
    assert.equal(stored.stdout.trim(), "3", "capped at --history in Redis too");
  },
);

clusterTest(
  "away is seen across instances: /who, /msg, /back, and by an instance joining later",
  async (c) => {
    const redis = await c.redis();
    const [A, B] = await c.chats(redis, 2);
    const ann = await c.joinAs(A, "ann");
    const bob = await c.joinAs(B, "bob");
    await waitForWho(bob, "* online (2): ann, bob");
    await ann.send("/away at lunch\n");
    await seen(ann, "* you are away: at lunch");
    await waitForWho(bob, "* online (2): ann (away: at lunch), bob");
    await bob.send("/msg ann are you there?\n");
    await seen(bob, "* ann is away: at lunch");
    await seen(ann, "<bob> (private) are you there?");
    const late = await c.chat(redis); // learns it from the roster
    const cat = await c.joinAs(late, "cat");
    await waitForWho(cat, "* online (3): ann (away: at lunch), bob, cat");
    await ann.send("/back\n");
    await seen(ann, "* you are back");
    await waitForWho(bob, "* online (3): ann, bob, cat");
  },
);
