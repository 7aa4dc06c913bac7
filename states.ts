// states.ts: the notes' sections "三次握手，数据传输，四次挥手" and the list of TCP
// states (closed ... CLOSE_WAIT), shown as the kernel really has them.
//
//   deno run -A states.ts [--port P] [--watch] [--interval MS] [--json]
//   deno run -A states.ts --demo [--json] [--host H] [--port P]
//
// The notes describe the states; this script reads them from Linux's own
// tables, /proc/net/tcp and /proc/net/tcp6, so a learner can watch TIME_WAIT
// happen instead of memorising it. `--demo` walks the whole lifecycle on
// loopback in one process and, after every step, prints what the kernel
// reports for both ends, including the short-lived states the textbooks say
// are hard to see (SYN_SENT, FIN_WAIT_1, LAST_ACK). States the kernel passes
// through too fast (SYN_RCVD, CLOSING) are explained and marked "not
// observed": nothing here is labelled observed unless /proc showed it.
// Then it draws the exchange as a textbook's two-column timeline, client on
// the left, server on the right, each state marked "(observed)" only if /proc
// showed it in that step; `--demo --json` gives the same steps as data.
//
// What it fixes in the note: its state list leaves out LAST_ACK and CLOSING
// (both here); it calls FIN_WAIT_1 hard to see (一般较难见到), and the demo
// catches it, SYN_SENT and LAST_ACK too; "date transfer" is data transfer;
// and the section's three lines become every segment and state, checked in /proc.
//
// Reading anything under /proc needs --allow-all (-A); --allow-read is not enough.
//
// Reading guide (the note's line -> where it happens here):
//   the state list (closed ... CLOSE_WAIT)   MEANINGS (lib/tcp_states.ts), beside each
//                                            socket in listOnce() and watch()
//   "可用netstat看到" (netstat)               readTcpSockets (lib/proc_net_tcp.ts)
//   establish connection (三次握手)           STEPS "listen", "handshake"
//   date transfer (数据传输)                  STEPS "data"
//   close connection (四次挥手)               STEPS "client-close", "server-close", and
//                                            the mirror case "server-close-first" ...
//   "一般较难见到" (FIN_WAIT_1, SYN_SENT)     STEPS "syn-sent", "fin-wait-1", "last-ack"
//   SYN_RCVD; CLOSING (not in the notes)     STEPS "syn-rcvd", "closing": not observed
//   one step: its calls, then /proc          runDemo() -> runStep (lib/step.ts)
//   the textbook's picture of the exchange   drawTimeline (lib/timeline.ts)

import {
  onStopSignal,
  parseFlags,
  parseHost,
  parseIntFlag,
  parsePort,
  runMain,
  UsageError,
} from "./utils.ts";
import { formatAddress, writeAll } from "./lib/net.ts";
import { Lab } from "./lib/lab.ts";
import { clientSends, type End, HANDSHAKE, isSegment, serverSends } from "./lib/picture.ts";
import {
  connectionEnd,
  listenerEnd,
  NO_SOCKET,
  waitingClients,
  type WatchedEnd,
} from "./lib/probes.ts";
import {
  findConnection,
  pollTcpSockets,
  readTcpSockets,
  requireLinux,
  sameEndpoint,
  socketsOnPort,
  type TcpSocket,
} from "./lib/proc_net_tcp.ts";
import { diffSnapshots, formatTable, plainRows } from "./lib/state_table.ts";
import { runStep, type Step, summarize } from "./lib/step.ts";
import { formatStep } from "./lib/step_text.ts";
import type { StateName } from "./lib/tcp_states.ts";
import { type DemoStep, drawTimeline } from "./lib/timeline.ts";

