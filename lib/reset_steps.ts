/**
 * states.ts --demo's rows for the connections that end with RST instead of
 * a FIN: a connect() to a port nobody listens on (ECONNREFUSED), a close()
 * with unread data whose FIN cannot leave first (the peer gets ECONNRESET),
 * and SO_LINGER 0 through libc, the abort servers use on purpose. None of
 * them leaves a TIME_WAIT: each step says what /proc showed.
 *
 * Why the staging: Deno's conn.close() calls shutdown(SHUT_WR) before
 * close(), so a FIN leaves first and the peer reads EOF, not ECONNRESET,
 * unless that FIN is stuck behind unsent data; libc's close() sends no FIN.
 *
 * @module
 */

import { writeAll } from "./net.ts";
import { clientSends, type End, serverSends } from "./picture.ts";
import { clientsOf, connectionEnd, endBetween, listeningAt } from "./probes.ts";
import { bothEnds, errorOf, mib, type Outcome, type Step } from "./step.ts";
import type { StateName } from "./tcp_states.ts";

/** The scene of the reset steps. */
export const RESET_SCENE = "connections that end with RST, not FIN";

const MIB = 1024 * 1024;

/** What /proc showed about TIME_WAIT, said plainly. */
function noTimeWait({ observed }: Outcome): string {
  const waited = (["client", "server"] as End[]).filter((end) =>
    observed[end].includes("TIME_WAIT" as StateName)
  );
  return waited.length
    ? `Yet /proc showed a TIME_WAIT on the ${waited.join(" and ")}.`
    : "No TIME_WAIT on either end: /proc has no entry for either (CLOSED).";
}

/**
 * The client's next write() after the server's RST: its error code. On
 * loopback the RST arrives within the close() call; a few retries cover a
 * slow machine.
 */
async function writeAfterReset(conn: Deno.TcpConn): Promise<string | null> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const error = await errorOf(() => conn.write(new TextEncoder().encode("still there?\n")));
    if (error) return error;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return null;
}

/** The reset part of the demo. */
export const RESET_STEPS: Step[] = [
  {
    id: "refused",
    scene: RESET_SCENE,
    title: "client: connect() to a port nobody listens on",
    act: async (lab) => {
      const address = lab.closedPort();
      const error = await errorOf(async () =>
        lab.release(await Deno.connect({ hostname: address.hostname, port: address.port }))
      );
      return { error };
    },
    picture: [
      clientSends("SYN"),
      { client: "SYN_SENT", server: "CLOSED" },
      serverSends("RST"),
      { client: "CLOSED" },
    ],
    watch: (lab) => ({
      client: clientsOf(lab.closedAddress),
      server: listeningAt(lab.closedAddress),
    }),
    errorAt: "client",
    note: (outcome) =>
      `connect() failed with ${outcome.facts.error ?? "no error (someone listens there?)"}: ` +
      `nothing listens on port ${outcome.lab.closedAddress.port}, so the server's kernel ` +
      "answered the SYN with RST, and the client's kernel dropped its socket at once. " +
      `No socket is left: nothing to close. ${noTimeWait(outcome)}`,
  },
  {
    id: "abort",
    scene: RESET_SCENE,
    title: 'server: close() with "hello" unread and its FIN stuck behind data; client: write()',
    act: async (lab) => {
      const { client, server } = await lab.connect();
      await writeAll(client, new TextEncoder().encode("hello\n")); // the server never reads it
      const stuck = await server.write(new Uint8Array(16 * MIB)); // the client never reads it
      lab.release(server);
      return { stuck, error: await writeAfterReset(client) };
    },
    picture: [
      clientSends('data "hello" (never read)'),
      serverSends("data (never read)"),
      serverSends("RST"),
      { client: "CLOSED", server: "CLOSED" },
    ],
    watch: bothEnds,
    errorAt: "client",
    note: (outcome) =>
      `The server closed with "hello" unread, so its kernel aborted the connection: RST. ` +
      "Deno's close() calls shutdown() first, and that FIN, leaving first, would give the " +
      "client a plain EOF (read() returns null); here it could not leave, queued behind the " +
      `${mib(outcome.facts.stuck)} the client had not read, so the RST went alone. The ` +
      `client's next write() failed with ${outcome.facts.error ?? "nothing (no RST seen)"} ` +
      "(a read() fails the same way, after the data already received). " +
      noTimeWait(outcome),
    cleanUp: (lab) => lab.release(lab.pair.client),
  },
  {
    id: "linger",
    scene: RESET_SCENE,
    title: "client (libc): setsockopt(SO_LINGER, {on, 0 s}), close(); server: read()",
    needsLibc: "SO_LINGER (setsockopt() and close() through FFI)",
    act: async (lab) => {
      const { fd, server } = await lab.ffiConnect();
      lab.ffi.setsockopt(fd, "SO_LINGER", [1, 0]); // struct linger {l_onoff: 1, l_linger: 0}
      lab.closeFd(fd);
      return { error: await errorOf(() => server.read(lab.buffer)) };
    },
    picture: [clientSends("RST"), { client: "CLOSED", server: "CLOSED" }],
    watch: (lab) => {
      const { server } = lab.ffiPair;
      return {
        client: endBetween(server.remoteAddr, server.localAddr),
        server: connectionEnd(server),
      };
    },
    errorAt: "server",
    note: (outcome) =>
      "SO_LINGER on with 0 seconds makes close() abort: the kernel throws away what is " +
      "unsent and sends RST instead of FIN (a libc socket: no shutdown() before it). A " +
      "server does this on purpose to drop a client at once and keep no TIME_WAIT. The " +
      `server's read() failed with ${outcome.facts.error ?? "nothing (no RST seen)"}. ` +
      noTimeWait(outcome),
    cleanUp: (lab) => lab.release(lab.ffiPair.server),
  },
];
