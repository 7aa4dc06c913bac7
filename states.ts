#!/usr/bin/env -S deno run -A
// states.ts: the notes' sections "三次握手，数据传输，四次挥手" and the list of TCP
// states (closed ... CLOSE_WAIT), shown as the kernel really has them.
//
//   deno run -A states.ts [--port P] [--state NAME]... [--watch] [--interval MS] [--json]
//   deno run -A states.ts --demo [--json] [--host H] [--port P]
//
// The notes describe the states; this script reads them from Linux's own
// tables, /proc/net/tcp and /proc/net/tcp6, so a learner can watch TIME_WAIT
// happen instead of memorising it, with the kernel's timer for each socket
// (TIME_WAIT's 2MSL counting down) and the process that owns it, as `ss -op`.
// `--demo` walks the whole lifecycle on loopback in one process and, after
// every step, prints what the kernel reports for both ends, including every
// state the textbooks say is hard to see: SYN_SENT, FIN_WAIT_1, LAST_ACK,
// SYN_RCVD (held by TCP_DEFER_ACCEPT, set with libc through FFI) and CLOSING
// (a simultaneous close); then the connections that end with RST. Nothing is
// labelled observed unless /proc showed it. Then it draws the exchange as a
// textbook's two-column timeline, client on the left, server on the right;
// `--demo --json` gives the same steps as data.
//
// What it fixes in the note: its state list leaves out LAST_ACK and CLOSING
// (both here); it calls FIN_WAIT_1 hard to see (一般较难见到), and the demo
// catches it, every other state too; "date transfer" is data transfer; the
// 2MSL it mentions is shown as the kernel's own timer; and the section's
// three lines become every segment and state, checked in /proc.
//
// Reading anything under /proc needs --allow-all (-A); --allow-read is not
// enough, and without -A the script says so instead of prompting.
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
//   SYN_RCVD; CLOSING (not in the notes)     SYN_RCVD_STEPS, CLOSING_STEPS (lib/rare_steps.ts)
//   "2MSL" (TIME_WAIT's timer)               formatTimer (lib/state_table.ts), timers in /proc
//   a reset instead of the four-way wave     RESET_STEPS (lib/reset_steps.ts)
//   who holds a socket (netstat -p)          socketOwners (lib/owners.ts)
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
import { type OwnedSocket, OwnerCache } from "./lib/owners.ts";
import { clientSends, HANDSHAKE, isSegment, serverSends } from "./lib/picture.ts";
import { listenerEnd, NO_SOCKET, waitingClients } from "./lib/probes.ts";
import {
  missingForProc,
  pollTcpSockets,
  readTcpSockets,
  requireLinux,
  sameEndpoint,
  socketsOnPort,
  type TcpSocket,
} from "./lib/proc_net_tcp.ts";
import { CLOSING_SCENE, CLOSING_STEPS, SYN_RCVD_SCENE, SYN_RCVD_STEPS } from "./lib/rare_steps.ts";
import { RESET_SCENE, RESET_STEPS } from "./lib/reset_steps.ts";
import { diffSnapshots, formatTable, plainRows } from "./lib/state_table.ts";
import { bothEnds, mib, queueOf, runStep, type Step, summarize } from "./lib/step.ts";
import { formatStep } from "./lib/step_text.ts";
import { ALL_STATES, type StateName, statesNamed } from "./lib/tcp_states.ts";
import { type DemoStep, drawTimeline } from "./lib/timeline.ts";

