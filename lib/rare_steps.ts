/**
 * states.ts --demo's rows for the two states loopback hides, staged so the
 * kernel holds them long enough for /proc to show them: SYN_RCVD (a
 * listener with TCP_DEFER_ACCEPT, made with libc through FFI, keeps the
 * server's half of a finished handshake until the client sends data) and
 * CLOSING (a simultaneous close: both ends' FINs wait behind data the other
 * has not read, so one end receives the other's FIN before its own is
 * acknowledged). No root, no raw sockets, no slow network.
 *
 * @module
 */

import { writeAll } from "./net.ts";
import { clientSends, serverSends } from "./picture.ts";
import { connectionEnd, endBetween } from "./probes.ts";
import { bothEnds, mib, queueOf, type Step } from "./step.ts";
import type { Lab } from "./lab.ts";

/** The scene of the SYN_RCVD steps. */
export const SYN_RCVD_SCENE =
  "SYN_RCVD, held: a server that waits for the client to speak first (TCP_DEFER_ACCEPT)";
/** The scene of the CLOSING steps. */
export const CLOSING_SCENE = "CLOSING: the simultaneous close, both FINs crossing";

/** Long enough for the demo, short enough that nothing lingers: the kernel counts in SYN+ACK resends. */
const DEFER_SECONDS = 5;
const MIB = 1024 * 1024;
const DEFERRED_WITH = "TCP_DEFER_ACCEPT (setsockopt() through FFI)";

/** The client of the deferred listener, and the server's half of its connection. */
const deferredEnds = (lab: Lab) => ({
  client: connectionEnd(lab.deferred.client),
  server: endBetween(lab.deferred.address, lab.deferred.client.localAddr),
});

/** Reads until the peer's FIN: the number of bytes read. */
async function readToEnd(conn: Deno.TcpConn, buffer: Uint8Array): Promise<number> {
  let total = 0;
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) total += n;
  return total;
}

/** SYN_RCVD, observed: the server's half of a finished handshake, held back. */
export const SYN_RCVD_STEPS: Step[] = [
  {
    id: "syn-rcvd",
    scene: SYN_RCVD_SCENE,
    title: `server (libc): TCP_DEFER_ACCEPT ${DEFER_SECONDS} s, bind(), listen(); ` +
      "client: connect(), sends nothing",
    needsLibc: DEFERRED_WITH,
    act: async (lab) => {
      await lab.deferredConnect(DEFER_SECONDS);
    },
    picture: [
      clientSends("SYN"),
      { client: "SYN_SENT", server: "SYN_RCVD" },
      serverSends("SYN+ACK"),
      clientSends("ACK (no data: held)"),
      { client: "ESTABLISHED", server: "SYN_RCVD" },
    ],
    watch: deferredEnds,
    until: { client: ["ESTABLISHED"], server: ["SYN_RCVD"] },
    note: ({ observed }) =>
      `connect() returned: the client is ${observed.client.join(" -> ")}, while the server's ` +
      `half is ${observed.server.join(" -> ")}. With TCP_DEFER_ACCEPT the server's kernel ` +
      "takes the handshake's last ACK as not enough: it keeps the connection as a half-open " +
      "request (SYN_RCVD, its SYN+ACK timer running) and wakes no accept() until data " +
      "arrives. A server whose clients speak first (HTTP) is spared the connections that " +
      "never send anything.",
  },
  {
    id: "syn-rcvd-data",
    scene: SYN_RCVD_SCENE,
    title: 'client: send() "hello": the server\'s kernel finishes its half',
    needsLibc: DEFERRED_WITH,
    act: async (lab) => {
      await writeAll(lab.deferred.client, new TextEncoder().encode("hello\n"));
    },
    picture: [
      clientSends('data "hello"'),
      serverSends("ACK"),
      { client: "ESTABLISHED", server: "ESTABLISHED" },
    ],
    watch: deferredEnds,
    note: () =>
      "The first data completes the handshake for the server: its kernel makes the " +
      "connection's socket (ESTABLISHED) with the data already in it and puts it in the " +
      "accept queue; only now would accept() return. Without TCP_DEFER_ACCEPT this happens " +
      "at the ACK, which is why SYN_RCVD usually lasts one round trip.",
    cleanUp: (lab) => {
      lab.release(lab.deferred.client);
      lab.closeFd(lab.deferred.fd); // the queued connection is reset with the listener
    },
  },
];

/** CLOSING, observed: both ends half-close while their FINs wait behind unread data. */
export const CLOSING_STEPS: Step[] = [
  {
    id: "closing-fill",
    scene: CLOSING_SCENE,
    title: "both: write 16 MiB the other never reads, then closeWrite() (shutdown(SHUT_WR))",
    act: async (lab) => {
      const { client, server } = await lab.connect();
      const clientWrote = await client.write(new Uint8Array(16 * MIB)); // returns what fit
      const serverWrote = await server.write(new Uint8Array(16 * MIB));
      await client.closeWrite();
      await server.closeWrite();
      return { clientWrote, serverWrote };
    },
    picture: [
      clientSends("data (never read)"),
      serverSends("data (never read)"),
      { client: "FIN_WAIT_1", server: "FIN_WAIT_1" },
    ],
    watch: bothEnds,
    note: ({ facts, sockets, lab }) =>
      `Each end closed while ${mib(facts.clientWrote)} (client) and ${mib(facts.serverWrote)} ` +
      `(server) were written: each FIN waits behind ` +
      `${queueOf(sockets, lab.pair.client, "sendQueue")} and ` +
      `${queueOf(sockets, lab.pair.server, "sendQueue")} not yet acknowledged, since ` +
      "neither reads. Both have closed and neither FIN has left: a simultaneous close.",
  },
  {
    id: "closing",
    scene: CLOSING_SCENE,
    title: "client: read() everything: the server's data, then its FIN",
    act: async (lab) => ({ read: await readToEnd(lab.pair.client, lab.buffer) }),
    picture: [
      serverSends("FIN (crosses client's)"),
      { client: "CLOSING" },
      clientSends("ACK"),
      { server: "FIN_WAIT_2" },
    ],
    watch: bothEnds,
    until: { client: ["CLOSING"], server: ["FIN_WAIT_2"] },
    note: ({ facts, observed }) =>
      `The client read ${mib(facts.read)}, and then null: the server's FIN. Its own FIN is ` +
      "still queued behind data the server has not read, so it has received a FIN before " +
      `its own was acknowledged: ${observed.client.join(" -> ")}, the state of a ` +
      "simultaneous close. The server, whose FIN the client ACKed, waits in FIN_WAIT_2.",
  },
  {
    id: "closing-end",
    scene: CLOSING_SCENE,
    title: "server: read() everything: the client's data, then its FIN",
    act: async (lab) => ({ read: await readToEnd(lab.pair.server, lab.buffer) }),
    picture: [
      clientSends("FIN (crossed server's)"),
      { server: "TIME_WAIT" },
      serverSends("ACK"),
      { client: "TIME_WAIT" },
    ],
    watch: bothEnds,
    note: ({ facts }) =>
      `The server read ${mib(facts.read)} and the client's FIN; its ACK ends the client's ` +
      "CLOSING. Both ends closed actively, so both wait 2MSL in TIME_WAIT: the kernel's " +
      "timer, read from /proc, says how long is left.",
    cleanUp: (lab) => {
      lab.release(lab.pair.client);
      lab.release(lab.pair.server);
    },
  },
];