const USAGE = `usage: deno run -A states.ts [--port P] [--watch] [--interval MS] [--json]
       deno run -A states.ts --demo [--json] [--host H] [--port P]

Shows the kernel's TCP states (the notes' state list, CLOSED ... CLOSE_WAIT)
for every TCP socket, IPv4 and IPv6, read from /proc/net/tcp and /proc/net/tcp6.

options:
  -p, --port P      only sockets whose local or remote port is P (default: all);
                    with --demo, the port the demo listens on (default 0: any free port)
  --watch           redraw whenever a state changes, highlighting what changed,
                    until Ctrl+C
  --interval MS     how often --watch reads the kernel's table (default 500)
  --json            print one JSON array of sockets (with --demo: the steps as data)
  --demo            walk the whole TCP lifecycle on loopback and show, after each
                    step, the states the kernel reports for the client and the server;
                    then draw the exchange as a two-column timeline (colour on a terminal)
  --host H          address the demo listens on (default 127.0.0.1; ::1 for IPv6)
  -h, --help        show this help

CLOSED means the kernel has no such socket (not created yet, or gone).
Needs Linux (/proc/net/tcp) and -A: reading /proc requires --allow-all.
Exit status: 0 success (and after Ctrl+C in --watch), 1 runtime error
(e.g. not Linux), 2 bad usage.`;

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    // No default here: without --port every socket is listed (the shared 8080 would filter).
    port: { type: "string", short: "p" },
    watch: { type: "boolean", default: false },
    interval: { type: "string", default: "500" },
    json: { type: "boolean", default: false },
    demo: { type: "boolean", default: false },
  }, USAGE);
  const portFlag: string | undefined = flags.port;
  const host = parseHost(flags.host);
  const interval = parseIntFlag(flags.interval, "--interval", 10);
  if (flags.demo && flags.watch) throw new UsageError("--demo and --watch cannot be combined");
  if (flags.watch && flags.json) {
    throw new UsageError("--json prints one snapshot; it cannot be combined with --watch");
  }

  if (flags.demo) {
    await demo(host, parsePort(portFlag ?? "0"), flags.json);
    return 0;
  }
  const port = portFlag === undefined ? undefined : parsePort(portFlag);
  if (port === 0) {
    throw new UsageError("--port 0 matches no socket: give a port 1-65535, or leave --port out");
  }
  if (flags.watch) return await watch(port, interval);
  await listOnce(port, flags.json);
  return 0;
}

// ------------------------------------------------------- list and watch ---

async function listOnce(port: number | undefined, json: boolean): Promise<void> {
  const sockets = socketsOnPort(await readTcpSockets(), port);
  if (json) {
    console.log(JSON.stringify(sockets));
  } else if (sockets.length === 0) {
    console.log(noSocketsLine(port));
  } else {
    console.log(formatTable(plainRows(sockets)).join("\n"));
  }
}

function noSocketsLine(port?: number): string {
  return port === undefined ? "no TCP sockets" : `no TCP sockets with port ${port}`;
}

/**
 * Reads the table every `interval` ms and redraws only when a state changed,
 * so the highlight stays until the next change. On a terminal the screen is
 * redrawn in place; into a pipe each change is appended with a time stamp.
 */
async function watch(port: number | undefined, interval: number): Promise<number> {
  const stop = new AbortController();
  const removeSignals = onStopSignal(() => stop.abort());
  const tty = Deno.stdout.isTerminal();
  let previous: TcpSocket[] | undefined;
  try {
    for await (const all of pollTcpSockets(interval, stop.signal)) {
      const sockets = socketsOnPort(all, port);
      const rows = diffSnapshots(previous ?? sockets, sockets);
      if (previous === undefined || rows.some((r) => r.mark)) {
        const title =
          `${port === undefined ? "all TCP sockets" : `TCP sockets with port ${port}`}` +
          `, ${clock()}`;
        // On a terminal: home the cursor and clear the screen, then draw the new table.
        if (tty) console.log(`\x1b[H\x1b[2J${title} (Ctrl+C to stop; * marks what changed)`);
        else console.log(`-- ${title}`);
        console.log((rows.length ? formatTable(rows) : [noSocketsLine(port)]).join("\n"));
      }
      previous = sockets;
    }
  } finally {
    removeSignals();
  }
  return 0;
}

/** HH:MM:SS.mmm, local time. */
function clock(): string {
  const now = new Date();
  return `${now.toTimeString().slice(0, 8)}.${String(now.getMilliseconds()).padStart(3, "0")}`;
}

// ------------------------------------------------------- the demo's steps ---

const SCENE_1 = "the client closes first (the notes' 四次挥手)";
const SCENE_2 =
  "the server closes first: the TIME_WAIT lands on the server's port (解决2MSL延时问题)";
const SCENE_3 = "catching the short-lived states";
/** The scenes --demo draws as a timeline: one connection each, from handshake to TIME_WAIT. */
const TIMELINE_SCENES = [SCENE_1, SCENE_2];

const MIB = 1024 * 1024;
const encoder = new TextEncoder();

/** The step's connection, both ends. */
const bothEnds = (lab: Lab): Record<End, WatchedEnd> => ({
  client: connectionEnd(lab.pair.client),
  server: connectionEnd(lab.pair.server),
});

