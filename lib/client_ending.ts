/**
 * How chat_client.ts's conversation ends, and the exit status for it:
 * leaving (/quit, Ctrl+D, Ctrl+C: 0; SIGTERM: 143) says goodbye and waits
 * briefly for the server's close; the server's close is 0 with a notice; a
 * reset, a failed write, a silent server or any other error is one error:
 * line and 1. Whatever happens first decides.
 *
 * @module
 */

import { Failure } from "../utils.ts";
import type { ClientView } from "./client_view.ts";
import type { LineSender } from "./line_sender.ts";

/** How long to wait, after /quit, for the server to close its side. */
const QUIT_GRACE_MS = 1000;
/** How long a failed write waits for the reader to see the server's close. */
const WRITE_FAILURE_GRACE_MS = 500;

/** How the connection's read side ended: the server's FIN, its RST, or closed here. */
export type ReadEnd = "eof" | "reset" | "closed";

/** Why the chat ends: the first of these decides the exit status. */
export type Ending =
  | { kind: "read"; end: ReadEnd }
  | { kind: "leave"; code: number }
  | { kind: "write-failed"; error: unknown }
  | { kind: "silent" }
  | { kind: "error"; error: unknown };

/** The parts of the conversation the ending uses. */
export interface EndingChat {
  /** The server as HOST:PORT, for error lines. */
  readonly server: string;
  /** --timeout SECS, for the error line about a silent server. */
  readonly timeoutSecs: number;
  /** Sends the goodbye "/quit" and half-closes after it. */
  readonly sender: LineSender;
  /** Shows "* connection closed by server". */
  readonly view: Pick<ClientView, "local">;
}

/**
 * The exit status for the chat's `first` ending, or the Failure to report as
 * the one error: line. `reader` is the read loop, still running or done.
 */
export async function exitStatus(
  chat: EndingChat,
  first: Ending,
  reader: Promise<ReadEnd>,
): Promise<number> {
  if (first.kind === "leave") {
    // Say goodbye, half-close, and show what the server still sends
    // until it closes (a short wait: nc -l would never close).
    if (chat.sender.open) chat.sender.send("/quit");
    await chat.sender.halfClose();
    await withTimeout(reader, QUIT_GRACE_MS);
    return first.code;
  }
  if (first.kind === "error") throw first.error;
  if (first.kind === "silent") {
    throw new Failure(
      `no answer from ${chat.server} for ${chat.timeoutSecs} s; the server or the network is gone`,
    );
  }
  // A failed write usually means the server closed or reset: let the reader say which.
  const readEnd = first.kind === "read"
    ? first.end
    : await withTimeout(reader, WRITE_FAILURE_GRACE_MS);
  if (readEnd === undefined || readEnd === "closed") {
    const why = first.kind === "write-failed" ? describeFailure(first.error) : "closed";
    throw new Failure(`lost the connection to ${chat.server}: ${why}`);
  }
  if (readEnd === "reset") throw new Failure(`connection reset by ${chat.server}`);
  chat.view.local("* connection closed by server");
  return 0;
}

/** A failed socket call for an error: line, in a few words, without Deno's "(os error N)". */
export function describeFailure(err: unknown): string {
  if (err instanceof Deno.errors.BrokenPipe) return "broken pipe";
  if (err instanceof Deno.errors.ConnectionReset) return "connection reset";
  return err instanceof Error ? err.message.replace(/ \(os error \d+\)$/, "") : String(err);
}

/** The promise's value, or undefined if it takes longer than `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
