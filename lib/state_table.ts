/**
 * The socket table: LOCAL, REMOTE, STATE and the notes' meaning of the
 * state, one socket a line; and, between two snapshots of the kernel's
 * table, which sockets are new, changed state or are gone.
 *
 * @module
 */

import { paint } from "../utils.ts";
import { formatEndpoint, socketKey, type TcpSocket } from "./proc_net_tcp.ts";
import { MEANINGS, STATE_COLOURS, type StateName } from "./tcp_states.ts";

/** One line of the table: a socket, and whether (and how) it changed since the last look. */
export interface TableRow {
  /** The socket, as /proc shows it now (CLOSED when it is gone). */
  socket: TcpSocket;
  /** Since the last look: a new socket, a changed state, or a socket the kernel forgot. */
  mark?: "new" | "changed" | "gone";
  /** The state before a change. */
  was?: StateName;
}

/** The table's lines, header first; marked rows start with `*` and have their state inverted. */
export function formatTable(rows: TableRow[]): string[] {
  const marks = rows.some((r) => r.mark); // a mark column only when something changed
  const cells = rows.map(({ socket, mark, was }) => {
    const colour = STATE_COLOURS[socket.state];
    const wasText = was ? ` (was ${was})` : "";
    return {
      mark: mark ? paint("bold", "* ") : "  ",
      local: formatEndpoint(socket.local),
      remote: formatEndpoint(socket.remote),
      // Widths are measured on plain text: escape codes take no room on screen.
      state: socket.state + wasText,
      painted: paint(mark ? ["inverse", colour] : colour, socket.state) + wasText,
      meaning: MEANINGS[socket.state],
    };
  });
  const width = (key: "local" | "remote" | "state", min: number) =>
    Math.max(min, ...cells.map((c) => c[key].length));
  const [local, remote, state] = [width("local", 5), width("remote", 6), width("state", 11)];
  return [
    `${marks ? "  " : ""}${"LOCAL".padEnd(local)}  ${"REMOTE".padEnd(remote)}  ` +
    `${"STATE".padEnd(state)}  MEANING`,
    ...cells.map((c) =>
      `${marks ? c.mark : ""}${c.local.padEnd(local)}  ${c.remote.padEnd(remote)}  ` +
      `${c.painted}${" ".repeat(state - c.state.length)}  ${c.meaning}`
    ),
  ];
}

/** Every socket of `sockets` as an unmarked row. */
export function plainRows(sockets: TcpSocket[]): TableRow[] {
  return sockets.map((socket) => ({ socket }));
}

/**
 * Compares two snapshots: a socket that is new or changed state is marked,
 * one that vanished is shown once more as CLOSED (the kernel forgot it).
 */
export function diffSnapshots(before: TcpSocket[], after: TcpSocket[]): TableRow[] {
  const old = new Map(before.map((s) => [socketKey(s), s]));
  const rows: TableRow[] = after.map((socket) => {
    const previous = old.get(socketKey(socket));
    old.delete(socketKey(socket));
    if (!previous) return { socket, mark: "new" };
    if (previous.state !== socket.state) return { socket, mark: "changed", was: previous.state };
    return { socket };
  });
  for (const gone of old.values()) {
    rows.push({ socket: { ...gone, state: "CLOSED" }, mark: "gone", was: gone.state });
  }
  return rows;
}
