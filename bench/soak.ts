// bench/soak.ts: a bounded soak of chat_server.ts on loopback.
//
//   deno task soak [-- --seconds N] [--stayers N] [--rate L] [--churn J] [--slow N]
//
// Starts chat_server.ts on a free port and, for N seconds (default 60), keeps
// a steady mix going:
// - stayers: clients present the whole time, each sending L numbered lines
//   a second (default 10) and checking every line it receives;
// - slow readers: present the whole time, reading 1 KiB every 50 ms and
//   pausing 3 s every 10 s, checking every line too;
// - churn: J new clients a second (default 10), each joining, sending three
//   numbered lines and leaving, in turn by closing (FIN), by /quit, or by
//   closing with unread data (the kernel sends a RST).
// Every line carries its sender and a sequence number, so each long-lived
// client counts what it missed (losses) and what came out of order
// (reorderings) for every sender: both must be 0. The server's RSS is
// sampled each second (start, middle, end, after everyone left) and its
// open descriptors (/proc/PID/fd) at start and end; the run fails if a
// long-lived client was dropped, a line was lost or reordered, descriptors
// did not come back, or RSS kept growing through the second half.
// Exit status: 0 all checks passed, 1 a check failed, 2 bad usage.

import { parseArgs } from "node:util";
import { createLineSplitter, LINE_TOO_LONG } from "../lib/lines.ts";

const USAGE =
  `usage: deno task soak [-- --seconds N] [--stayers N] [--rate L] [--churn J] [--slow N]

A bounded soak of chat_server.ts on 127.0.0.1 (see the top of bench/soak.ts).

options:
  --seconds N   how long the steady load runs (default 60)
  --stayers N   clients that stay and chat the whole time (default 10)
  --rate L      lines a second each stayer sends (default 10)
  --churn J     clients a second that join, send 3 lines and leave (default 10)
  --slow N      slow readers that stay the whole time (default 2)
  -h, --help    show this help`;

const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ----------------------------------------------------------------- flags ---

function parseFlags(args: string[]) {
  const { values } = parseArgs({
    args: args.filter((arg) => arg !== "--"), // `deno task soak -- --seconds 20`
    options: {
      seconds: { type: "string", default: "60" },
      stayers: { type: "string", default: "10" },
      rate: { type: "string", default: "10" },
      churn: { type: "string", default: "10" },
      slow: { type: "string", default: "2" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const number = (name: keyof typeof values, min: number, max: number) => {
    const text = String(values[name]);
    const n = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!(n >= min && n <= max)) {
      throw new RangeError(`--${name} must be ${min}-${max}, got '${text}'`);
    }
    return n;
  };
  return {
    seconds: number("seconds", 1, 3600),
    stayers: number("stayers", 2, 500),
    rate: number("rate", 1, 1000),
    churn: number("churn", 0, 500),
    slow: number("slow", 0, 100),
  };
}

// ------------------------------------------------------------- the server ---

interface ServerProcess {
  child: Deno.ChildProcess;
  port: number;
  /** Lines the server printed (its console log), counted, not kept. */
  logLines: number;
  stderr: string;
}

async function startServer(): Promise<ServerProcess> {
  const script = new URL("../chat_server.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, "--host", "127.0.0.1", "--port", "0"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const server: ServerProcess = { child, port: 0, logLines: 0, stderr: "" };
  let ready!: (port: number) => void;
  const listening = new Promise<number>((resolve) => ready = resolve);
  // The server logs every chat line: drain its output or it would block.
  (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of child.stdout) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        const match = /^listening on 127\.0\.0\.1:(\d+)$/.exec(line);
        if (match) ready(Number(match[1]));
        server.logLines++;
      }
    }
    ready(0);
  })();
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      server.stderr += decoder.decode(chunk, { stream: true });
    }
  })();
  const port = await Promise.race([listening, sleep(15_000).then(() => 0)]);
  if (!port) throw new Error(`chat_server.ts did not start: ${server.stderr}`);
  server.port = port;
  return server;
}

function rssKiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
  } catch {
    return 0;
  }
}

function fdCount(pid: number): number {
  try {
    return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
  } catch {
    return 0;
  }
}

// --------------------------------------------------------------- clients ---

/** What one long-lived client saw from one sender. */
interface Track {
  next: number;
  received: number;
  reordered: number;
}

const MESSAGE = /^<[^>]*> S ([a-z]\d+) (\d+) /;

/** A long-lived client: it reads everything and checks every numbered line. */
class Receiver {
  readonly tracks = new Map<string, Track>();
  readonly notices: string[] = [];
  nick = "";
  lines = 0;
  ended = false;
  readonly done: Promise<void>;
  #welcomed!: () => void;
  readonly welcomed = new Promise<void>((resolve) => this.#welcomed = resolve);

  constructor(readonly id: string, readonly conn: Deno.TcpConn, readonly slow: boolean) {
    conn.setNoDelay(true);
    this.done = this.#read();
  }

  async #read(): Promise<void> {
    const split = createLineSplitter(1 << 20);
    const buffer = new Uint8Array(this.slow ? 1024 : 64 * 1024);
    let pauseAt = Date.now() + 10_000;
    try {
      while (true) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        for (const line of split(buffer.subarray(0, n))) {
          if (line !== LINE_TOO_LONG) this.#line(line);
        }
        if (this.slow) {
          await sleep(50);
          if (Date.now() > pauseAt) {
            await sleep(3000); // looks away for a while
            pauseAt = Date.now() + 10_000;
          }
        }
      }
    } catch {
      // Reset or closed by us at the end.
    }
    this.ended = true;
  }

  #line(line: string): void {
    this.lines++;
    const match = MESSAGE.exec(line);
    if (!match) {
      if (line.startsWith("* welcome, you are ")) {
        this.nick = line.slice("* welcome, you are ".length);
        this.#welcomed();
      }
      if (/left \(|^!/.test(line)) this.notices.push(line);
      return;
    }
    const [, from, seqText] = match;
    const seq = Number(seqText);
    let track = this.tracks.get(from);
    if (!track) this.tracks.set(from, track = { next: 0, received: 0, reordered: 0 });
    track.received++;
    if (seq >= track.next) track.next = seq + 1; // a gap shows as received < sent
    else track.reordered++;
  }

  async send(text: string): Promise<void> {
    let rest = encoder.encode(text);
    while (rest.length) rest = rest.subarray(await this.conn.write(rest));
  }
}

/** A short-lived client: join, three lines, leave one of three ways. */
async function churner(port: number, id: string, mode: number, sent: Map<string, number>) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const buffer = new Uint8Array(16 * 1024);
  const write = async (text: string) => {
    let rest = encoder.encode(text);
    while (rest.length) rest = rest.subarray(await conn.write(rest));
  };
  try {
    // Wait for the welcome: its lines are then counted as sent to a member.
    let seen = "";
    while (!seen.includes("* type /help")) {
      const n = await conn.read(buffer);
      if (n === null) return;
      seen += new TextDecoder().decode(buffer.subarray(0, n));
    }
    let lines = "";
    for (let seq = 0; seq < 3; seq++) lines += `S ${id} ${seq} churn ${"c".repeat(20)}\n`;
    if (mode === 2) {
      // Leave by RST: make sure the lines were handled (pong), then stop
      // reading while the room's traffic piles up unread, and close.
      await write(`${lines}/ping ${id}\n`);
      sent.set(id, 3);
      while (!seen.includes(`* pong ${id}`)) {
        const n = await conn.read(buffer);
        if (n === null) return;
        seen += new TextDecoder().decode(buffer.subarray(0, n));
      }
      await sleep(300);
    } else {
      await write(lines + (mode === 1 ? "/quit\n" : ""));
      sent.set(id, 3);
      if (mode === 1) {
        while ((await conn.read(buffer)) !== null) {
          /* until the server closes */
        }
      }
    }
  } catch {
    // The server went away: the long-lived clients will report it.
  } finally {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }
}