/** The demo, in order. Adding a step is adding a row. */
const STEPS: Step[] = [
  // ---- scene 1: the notes' order, the client closes first ----
  {
    id: "listen",
    scene: SCENE_1,
    title: "server: socket(), bind(), listen() (Deno.listen does all three)",
    picture: [{ client: "CLOSED", server: "LISTEN" }],
    watch: (lab) => ({ client: NO_SOCKET, server: listenerEnd(lab.listener) }),
    note: () => "No packet yet: the listening socket only waits for a SYN.",
  },
  {
    id: "handshake",
    scene: SCENE_1,
    title: "client: connect(); server: accept(): the three-way handshake",
    act: async (lab) => {
      await lab.connect();
    },
    picture: HANDSHAKE,
    watch: bothEnds,
    note: () =>
      "The kernel did the handshake; accept() only took the finished connection from the " +
      "queue. SYN_SENT and SYN_RCVD lasted one loopback round trip (see scene 3).",
  },
  {
    id: "data",
    scene: SCENE_1,
    title: "data both ways: send() and recv() on each side",
    act: async ({ pair, buffer }) => {
      await writeAll(pair.client, encoder.encode("hello\n"));
      const asked = await pair.server.read(buffer);
      await writeAll(pair.server, encoder.encode("thank you!\n"));
      return { asked, answered: await pair.client.read(buffer) };
    },
    picture: [
      clientSends('data "hello"'),
      serverSends("ACK"),
      serverSends('data "thank you!"'),
      clientSends("ACK"),
      { client: "ESTABLISHED", server: "ESTABLISHED" },
    ],
    watch: bothEnds,
    note: ({ facts }) =>
      `The server read ${facts.asked ?? 0} bytes, the client ${facts.answered ?? 0}: ` +
      "every segment is acknowledged, the states do not change.",
  },
  {
    id: "client-close",
    scene: SCENE_1,
    title: "client: close() first (wave 1 and 2 of the four-way wave)",
    act: (lab) => lab.release(lab.pair.client),
    picture: [
      clientSends("FIN"),
      { client: "FIN_WAIT_1", server: "CLOSE_WAIT" },
      serverSends("ACK"),
      { client: "FIN_WAIT_2" },
    ],
    watch: bothEnds,
    note: () =>
      "The client program is done, but its kernel keeps the connection until the server's " +
      "FIN (with closeWrite(), a half-close, it could still receive). The server's kernel " +
      "ACKed the FIN by itself; CLOSE_WAIT lasts until the server program calls close().",
  },
  {
    id: "server-close",
    scene: SCENE_1,
    title: "server: read() returns null (the FIN), then close() (wave 3 and 4)",
    act: async (lab) => {
      const eof = await lab.pair.server.read(lab.buffer);
      lab.release(lab.pair.server);
      return { eof };
    },
    picture: [
      serverSends("FIN"),
      { server: "LAST_ACK" },
      clientSends("ACK"),
      { client: "TIME_WAIT", server: "CLOSED" },
    ],
    watch: bothEnds,
    until: { server: ["CLOSED"] },
    note: ({ facts }) =>
      `The server's read() returned ${facts.eof === null ? "null" : facts.eof}: how a ` +
      "program sees a FIN (the notes: 接收数据的长度为0). The client, which closed first, " +
      "waits 2MSL in TIME_WAIT (60 s on Linux); LAST_ACK lasted one round trip (caught in " +
      "scene 3).",
  },
  // ---- scene 2: the mirror case, the server closes first ----
  {
    id: "handshake-2",
    scene: SCENE_2,
    title: "a second client: connect() and accept()",
    act: async (lab) => {
      await lab.connect();
    },
    // The handshake's passing states were drawn in step 2; only the result here.
    picture: [...HANDSHAKE.filter(isSegment), { client: "ESTABLISHED", server: "ESTABLISHED" }],
    watch: bothEnds,
    note: () => "A new connection: a new client port, the same server port.",
  },
  {
    id: "server-close-first",
    scene: SCENE_2,
    title: "server: close() first",
    act: (lab) => lab.release(lab.pair.server),
    picture: [
      serverSends("FIN"),
      { client: "CLOSE_WAIT", server: "FIN_WAIT_1" },
      clientSends("ACK"),
      { server: "FIN_WAIT_2" },
    ],
    watch: bothEnds,
    note: () => "Now the roles swap: the server is the one waiting for the other FIN.",
  },
  {
    id: "client-close-last",
    scene: SCENE_2,
    title: "client: read() returns null, then close()",
    act: async (lab) => {
      const eof = await lab.pair.client.read(lab.buffer);
      lab.release(lab.pair.client);
      return { eof };
    },
    picture: [
      clientSends("FIN"),
      { client: "LAST_ACK" },
      serverSends("ACK"),
      { client: "CLOSED", server: "TIME_WAIT" },
    ],
    watch: bothEnds,
    until: { client: ["CLOSED"] },
    note: ({ facts, lab }) =>
      `The client's read() returned ${facts.eof === null ? "null" : facts.eof}. The ` +
      `TIME_WAIT now holds the server's own address ${formatAddress(lab.listener.addr)} for ` +
      "60 s: a server restarted without SO_REUSEADDR could not bind it (see reuse_server.ts " +
      "--demo).",
  },
  // ---- scene 3: the states textbooks call hard to see ----
  {
    id: "syn-sent",
    scene: SCENE_3,
    title: "4 clients connect() to a listener with tcpBacklog 1 that never accept()s",
    // The accept queue fills up and the kernel drops further SYNs unanswered.
    act: (lab) => lab.fillAcceptQueue(4),
    picture: [
      clientSends("SYN (dropped: the accept queue is full)"),
      { client: "SYN_SENT", server: "LISTEN" },
    ],
    watch: (lab) => ({
      client: waitingClients(lab.fullListener),
      server: listenerEnd(lab.fullListener),
    }),
    until: { client: ["SYN_SENT"] },
    note: ({ sockets, lab }) => {
      const states = sockets
        .filter((s) => sameEndpoint(s.remote, lab.fullListener.addr))
        .map((s) => s.state);
      const count = (state: StateName) => states.filter((s) => s === state).length;
      return `Of 4 connect()s, ${count("ESTABLISHED")} finished the handshake and wait in the ` +
        `accept queue (ESTABLISHED), ${count("SYN_SENT")} sent a SYN nobody answers ` +
        "(SYN_SENT): the kernel would resend it after 1 s, 3 s, 7 s... The demo gives up.";
    },
    cleanUp: (lab) => lab.emptyAcceptQueue(),
  },
  {
    id: "fin-wait-1",
    scene: SCENE_3,
    title: "client: write 16 MiB the server never reads, then close()",
    act: async (lab) => {
      const { client } = await lab.connect();
      const unsent = await client.write(new Uint8Array(16 * MIB)); // returns what fit
      lab.release(client);
      return { unsent };
    },
    picture: [
      clientSends("data, until the server's receive buffer is full"),
      serverSends("ACK, window 0"),
      { client: "FIN_WAIT_1", server: "ESTABLISHED" },
    ],
    watch: bothEnds,
    note: ({ facts, sockets, lab }) =>
      `write() took ${mib(facts.unsent)} (the rest did not fit). After close() the client's ` +
      `FIN queues behind ${queueOf(sockets, lab.pair.client, "sendQueue")} not yet ` +
      `acknowledged, while ${queueOf(sockets, lab.pair.server, "recvQueue")} sit unread at ` +
      "the server: the FIN cannot be sent, so FIN_WAIT_1 lasts (the notes: " +
      "FIN_WAIT_1状态一般较难见到).",
  },
  {
    id: "reset",
    scene: SCENE_3,
    title: "server: close() with the data still unread",
    act: (lab) => lab.release(lab.pair.server),
    picture: [serverSends("RST"), { client: "CLOSED", server: "CLOSED" }],
    watch: bothEnds,
    note: () =>
      "Closing a socket with unread data sends RST, not FIN: no four-way wave, both ends " +
      "are gone at once, and nobody waits in TIME_WAIT.",
  },
  {
    id: "last-ack",
    scene: SCENE_3,
    title: "client: closeWrite(); server: write 16 MiB the client never reads, then close()",
    act: async (lab) => {
      const { client, server } = await lab.connect();
      await client.closeWrite();
      const eof = await server.read(lab.buffer);
      const unread = await server.write(new Uint8Array(16 * MIB));
      lab.release(server);
      return { eof, unread };
    },
    picture: [
      clientSends("FIN"),
      serverSends("ACK"),
      { client: "FIN_WAIT_2" },
      serverSends("data, until the client's buffer is full"),
      { server: "LAST_ACK" },
    ],
    watch: bothEnds,
    note: ({ facts, sockets, lab }) =>
      `The server read ${facts.eof === null ? "null (the FIN)" : facts.eof}, wrote ` +
      `${mib(facts.unread)} and closed: its FIN waits behind ` +
      `${queueOf(sockets, lab.pair.server, "sendQueue")} the client has not read, so ` +
      "LAST_ACK lasts. The client then closes with that data unread: RST, and both are gone.",
    cleanUp: (lab) => lab.release(lab.pair.client),
  },
  {
    // Nothing is run or read here: a textbook step, explained, with nothing observed.
    id: "syn-rcvd",
    scene: SCENE_3,
    title: "SYN_RCVD: the server between its SYN+ACK and the client's ACK",
    picture: [
      clientSends("SYN"),
      { client: "SYN_SENT", server: "SYN_RCVD" },
      serverSends("SYN+ACK"),
      clientSends("ACK"),
    ],
    note: () =>
      "Not observed, and not staged: on loopback the client's ACK comes back within " +
      "microseconds, inside the connect() call, before /proc can be read. Catching it needs " +
      "a client that never sends that ACK (a raw socket, root) or a slow network. The " +
      "SYN_SENT trick above works only because the full queue drops the SYN unanswered.",
  },
  {
    id: "closing",
    scene: SCENE_3,
    title: "CLOSING: both ends close() back to back, hoping the FINs cross",
    act: async (lab) => {
      const { client, server } = await lab.connect();
      lab.release(client);
      lab.release(server);
    },
    picture: [
      clientSends("FIN"),
      serverSends("FIN"),
      { client: "CLOSING", server: "CLOSING" },
      clientSends("ACK"),
      serverSends("ACK"),
      { client: "TIME_WAIT", server: "TIME_WAIT" },
    ],
    watch: bothEnds,
    until: { client: ["TIME_WAIT", "CLOSED"], server: ["TIME_WAIT", "CLOSED"] },
    note: ({ observed }) =>
      observed.client.includes("CLOSING") || observed.server.includes("CLOSING")
        ? "CLOSING observed: the two FINs crossed."
        : "CLOSING not observed: it needs the two FINs to cross on the wire, but on loopback " +
          "the client's FIN reached the server inside the first close(), so the second " +
          "close() was an ordinary passive close, as the states above show.",
  },
];

