/**
 * The note's `send(msg.encode())`, done so nothing is lost or mixed: each
 * line ends in "\n" (the note's peer could not tell where a message ended),
 * is written whole (conn.write() may write only part), and goes out after
 * the one before it (two writes in flight could interleave).
 *
 * Lines are queued, one write at a time; a backlog (piped input can be
 * faster than the network) is reported so the caller can pause its input.
 *
 * @module
 */

import { writeAll } from "./net.ts";

/** Lines queued for sending before the backlog is reported full. */
const MAX_QUEUED_LINES = 64;
const encoder = new TextEncoder();

/** What the sender tells its owner. */
export interface SenderHooks {
  /** The first failed write (the server went away); later lines are skipped, not reported. */
  failed(error: unknown): void;
  /** The queue reached MAX_QUEUED_LINES (`true`: pause input) or drained to half (`false`). */
  backlog(full: boolean): void;
}

/** An ordered line sender on one connection. */
export interface LineSender {
  /** Still possible to send: not broken, not half-closed (that would be a BrokenPipe). */
  readonly open: boolean;
  /** Queues `line` plus "\n"; it is written after every line queued before it. */
  send(line: string): void;
  /** closeWrite() after the lines before it: the server reads them, then EOF. */
  halfClose(): Promise<void>;
}

/** A sender writing to `conn` (the parts of a Deno.TcpConn it uses). */
export function createLineSender(
  conn: Pick<Deno.Conn, "write" | "closeWrite">,
  hooks: SenderHooks,
): LineSender {
  let writes: Promise<void> = Promise.resolve();
  let queued = 0;
  let broken = false;
  let halfClosed = false;
  return {
    get open() {
      return !broken && !halfClosed;
    },
    send(line) {
      const bytes = encoder.encode(`${line}\n`);
      if (++queued === MAX_QUEUED_LINES) hooks.backlog(true);
      writes = writes.then(async () => {
        try {
          if (!broken) await writeAll(conn, bytes);
        } catch (error) {
          broken = true;
          hooks.failed(error);
        } finally {
          if (--queued === MAX_QUEUED_LINES / 2) hooks.backlog(false);
        }
      });
    },
    halfClose() {
      if (halfClosed) return writes;
      halfClosed = true;
      writes = writes.then(async () => {
        try {
          await conn.closeWrite();
        } catch {
          // The server is gone already; the reader reports it.
        }
      });
      return writes;
    },
  };
}
