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

async function soak(): Promise<number> {
  let flags;
  try {
    flags = parseFlags(Deno.args);
  } catch (err) {
    console.error(`error: ${(err as Error).message}\n${USAGE.split("\n")[0]}`);
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

  // The long-lived clients join first: every line after this is theirs to get.
  const longLived: Receiver[] = [];
  for (let i = 0; i < stayers + slow; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    longLived.push(new Receiver(i < stayers ? `s${i}` : `r${i}`, conn, i >= stayers));
  }
  await Promise.all(longLived.map((r) => r.welcomed));
  const senders = longLived.filter((r) => !r.slow);
  const sent = new Map<string, number>(); // sender id -> lines sent
  const rss: { t: number; kib: number }[] = [];
  const started = Date.now();
  const elapsed = () => (Date.now() - started) / 1000;
  const rssStart = rssKiB(pid);
  rss.push({ t: 0, kib: rssStart });
  let fdsMiddle = 0;

  // Steady load until the deadline.
  const end = started + seconds * 1000;
  const stayerLoops = senders.map(async (client, index) => {
    await sleep((index * 1000) / rate / senders.length); // spread the ticks
    for (let seq = 0; Date.now() < end; seq++) {
      const due = started + (seq * 1000) / rate;
      if (due > Date.now()) await sleep(due - Date.now());
      if (client.ended) break;
      await client.send(`S ${client.id} ${seq} ${"x".repeat(24)}\n`).catch(() => {});
      sent.set(client.id, seq + 1);
    }
  });
  const churners: Promise<void>[] = [];
  let joins = 0;
  const churnLoop = (async () => {
    if (churn === 0) return;
    while (Date.now() < end) {
      const id = `c${joins}`;
      churners.push(churner(server.port, id, joins % 3, sent).catch(() => {}));
      joins++;
      const due = started + (joins * 1000) / churn;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  })();
  const sampler = setInterval(() => {
    const t = elapsed();
    rss.push({ t, kib: rssKiB(pid) });
    if (Math.abs(t - seconds / 2) < 0.6 && !fdsMiddle) fdsMiddle = fdCount(pid);
    if (Math.round(t) % 10 === 0) {
      const total = [...sent.values()].reduce((a, b) => a + b, 0);
      const got = longLived.reduce((sum, r) => sum + r.lines, 0);
      console.log(
        `  t=${t.toFixed(0).padStart(4)} s  sent ${total}  lines received ${got}  ` +
          `server RSS ${(rssKiB(pid) / 1024).toFixed(1)} MiB  fds ${fdCount(pid)}`,
      );
    }
  }, 1000);

  await Promise.all([...stayerLoops, churnLoop]);
  await Promise.all(churners);
  const rssEnd = rssKiB(pid);
  clearInterval(sampler);

  // Let the last lines arrive (slow readers may be in a 3 s pause).
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

  // The figures.
  let sentLines = 0;
  for (const n of sent.values()) sentLines += n;
  let deliveries = 0;
  let delivered = 0;
  let lost = 0;
  let reordered = 0;
  const problems: string[] = [];
  for (const receiver of longLived) {
    for (const [from, n] of sent) {
      if (from === receiver.id) continue;
      deliveries += n;
      const track = receiver.tracks.get(from);
      const got = track?.received ?? 0;
      delivered += Math.min(got, n);
      lost += Math.max(0, n - got);
      reordered += track?.reordered ?? 0;
    }
    if (receiver.ended) problems.push(`${receiver.id} (${receiver.nick}) was disconnected`);
    for (const notice of receiver.notices) {
      if (longLived.some((r) => notice.startsWith(`* ${r.nick} left`))) {
        problems.push(`${receiver.id} saw: ${notice}`);
      }
    }
  }

  // Everyone leaves; the server must give back its descriptors.
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
  await sleep(1000);
  const rssAfter = rssKiB(pid);
  const alive = server.child.pid > 0 && fdCount(pid) > 0;

  // RSS through the second half: median of the samples around the middle
  // against the median of those at the end.
  const around = (t: number) => {
    const near = rss.filter((s) => Math.abs(s.t - t) <= Math.max(1.5, seconds * 0.05))
      .map((s) => s.kib).sort((a, b) => a - b);
    return near.length ? near[Math.floor(near.length / 2)] : 0;
  };
  const rssMiddle = around(seconds / 2);
  const rssLate = around(seconds);
  const rssMax = Math.max(...rss.map((s) => s.kib));
  const growth = rssMiddle ? rssLate / rssMiddle - 1 : 0;

  const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
  console.log(`
soak results (${seconds} s, ${joins} churn joins, ${stayers + slow} long-lived clients)
  lines sent:            ${sentLines} (stayers ${
    senders.reduce((s, c) => s + (sent.get(c.id) ?? 0), 0)
  }, churners ${sentLines - senders.reduce((s, c) => s + (sent.get(c.id) ?? 0), 0)})
  deliveries expected:   ${deliveries} (each line to every long-lived client but its sender)
  deliveries received:   ${delivered}
  lost:                  ${lost} (still missing after up to 20 s of draining)
  reordered:             ${reordered}
  server log lines:      ${server.logLines}
  server RSS:            start ${mib(rssStart)} (idle, before clients ${mib(rssCold)}), middle ${
    mib(rssMiddle)
  }, end ${mib(rssLate)} (last sample ${mib(rssEnd)}), max ${mib(rssMax)}, after all left ${
    mib(rssAfter)
  }
  RSS second half:       ${(growth * 100).toFixed(1)}%
  server fds:            start ${fdsStart}, middle ${fdsMiddle} (with clients), end ${fdsEnd}`);

  if (lost > 0) problems.push(`${lost} deliveries lost`);
  if (reordered > 0) problems.push(`${reordered} deliveries out of order`);
  if (fdsEnd > fdsStart) {
    problems.push(`descriptors: ${fdsEnd} open at the end, ${fdsStart} at start`);
  }
  if (growth > 0.2) problems.push(`RSS grew ${(growth * 100).toFixed(0)}% in the second half`);
  if (rssMax > 1024 * 1024) problems.push(`RSS reached ${mib(rssMax)}`);
  if (!alive) problems.push("the server died");

  server.child.kill("SIGTERM");
  const status = await Promise.race([server.child.status, sleep(10_000).then(() => undefined)]);
  if (!status) {
    server.child.kill("SIGKILL");
    await server.child.status;
    problems.push("the server did not stop on SIGTERM");
  } else if (status.code !== 0) problems.push(`the server exited ${status.code}: ${server.stderr}`);
  clearTimeout(hardDeadline);

  if (problems.length) {
    console.log(`FAILED:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    return 1;
  }
  console.log("ok: nothing lost, nothing reordered, descriptors back, RSS flat");
  return 0;
}

if (import.meta.main) Deno.exit(await soak());
