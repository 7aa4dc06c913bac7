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
import {
  type Endpoint,
  findConnection,
  pollTcpSockets,
  sameEndpoint,
  type TcpSocket,
} from "./proc_net_tcp.ts";
import { byLifecycle, type StateName } from "./tcp_states.ts";

/** What one end of a step is: how to find its states in a snapshot, and its address. */
export interface WatchedEnd {
  /** The end's states in one snapshot of the kernel's table (CLOSED: no entry). */
  probe: (sockets: TcpSocket[]) => StateName[];
  /** `HOST:PORT` of the end's socket, null when it has none (or its port is unknown). */
  address: string | null;
  /** The end's own entry in a snapshot, for its timer; absent when it has no single one. */
  find?: (sockets: TcpSocket[]) => TcpSocket | undefined;
}

/** What both ends of a step show in /proc while it is watched. */
export interface Observation {
  /** Each end's states, in the order first seen. */
  observed: Record<End, StateName[]>;
  /** The last snapshot read, for notes that quote queue sizes. */
  sockets: TcpSocket[];
  /** Each end's entry in the last snapshot that had one (its timer), null if none. */
  last: Record<End, TcpSocket | null>;
}

const OBSERVE_MS = 1500; // long enough for any loopback transition, short for a demo
const POLL_MS = 5;

/** An end with no socket at all (a client before connect()). */
export const NO_SOCKET: WatchedEnd = { probe: () => ["CLOSED"], address: null };

/** One end of an established connection, found by its two addresses. */
export function connectionEnd(conn: Deno.TcpConn): WatchedEnd {
  return endBetween(conn.localAddr, conn.remoteAddr);
}

/**
 * The end at `local` of the connection `local` <-> `remote`, whether a
 * program holds it or not (a handshake not yet accepted, a TIME_WAIT).
 */
export function endBetween(local: Endpoint, remote: Endpoint): WatchedEnd {
  const find = (sockets: TcpSocket[]) => findConnection(sockets, local, remote);
  return {
    probe: (sockets) => [find(sockets)?.state ?? "CLOSED"],
    address: formatAddress(local),
    find,
  };
}

/** A listening socket: LISTEN while the kernel has it, CLOSED after. */
export function listenerEnd(listener: Deno.TcpListener): WatchedEnd {
  return listeningAt(listener.addr);
}

/** Whatever listens at `address`: LISTEN while the kernel has it, CLOSED when nothing does. */
export function listeningAt(address: Endpoint): WatchedEnd {
  const find = (sockets: TcpSocket[]) =>
    sockets.find((s) => s.state === "LISTEN" && sameEndpoint(s.local, address));
  return {
    probe: (sockets) => find(sockets) ? ["LISTEN"] : ["CLOSED"],
    address: formatAddress(address),
    find,
  };
}

/**
 * Every client socket connected or connecting to `address`, whose port is
 * unknown (its connect() failed or has not returned): CLOSED when none is left.
 */
export function clientsOf(address: Endpoint): WatchedEnd {
  return {
    probe: (sockets) => {
      const states = sockets.filter((s) => sameEndpoint(s.remote, address)).map((s) => s.state);
      return states.length ? byLifecycle(states) : ["CLOSED"];
    },
    address: null,
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
  const last: Record<End, TcpSocket | null> = { client: null, server: null };
  const deadline = Date.now() + OBSERVE_MS;
  let snapshot: TcpSocket[] = [];
  for await (const sockets of pollTcpSockets(POLL_MS)) {
    snapshot = sockets;
    let settled = true;
    for (const end of ENDS) {
      last[end] = ends[end].find?.(sockets) ?? last[end];
      const now = ends[end].probe(sockets);
      for (const state of now) if (!observed[end].includes(state)) observed[end].push(state);
      if (!now.some((s) => until[end].includes(s))) settled = false;
    }
    if (settled || Date.now() > deadline) break;
  }
  return { observed, sockets: snapshot, last };
}
