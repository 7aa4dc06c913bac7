/**
 * Watching one connection's two ends in the kernel's table: which socket
 * stands for each end (a probe finds its states in a /proc snapshot), and
 * polling /proc until both ends reach the states a step waits for,
 * recording every state seen on the way.
 *
 * @module
 */

import { formatAddress } from "./net.ts";
import { type End, ENDS } from "./picture.ts";
import { connectionState, pollTcpSockets, sameEndpoint, type TcpSocket } from "./proc_net_tcp.ts";
import { byLifecycle, type StateName } from "./tcp_states.ts";

/** What one end of a step is: how to find its states in a snapshot, and its address. */
export interface WatchedEnd {
  /** The end's states in one snapshot of the kernel's table (CLOSED: no entry). */
  probe: (sockets: TcpSocket[]) => StateName[];
  /** `HOST:PORT` of the end's socket, null when it has none (or its port is unknown). */
  address: string | null;
}

/** What both ends of a step show in /proc while it is watched. */
export interface Observation {
  /** Each end's states, in the order first seen. */
  observed: Record<End, StateName[]>;
  /** The last snapshot read, for notes that quote queue sizes. */
  sockets: TcpSocket[];
}

const OBSERVE_MS = 1500; // long enough for any loopback transition, short for a demo
const POLL_MS = 5;

/** An end with no socket at all (a client before connect()). */
export const NO_SOCKET: WatchedEnd = { probe: () => ["CLOSED"], address: null };

/** One end of an established connection, found by its two addresses. */
export function connectionEnd(conn: Deno.TcpConn): WatchedEnd {
  const { localAddr, remoteAddr } = conn;
  return {
    probe: (sockets) => [connectionState(sockets, localAddr, remoteAddr)],
    address: formatAddress(localAddr),
  };
}

/** A listening socket: LISTEN while the kernel has it, CLOSED after. */
export function listenerEnd(listener: Deno.TcpListener): WatchedEnd {
  return {
    probe: (sockets) =>
      sockets.some((s) => s.state === "LISTEN" && sameEndpoint(s.local, listener.addr))
        ? ["LISTEN"]
        : ["CLOSED"],
    address: formatAddress(listener.addr),
  };
}

/**
 * The clients of `listener` whose handshake has not finished. Their
 * connect() has not returned, so their ports are unknown: they are found
 * by where they connect to. Nothing (not CLOSED) before they exist.
 */
export function waitingClients(listener: Deno.TcpListener): WatchedEnd {
  return {
    probe: (sockets) =>
      byLifecycle(
        sockets.filter((s) => sameEndpoint(s.remote, listener.addr) && s.state !== "ESTABLISHED")
          .map((s) => s.state),
      ),
    address: null,
  };
}

/**
 * Polls /proc until every end shows one of the states it waits for (`until`),
 * or OBSERVE_MS passes. Records each state seen, so a transient one caught
 * in passing is reported too.
 */
export async function observe(
  ends: Record<End, WatchedEnd>,
  until: Record<End, StateName[]>,
): Promise<Observation> {
  const observed: Record<End, StateName[]> = { client: [], server: [] };
  const deadline = Date.now() + OBSERVE_MS;
  let last: TcpSocket[] = [];
  for await (const sockets of pollTcpSockets(POLL_MS)) {
    last = sockets;
    let settled = true;
    for (const end of ENDS) {
      const now = ends[end].probe(sockets);
      for (const state of now) if (!observed[end].includes(state)) observed[end].push(state);
      if (!now.some((s) => until[end].includes(s))) settled = false;
    }
    if (settled || Date.now() > deadline) break;
  }
  return { observed, sockets: last };
}