/** A readable size: 3919467 -> "3.7 MiB"; "?" when unknown. */
function mib(bytes: number | null | undefined): string {
  return typeof bytes === "number" ? `${(bytes / MIB).toFixed(1)} MiB` : "?";
}

/** How much one end of `conn` has queued, as /proc showed it. */
function queueOf(
  sockets: TcpSocket[],
  conn: Deno.TcpConn,
  queue: "sendQueue" | "recvQueue",
): string {
  return mib(findConnection(sockets, conn.localAddr, conn.remoteAddr)?.[queue]);
}

// ------------------------------------------------------- the demo's runner ---

/**
 * Walks the lifecycle on loopback and returns each step with what /proc
 * showed. `onStep` prints a step as soon as it is done. Every socket and
 * pending connect is closed before returning; only the kernel's TIME_WAIT
 * entries stay behind (they expire after 60 s).
 */
async function runDemo(
  host: string,
  port: number,
  onStep: (step: DemoStep, index: number) => void,
): Promise<{ listening: string; port: number; steps: DemoStep[] }> {
  requireLinux();
  const lab = new Lab(host, port);
  const steps: DemoStep[] = [];
  try {
    for (const row of STEPS) {
      const step = await runStep(row, lab);
      steps.push(step);
      onStep(step, steps.length);
      await row.cleanUp?.(lab);
    }
  } finally {
    lab.closeAll();
  }
  return { listening: formatAddress(lab.listener.addr), port: lab.listener.addr.port, steps };
}

