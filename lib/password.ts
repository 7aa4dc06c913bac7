/**
 * A room password (`--password-file FILE`), the way IRC servers ask for a
 * server password: a new client gets `* password required: /pass PASSWORD`
 * and nothing else (no room lines, no history, no `/who`, no join notice
 * for the others, none of its lines relayed) until it sends `/pass` with
 * the right one. A wrong one is answered `! wrong password`, every time;
 * the third closes the connection, and so does silence past the deadline.
 *
 * The comparison takes the same time whatever the guess (both sides are
 * hashed, then compared with timingSafeEqual), and the password is never
 * logged or echoed.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { UsageError } from "../utils.ts";
import { readFlagFileLines } from "./flag_files.ts";

/** What a client is told first, and again for any line that is not a /pass. */
export const PASSWORD_PROMPT = "* password required: /pass PASSWORD";
/** Wrong passwords before the connection is closed. */
const ATTEMPTS = 3;
/** How long a client may take to give it. */
const DEADLINE_MS = 30_000;

const utf8 = new TextDecoder();

/** The password: the first line of `path`, blanks around it ignored (an empty or missing file, or a blank line, is a usage error). */
export async function readPasswordFile(path: string, flag = "--password-file"): Promise<string> {
  // Blanks around it are not part of it: /pass ignores them too.
  const first = (await readFlagFileLines(path, flag))[0]?.trim();
  if (!first) {
    throw new UsageError(`${flag} ${path}: its first line is empty; put the password there`);
  }
  return first;
}

/** What to do with a line from a client that has not given the password yet. */
export type Verdict =
  | { admitted: true }
  | { admitted: false; reply: string; close: boolean };

/** One client's way in: its attempts, and the deadline that closes it. */
export class PasswordGate {
  readonly #secret: Uint8Array;
  #wrong = 0;
  #timer: ReturnType<typeof setTimeout>;

  /** Waits for the password `secret`; calls `expire` if none comes within `deadlineMs`. */
  constructor(secret: string, expire: () => void, deadlineMs: number = DEADLINE_MS) {
    this.#secret = digest(new TextEncoder().encode(secret));
    this.#timer = setTimeout(expire, deadlineMs);
  }

  /** Judges one line: `/pass RIGHT` admits; anything else is answered. */
  check(line: Uint8Array): Verdict {
    const match = /^\/pass(?:[ \t]+(.*?))?[ \t]*$/s.exec(utf8.decode(line));
    if (!match) return { admitted: false, reply: PASSWORD_PROMPT, close: false };
    const guess = new TextEncoder().encode(match[1] ?? "");
    if (timingSafeEqual(digest(guess), this.#secret)) {
      this.dispose();
      return { admitted: true };
    }
    this.#wrong++;
    return { admitted: false, reply: "! wrong password", close: this.#wrong >= ATTEMPTS };
  }

  /** Stops the deadline (admitted, or gone). */
  dispose(): void {
    clearTimeout(this.#timer);
  }
}

/** Both sides hashed first, so the comparison's time says nothing about the length. */
function digest(bytes: Uint8Array): Uint8Array {
  return createHash("sha256").update(bytes).digest();
}
