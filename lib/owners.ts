/**
 * Which process owns a socket, as `ss -p` and `netstat -p` find it: the
 * kernel's table gives each socket's inode, and a process holds the socket
 * when one of its /proc/PID/fd links reads `socket:[INODE]`. Only processes
 * we may look into are seen (our own user's without root); a socket without
 * an inode (TIME_WAIT, a half-finished handshake) has no owner at all.
 *
 * Reading /proc needs --allow-all (-A).
 *
 * @module
 */

import type { TcpSocket } from "./proc_net_tcp.ts";

/** A process holding a socket: its id and its command name (/proc/PID/comm). */
export interface Owner {
  /** The process id. */
  pid: number;
  /** The command name, as `ps` and `ss -p` show it (at most 15 characters). */
  name: string;
}

/** A socket and the process that owns it (null: none, or one we may not see). */
export type OwnedSocket = TcpSocket & { pid: number | null; process: string | null };

/**
 * Every socket inode of every process we may look into, with its owner.
 * A process that ends while we look, or that we may not see, is skipped.
 * Synchronous on purpose: thousands of tiny reads, each far cheaper than
 * an async op's round trip (a scan takes milliseconds, not tens of them).
 */
export function socketOwners(): Map<number, Owner> {
  const owners = new Map<number, Owner>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    const inodes = socketInodes(pid);
    if (!inodes.length) continue;
    const name = commandName(pid);
    for (const inode of inodes) if (!owners.has(inode)) owners.set(inode, { pid, name });
  }
  return owners;
}

/** The inodes of the sockets process `pid` holds; none when we may not look. */
function socketInodes(pid: number): number[] {
  const inodes: number[] = [];
  try {
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      const match = /^socket:\[(\d+)\]$/.exec(readLink(`/proc/${pid}/fd/${fd.name}`));
      if (match) inodes.push(Number(match[1]));
    }
  } catch {
    // Another user's process (EACCES), or one that just ended: not ours to see.
  }
  return inodes;
}

/** Where a link points; "" if it is gone (a descriptor closed while we looked). */
function readLink(path: string): string {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return "";
  }
}

/** /proc/PID/comm without its newline; "?" if the process is gone. */
function commandName(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
  } catch {
    return "?";
  }
}

/**
 * Owners remembered between snapshots (--watch): the /proc/PID/fd links are read again
 * only when a socket appears whose inode was never looked up.
 */
export class OwnerCache {
  #owners = new Map<number, Owner>();
  #looked = new Set<number>();

  /** `sockets` with their owners, scanning /proc only for inodes not seen before. */
  withOwners(sockets: TcpSocket[]): OwnedSocket[] {
    if (sockets.some((s) => s.inode && !this.#looked.has(s.inode))) {
      this.#owners = socketOwners();
      for (const s of sockets) this.#looked.add(s.inode);
    }
    return withOwners(sockets, this.#owners);
  }
}

/** `sockets` with their owners' pid and name, as `states.ts --json` prints them. */
export function withOwners(sockets: TcpSocket[], owners: Map<number, Owner>): OwnedSocket[] {
  return sockets.map((socket) => {
    const owner = socket.inode ? owners.get(socket.inode) : undefined;
    return { ...socket, pid: owner?.pid ?? null, process: owner?.name ?? null };
  });
}

/** `pid/name` as `ss -p` shows an owner, `-` for none. */
export function formatOwner(socket: { pid: number | null; process: string | null }): string {
  return socket.pid === null ? "-" : `${socket.pid}/${socket.process ?? "?"}`;
}