// ------------------------------------------------------- the demo's output ---

async function demo(host: string, port: number, json: boolean): Promise<void> {
  let previous: DemoStep | undefined;
  if (!json) {
    console.log("The TCP lifecycle on loopback, as the kernel reports it: after each step the");
    console.log("states of both ends are read from /proc/net/tcp. CLOSED = no such socket.");
  }
  const demoRun = await runDemo(host, port, (step, index) => {
    if (json) return;
    for (const line of formatStep(step, index, previous)) console.log(line);
    previous = step;
  });
  const { listening, steps } = demoRun;
  const { observed, notObserved } = summarize(steps);
  if (json) {
    const timelineScenes = TIMELINE_SCENES; // the scenes the text output draws
    console.log(
      JSON.stringify({ listening, steps, observed, notObserved, timelineScenes }, null, 2),
    );
    return;
  }
  console.log("\n== The same exchange as a timeline; the number on the left is the step above");
  console.log(
    "(observed): /proc showed it during that step. (too fast to observe): /proc did not,",
  );
  console.log("but showed a later state the kernel cannot reach without it. (no socket): CLOSED,");
  console.log("the kernel has no such socket.");
  for (const line of drawTimeline(steps, { scenes: TIMELINE_SCENES })) console.log(line);
  console.log(`\nSeen in /proc: ${observed.join(", ")}`);
  if (notObserved.length) console.log(`Not observed: ${notObserved.join(", ")} (explained above)`);
  console.log("The TIME_WAIT entries expire after 60 s; watch them go with:");
  console.log(`  deno run -A states.ts --watch --port ${demoRun.port}`);
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
