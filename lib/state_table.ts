/**
 * The socket table: LOCAL, REMOTE, STATE, the kernel's TIMER for it, the
 * owning PROCESS (when asked) and the notes' meaning of the state, one
 * socket a line; and, between two snapshots of the kernel's table, which
 * sockets are new, changed state or are gone.
 *
 * @module
 */

import { paint } from "../utils.ts";
import { formatOwner, type OwnedSocket } from "./owners.ts";
import { formatEndpoint, socketKey, type TcpSocket } from "./proc_net_tcp.ts";
import { MEANINGS, STATE_COLOURS, type StateName } from "./tcp_states.ts";

/** One line of the table: a socket, and whether (and how) it changed since the last look. */
export interface TableRow {
  /** The socket, as /proc shows it now (CLOSED when it is gone); with its owner if known. */
  socket: TcpSocket | OwnedSocket;
  /** Since the last look: a new socket, a changed state, or a socket the kernel forgot. */
  mark?: "new" | "changed" | "gone";
  /** The state before a change. */
  was?: StateName;
}

/** How the table is drawn. */
export interface TableOptions {
  /** Show the PROCESS column (`pid/name`, `-` when unknown). */
  process?: boolean;
  /** Decimals of the timers' seconds (default 1; --watch's countdown uses 0). */
  timerDigits?: number;
}

/**
 * The table's lines, header first; marked rows start with `*` and have their
 * state inverted.
 */
export function formatTable(rows: TableRow[], options: TableOptions = {}): string[] {
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
      timer: formatTimer(socket, options.timerDigits),
      process: "pid" in socket ? formatOwner(socket) : "-",
      meaning: MEANINGS[socket.state],
    };
  });
  const width = (key: "local" | "remote" | "state" | "timer" | "process", min: number) =>
    Math.max(min, ...cells.map((c) => c[key].length));
  const [local, remote, state] = [width("local", 5), width("remote", 6), width("state", 11)];
  const [timer, process] = [width("timer", 5), width("process", 7)];
  const processColumn = (text: string) => options.process ? `${text.padEnd(process)}  ` : "";
  return [
    `${marks ? "  " : ""}${"LOCAL".padEnd(local)}  ${"REMOTE".padEnd(remote)}  ` +
    `${"STATE".padEnd(state)}  ${"TIMER".padEnd(timer)}  ${processColumn("PROCESS")}MEANING`,
    ...cells.map((c) =>
      `${marks ? c.mark : ""}${c.local.padEnd(local)}  ${c.remote.padEnd(remote)}  ` +
      `${c.painted}${" ".repeat(state - c.state.length)}  ${c.timer.padEnd(timer)}  ` +
      `${processColumn(c.process)}${c.meaning}`
    ),
  ];
}

/**
 * The kernel's timer as `ss -o` names it, with the seconds left: `timewait
 * 59.8 s` (the 2MSL wait), `retransmit 0.2 s, 3 resent`, `keepalive 7199.9 s`,
 * `probe 0.2 s` (a zero-window probe); `-` without a timer.
 */
export function formatTimer(
  socket: Pick<TcpSocket, "timer" | "timerSeconds" | "retransmits">,
  digits = 1,
): string {
  if (!socket.timer || socket.timerSeconds === null) return "-";
  const resent = socket.retransmits && socket.timer !== "timewait"
    ? `, ${socket.retransmits} ${socket.timer === "probe" ? "probed" : "resent"}`
    : "";
  return `${socket.timer} ${socket.timerSeconds.toFixed(digits)} s${resent}`;
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
    const closed = { ...gone, state: "CLOSED" as const, timer: null, timerSeconds: null };
    rows.push({ socket: closed, mark: "gone", was: gone.state });
  }
  return rows;
}