const USAGE =
  `usage: deno run -A states.ts [--port P] [--state NAME]... [--watch] [--interval MS] [--json]
       deno run -A states.ts --demo [--json] [--host H] [--port P]

Shows the kernel's TCP states (the notes' state list, CLOSED ... CLOSE_WAIT)
for every TCP socket, IPv4 and IPv6, read from /proc/net/tcp and /proc/net/tcp6,
with the kernel's TIMER for each (timewait: 2MSL left; retransmit, keepalive,
probe: a zero-window probe) and the PROCESS that owns it (pid/name, - if unseen).

options:
  -p, --port P      only sockets whose local or remote port is P (default: all);
                    with --demo, the port the demo listens on (default 0: any free port)
  --state NAME      only sockets in state NAME, as in the notes (time-wait,
                    TIME_WAIT, syn-rcvd...; case, - and _ do not matter); repeatable
  --watch           redraw whenever a state changes, highlighting what changed,
                    until Ctrl+C; on a terminal the timers count down
  --interval MS     how often --watch reads the kernel's table (default 500)
  --json            print one JSON array of sockets (with --demo: the steps as data)
  --demo            walk the whole TCP lifecycle on loopback and show, after each
                    step, the states the kernel reports for the client and the server;
                    then draw the exchange as a two-column timeline (colour on a terminal).
                    SYN_RCVD, and the SO_LINGER reset, use libc through FFI
                    (--allow-ffi, part of -A); without it they are skipped, saying why
  --host H          address the demo listens on (default 127.0.0.1; ::1 for IPv6)
  -h, --help        show this help

CLOSED means the kernel has no such socket (not created yet, or gone).
Needs Linux (/proc/net/tcp) and -A: reading /proc requires --allow-all.
--json adds to each socket: timer, timerSeconds, retransmits, inode, pid, process.
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
    // parseArgs gives an array for `multiple`; FlagValues types it as one string.
    state: { type: "string", multiple: true },
  }, USAGE);
  const portFlag: string | undefined = flags.port;
  const host = parseHost(flags.host);
  const interval = parseIntFlag(flags.interval, "--interval", 10);
  const states = flags.state ? statesNamed([flags.state].flat(), "--state") : undefined;
  if (flags.demo && flags.watch) throw new UsageError("--demo and --watch cannot be combined");
  if (flags.demo && states) throw new UsageError("--state filters the list; --demo shows all");
  if (states?.includes("CLOSED")) {
    throw new UsageError(
      "--state CLOSED: a closed socket is no socket at all; the kernel lists none",
    );
  }
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
  const filter: Filter = { port, states };
  if (flags.watch) return await watch(filter, interval);
  await listOnce(filter, flags.json);
  return 0;
}

/**
 * Reading /proc needs every permission (Deno's rule for such files). Checked
 * before anything else, and said in one plain line: without -A even a
 * coloured "error:" would make Deno prompt on a terminal (for the
 * environment variables colours depend on). --help needs nothing.
 */
function exitUnlessAllPermissions(args: string[]): void {
  if (args.includes("--help") || args.includes("-h")) return;
  const missing = missingForProc();
  if (!missing.length) return;
  console.error(
    `error: reading /proc needs all permissions (--allow-all; missing: ${missing.join(", ")}): ` +
      "run it with deno run -A states.ts",
  );
  Deno.exit(1);
}

// ------------------------------------------------------- list and watch ---

/** Which sockets to show: a port at either end, states (undefined: all). */
interface Filter {
  port?: number;
  states?: StateName[];
}

/** The sockets of a snapshot that pass `filter`, each with its owner. */
function select(all: TcpSocket[], { port, states }: Filter, owners: OwnerCache): OwnedSocket[] {
  const sockets = socketsOnPort(all, port).filter((s) => !states || states.includes(s.state));
  return owners.withOwners(sockets);
}

async function listOnce(filter: Filter, json: boolean): Promise<void> {
  const sockets = select(await readTcpSockets(), filter, new OwnerCache());
  if (json) {
    console.log(JSON.stringify(sockets));
  } else if (sockets.length === 0) {
    console.log(`no ${describe(filter)}`);
  } else {
    console.log(formatTable(plainRows(sockets), { process: true }).join("\n"));
  }
}

/** What the filter selects, in words: "TCP sockets with port 8080 in TIME_WAIT". */
function describe({ port, states }: Filter): string {
  return "TCP sockets" + (port === undefined ? "" : ` with port ${port}`) +
    (states ? ` in ${states.join(" or ")}` : "");
}

/**
 * Reads the table every `interval` ms and redraws when a state changed; the
 * highlight stays until the next change. On a terminal the screen is redrawn
 * in place, also when a timer's whole second changes (TIME_WAIT counting
 * down); into a pipe each change of state is appended with a time stamp.
 */
async function watch(filter: Filter, interval: number): Promise<number> {
  const stop = new AbortController();
  const removeSignals = onStopSignal(() => stop.abort());
  const tty = Deno.stdout.isTerminal();
  let previous: TcpSocket[] | undefined;
  let before: TcpSocket[] = []; // the snapshot before the last change: what the marks compare to
  let shown = "";
  const owners = new OwnerCache();
  try {
    for await (const all of pollTcpSockets(interval, stop.signal)) {
      const sockets = select(all, filter, owners);
      const changed = previous === undefined ||
        diffSnapshots(previous, sockets).some((r) => r.mark);
      if (changed) before = previous ?? sockets;
      const rows = diffSnapshots(before, sockets);
      // Whole seconds: a terminal's countdown redraws once a second, not every poll.
      const table = rows.length
        ? formatTable(rows, { process: true, timerDigits: 0 })
        : [`no ${describe(filter)}`];
      if (changed || (tty && table.join("\n") !== shown)) {
        const all = filter.port === undefined && !filter.states;
        const title = `${all ? "all TCP sockets" : describe(filter)}, ${clock()}`;
        // On a terminal: home the cursor and clear the screen, then draw the new table.
        if (tty) console.log(`\x1b[H\x1b[2J${title} (Ctrl+C to stop; * marks what changed)`);
        else console.log(`-- ${title}`);
        console.log(table.join("\n"));
        shown = table.join("\n");
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
/** The scenes --demo draws as a timeline: each one connection's story, or a few short ones. */
const TIMELINE_SCENES = [SCENE_1, SCENE_2, SYN_RCVD_SCENE, CLOSING_SCENE, RESET_SCENE];

const MIB = 1024 * 1024;
const encoder = new TextEncoder();

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
      "queue. SYN_SENT and SYN_RCVD lasted one loopback round trip (both are caught below).",
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
    // With the client's data unread the server's close() ends it all with RST (see the last part).
    cleanUp: (lab) => lab.release(lab.pair.server),
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
  ...SYN_RCVD_STEPS,
  ...CLOSING_STEPS,
  ...RESET_STEPS,
];

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
  // CLOSED is no entry at all: every other state of the list is one /proc can show.
  const everyState = ALL_STATES.every((s) => s === "CLOSED" || observed.includes(s));
  if (json) {
    const timelineScenes = TIMELINE_SCENES; // the scenes the text output draws
    const summary = { listening, steps, observed, notObserved, everyState, timelineScenes };
    console.log(JSON.stringify(summary, null, 2));
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
  if (everyState) {
    console.log("That is every state of the notes' list, and the two it leaves out (LAST_ACK,");
    console.log('CLOSING); CLOSED, the last, counts as "no socket".');
  }
  if (notObserved.length) console.log(`Not observed: ${notObserved.join(", ")} (explained above)`);
  const skipped = steps.filter((step) => step.skipped).map((step) => step.id);
  if (skipped.length) {
    console.log(`Skipped without libc (FFI): ${skipped.join(", ")}; run with -A on Linux.`);
  }
  console.log("The TIME_WAIT entries expire after 60 s; watch them go with:");
  console.log(`  deno run -A states.ts --watch --port ${demoRun.port}`);
}

if (import.meta.main) {
  exitUnlessAllPermissions(Deno.args);
  runMain(() => main(Deno.args), USAGE);
}