// ------------------------------------------------------------------ soak ---

type SoakFlags = ReturnType<typeof parseFlags>;

/** One RSS sample: seconds since the load started, and the server's RSS. */
interface RssSample {
  t: number;
  kib: number;
}

/** What the steady load did: lines sent per sender, joins, RSS samples, fds in the middle. */
interface LoadRun {
  /** Sender id -> lines sent. */
  sent: Map<string, number>;
  joins: number;
  rss: RssSample[];
  rssStart: number;
  rssEnd: number;
  fdsMiddle: number;
}

/** The long-lived clients join first: every line after this is theirs to get. */
async function connectLongLived(port: number, stayers: number, slow: number): Promise<Receiver[]> {
  const longLived: Receiver[] = [];
  for (let i = 0; i < stayers + slow; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    longLived.push(new Receiver(i < stayers ? `s${i}` : `r${i}`, conn, i >= stayers));
  }
  await Promise.all(longLived.map((r) => r.welcomed));
  return longLived;
}

/** One stayer: numbered lines at `rate` a second until `end`, its ticks offset by `offsetMs`. */
async function stayerLoop(
  client: Receiver,
  offsetMs: number,
  rate: number,
  started: number,
  end: number,
  sent: Map<string, number>,
): Promise<void> {
  await sleep(offsetMs); // spread the ticks
  for (let seq = 0; Date.now() < end; seq++) {
    const due = started + (seq * 1000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
    if (client.ended) break;
    await client.send(`S ${client.id} ${seq} ${"x".repeat(24)}\n`).catch(() => {});
    sent.set(client.id, seq + 1);
  }
}

/** `churn` joins a second until `end`, each leaving in turn by FIN, /quit or RST; joins made. */
async function churnLoop(
  port: number,
  churn: number,
  started: number,
  end: number,
  sent: Map<string, number>,
): Promise<number> {
  const churners: Promise<void>[] = [];
  let joins = 0;
  if (churn > 0) {
    while (Date.now() < end) {
      const id = `c${joins}`;
      churners.push(churner(port, id, joins % 3, sent).catch(() => {}));
      joins++;
      const due = started + (joins * 1000) / churn;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  }
  await Promise.all(churners);
  return joins;
}

/** The steady load for `seconds`, the server's RSS sampled each second (printed every 10 s). */
async function runLoad(
  server: ServerProcess,
  flags: SoakFlags,
  longLived: Receiver[],
): Promise<LoadRun> {
  const { seconds, rate, churn } = flags;
  const pid = server.child.pid;
  const senders = longLived.filter((r) => !r.slow);
  const sent = new Map<string, number>();
  const started = Date.now();
  const rssStart = rssKiB(pid);
  const run = { sent, joins: 0, rss: [{ t: 0, kib: rssStart }], rssStart, rssEnd: 0, fdsMiddle: 0 };
  const end = started + seconds * 1000;
  const stayerLoops = senders.map((client, index) =>
    stayerLoop(client, (index * 1000) / rate / senders.length, rate, started, end, sent)
  );
  const churning = churnLoop(server.port, churn, started, end, sent);
  const sampler = setInterval(() => sample(run, pid, longLived, seconds, started), 1000);
  const [joins] = await Promise.all([churning, ...stayerLoops]);
  run.joins = joins;
  run.rssEnd = rssKiB(pid);
  clearInterval(sampler);
  return run;
}

/** One second's sample: RSS; fds once, in the middle; a progress line every 10 s. */
function sample(
  run: LoadRun,
  pid: number,
  longLived: Receiver[],
  seconds: number,
  started: number,
): void {
  const t = (Date.now() - started) / 1000;
  run.rss.push({ t, kib: rssKiB(pid) });
  if (Math.abs(t - seconds / 2) < 0.6 && !run.fdsMiddle) run.fdsMiddle = fdCount(pid);
  if (Math.round(t) % 10 === 0) {
    const total = [...run.sent.values()].reduce((a, b) => a + b, 0);
    const got = longLived.reduce((sum, r) => sum + r.lines, 0);
    console.log(
      `  t=${t.toFixed(0).padStart(4)} s  sent ${total}  lines received ${got}  ` +
        `server RSS ${(rssKiB(pid) / 1024).toFixed(1)} MiB  fds ${fdCount(pid)}`,
    );
  }
}

/** Lets the last lines arrive (slow readers may be in a 3 s pause), at most 20 s. */
async function drain(longLived: Receiver[], sent: Map<string, number>): Promise<void> {
  const expected = (receiver: Receiver) =>
    [...sent].filter(([from]) => from !== receiver.id).reduce((sum, [, n]) => sum + n, 0);
  // (a plain count: a duplicate would also show as a reordering)
  const countOf = (receiver: Receiver) =>
    [...receiver.tracks].filter(([from]) => from !== receiver.id)
      .reduce((sum, [, track]) => sum + track.received, 0);
  const drainDeadline = Date.now() + 20_000;
  while (
    longLived.some((r) => !r.ended && countOf(r) < expected(r)) && Date.now() < drainDeadline
  ) {
    await sleep(100);
  }
}

/** Deliveries expected and received by the long-lived clients, and what went wrong. */
interface Tally {
  sentLines: number;
  deliveries: number;
  delivered: number;
  lost: number;
  reordered: number;
  problems: string[];
}

function tally(longLived: Receiver[], sent: Map<string, number>): Tally {
  const t: Tally = {
    sentLines: 0,
    deliveries: 0,
    delivered: 0,
    lost: 0,
    reordered: 0,
    problems: [],
  };
  for (const n of sent.values()) t.sentLines += n;
  for (const receiver of longLived) {
    for (const [from, n] of sent) {
      if (from === receiver.id) continue;
      t.deliveries += n;
      const track = receiver.tracks.get(from);
      const got = track?.received ?? 0;
      t.delivered += Math.min(got, n);
      t.lost += Math.max(0, n - got);
      t.reordered += track?.reordered ?? 0;
    }
    if (receiver.ended) t.problems.push(`${receiver.id} (${receiver.nick}) was disconnected`);
    for (const notice of receiver.notices) {
      if (longLived.some((r) => notice.startsWith(`* ${r.nick} left`))) {
        t.problems.push(`${receiver.id} saw: ${notice}`);
      }
    }
  }
  return t;
}

/** Everyone leaves; waits (at most 10 s) for the server to give back its descriptors. */
async function leaveAll(longLived: Receiver[], pid: number, fdsStart: number): Promise<number> {
  for (const receiver of longLived) {
    try {
      receiver.conn.close();
    } catch {
      // Closed already.
    }
  }
  await Promise.all(longLived.map((r) => r.done));
  const fdsDeadline = Date.now() + 10_000;
  let fdsEnd = fdCount(pid);
  while (fdsEnd > fdsStart && Date.now() < fdsDeadline) {
    await sleep(100);
    fdsEnd = fdCount(pid);
  }
  return fdsEnd;
}

/**
 * RSS through the second half: median of the samples around the middle
 * against the median of those at the end.
 */
function rssTrend(rss: RssSample[], seconds: number) {
  const around = (t: number) => {
    const near = rss.filter((s) => Math.abs(s.t - t) <= Math.max(1.5, seconds * 0.05))
      .map((s) => s.kib).sort((a, b) => a - b);
    return near.length ? near[Math.floor(near.length / 2)] : 0;
  };
  const middle = around(seconds / 2);
  const late = around(seconds);
  return {
    middle,
    late,
    max: Math.max(...rss.map((s) => s.kib)),
    growth: middle ? late / middle - 1 : 0,
  };
}

const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

/** Stops the server (SIGTERM, SIGKILL after 10 s); notes it in `problems` if that went wrong. */
async function stopServer(server: ServerProcess, problems: string[]): Promise<void> {
  server.child.kill("SIGTERM");
  const status = await Promise.race([server.child.status, sleep(10_000).then(() => undefined)]);
  if (!status) {
    server.child.kill("SIGKILL");
    await server.child.status;
    problems.push("the server did not stop on SIGTERM");
  } else if (status.code !== 0) problems.push(`the server exited ${status.code}: ${server.stderr}`);
}

async function soak(): Promise<number> {
  let flags: SoakFlags;
  try {
    flags = parseFlags(Deno.args);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    console.error(`error: ${message}\n${USAGE.split("\n")[0]}`);
    return 2;
  }
  const { seconds, stayers, rate, churn, slow } = flags;
  const server = await startServer();
  const pid = server.child.pid;
  const hardDeadline = setTimeout(() => {
    console.error(`error: soak did not finish within ${seconds + 120} s`);
    server.child.kill("SIGKILL");
    Deno.exit(1);
  }, (seconds + 120) * 1000);

  await sleep(300);
  const fdsStart = fdCount(pid);
  const rssCold = rssKiB(pid);
  console.log(
    `soak: chat_server.ts pid ${pid} on 127.0.0.1:${server.port}, ${seconds} s: ` +
      `${stayers} stayers x ${rate} lines/s, ${slow} slow readers, ${churn} joins/s`,
  );
  const longLived = await connectLongLived(server.port, stayers, slow);
  const load = await runLoad(server, flags, longLived);
  await drain(longLived, load.sent);
  const t = tally(longLived, load.sent);
  const fdsEnd = await leaveAll(longLived, pid, fdsStart);
  await sleep(1000);
  const rssAfter = rssKiB(pid);
  const alive = server.child.pid > 0 && fdCount(pid) > 0;
  const trend = rssTrend(load.rss, seconds);

  const stayerLines = longLived.filter((r) => !r.slow)
    .reduce((sum, c) => sum + (load.sent.get(c.id) ?? 0), 0);
  console.log(`
soak results (${seconds} s, ${load.joins} churn joins, ${stayers + slow} long-lived clients)
  lines sent:            ${t.sentLines} (stayers ${stayerLines}, churners ${
    t.sentLines - stayerLines
  })
  deliveries expected:   ${t.deliveries} (each line to every long-lived client but its sender)
  deliveries received:   ${t.delivered}
  lost:                  ${t.lost} (still missing after up to 20 s of draining)
  reordered:             ${t.reordered}
  server log lines:      ${server.logLines}
  server RSS:            start ${mib(load.rssStart)} (idle, before clients ${
    mib(rssCold)
  }), middle ${mib(trend.middle)}, end ${mib(trend.late)} (last sample ${mib(load.rssEnd)}), max ${
    mib(trend.max)
  }, after all left ${mib(rssAfter)}
  RSS second half:       ${(trend.growth * 100).toFixed(1)}%
  server fds:            start ${fdsStart}, middle ${load.fdsMiddle} (with clients), end ${fdsEnd}`);

  const problems = t.problems;
  if (t.lost > 0) problems.push(`${t.lost} deliveries lost`);
  if (t.reordered > 0) problems.push(`${t.reordered} deliveries out of order`);
  if (fdsEnd > fdsStart) {
    problems.push(`descriptors: ${fdsEnd} open at the end, ${fdsStart} at start`);
  }
  if (trend.growth > 0.2) {
    problems.push(`RSS grew ${(trend.growth * 100).toFixed(0)}% in the second half`);
  }
  if (trend.max > 1024 * 1024) problems.push(`RSS reached ${mib(trend.max)}`);
  if (!alive) problems.push("the server died");
  await stopServer(server, problems);
  clearTimeout(hardDeadline);

  if (problems.length) {
    console.log(`FAILED:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    return 1;
  }
  console.log("ok: nothing lost, nothing reordered, descriptors back, RSS flat");
  return 0;
}

if (import.meta.main) Deno.exit(await soak());
