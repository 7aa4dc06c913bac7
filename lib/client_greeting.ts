/**
 * The server's first lines, as chat_client.ts reads them: chat_server.ts
 * opens with "* welcome, you are NAME" (or, with a room password, with
 * "* password required: /pass PASSWORD" and the welcome after a right
 * /pass); nc and ncat open with whatever a person types. What the client
 * learns there decides what it may do: send --nick (only to chat_server.ts,
 * only after its welcome), ping a silent server, refuse a line longer than
 * the server's limit, and tell mentions of its nick.
 *
 * Only the decisions live here; sending, showing and the input are the
 * script's, reached through {@link GreetingHooks}.
 *
 * @module
 */

import { UsageError } from "../utils.ts";
import { sanitizeText } from "./peer_text.ts";
import {
  isPasswordPrompt,
  isWelcome,
  isWrongPassword,
  lineLimitFromNotice,
  mentionsNick,
  nickFromNotice,
} from "./client_lines.ts";

/** How long --nick waits for chat_server.ts's welcome (it comes at once). */
export const GREETING_WAIT_MS = 2000;

/** Lines a script may write ahead of the welcome before its input is paused. */
export const MAX_HELD_LINES = 64;

/** --nick NAME: one word, since a space or newline would change the "/nick NAME" command. */
export function parseNick(value: string): string {
  // deno-lint-ignore no-control-regex
  if (value === "" || /[\s\x00-\x1f\x7f]/.test(value)) {
    throw new UsageError(`--nick must be one word without spaces, got '${sanitizeText(value)}'`);
  }
  return value;
}

const encoder = new TextEncoder();

/** What the greeting asks of the chat around it. */
export interface GreetingHooks {
  /** chat_server.ts's welcome arrived: from now on it answers /ping. */
  welcomed(): void;
  /** Sends a line to the server: --nick's "/nick NAME". */
  send(line: string): void;
  /** Shows the client's own notice, e.g. why --nick was not sent. */
  notice(line: string): void;
  /** The server asked for its password (its first line) or, `refused`, refused one. */
  passwordWanted(refused: boolean): void;
  /** A line typed while --nick waited: it goes now, in order, as if just typed. */
  typed(line: string): void;
  /** stdin ended while lines were held: it ends now, after them. */
  inputEnded(): void;
  /** Too many lines are held: stop reading the input. */
  pause(): void;
  /** No lines are held any more: read the input again, unless something else holds it. */
  resume(): void;
}

/** What the server's first lines have shown so far, and what waits on them. */
export interface Greeting {
  /** chat_server.ts welcomed us: it answers /ping and says its line limit. */
  readonly greeted: boolean;
  /** Our nick as the server last named it; undefined until it does. */
  readonly ownNick: string | undefined;
  /** The longest line the server takes, in bytes, once its welcome said so. */
  readonly lineLimit: number | undefined;
  /** Typed lines are held: --nick waits for the welcome and must go first. */
  readonly holding: boolean;
  /**
   * Why `line` is not sent: over the limit chat_server.ts's welcome gave, it
   * would only come back as "! line too long", after the client had shown it
   * as said. Undefined when it may go.
   */
  overLimit(line: string): string | undefined;
  /** Holds a typed line until --nick is decided; pauses the input when many wait. */
  hold(line: string): void;
  /** stdin ended while lines are held: the end goes after them. */
  holdEnd(): void;
  /** A server line, before it is shown: a welcome sends --nick, a password prompt lets typed lines go. */
  arrived(line: string): void;
  /** A server line about to be shown: learns our nick and the line limit; true if it names us. */
  learn(line: string): boolean;
  /** A server line just shown: asks for the password below it, or gives up on --nick. */
  shown(line: string): void;
  /** Stops waiting for the welcome. */
  stop(): void;
}

/**
 * Reads the server's first lines. With `nick` (--nick NAME), the nick waits
 * for chat_server.ts's welcome: a /nick before it would be a stranger's line
 * to nc or ncat, and chat_server.ts holds the others' "* NAME joined" for
 * it, so they see the chosen name. Lines typed meanwhile are held, to go
 * after it; if the server asks for its password first, they go at once (the
 * /pass is among them) and --nick waits for the welcome that follows.
 */
export function readGreeting(
  nick: string | undefined,
  hooks: GreetingHooks,
  answersPassword = false,
): Greeting {
  let linesSeen = 0;
  /** The line being handled is the server's first: only it can be the welcome or the prompt. */
  let first = false;
  let greeted = false;
  /** The first line asked for the room's password: the welcome follows a right /pass. */
  let admitting = false;
  let ownNick: string | undefined;
  let lineLimit: number | undefined;
  let wantedNick = nick;
  // With --password-file the client answers the prompt itself, and what a
  // script typed waits for the welcome: sent before it, the server would
  // answer each line with the prompt, and the line would be lost.
  const holding = nick !== undefined || answersPassword;
  let held: string[] | undefined = holding ? [] : undefined;
  let heldEnd = false;
  const timer = !holding ? undefined : setTimeout(
    () => decideNick(`no greeting from the server in ${GREETING_WAIT_MS / 1000} s`),
    GREETING_WAIT_MS,
  );

  /** Sends --nick (no `refusal`), or says why not; then the lines held for it. */
  const decideNick = (refusal?: string) => {
    if (wantedNick !== undefined) {
      const name = wantedNick;
      wantedNick = undefined;
      if (refusal === undefined) hooks.send(`/nick ${name}`);
      else hooks.notice(`* ${refusal}; --nick not sent`);
    }
    if (held !== undefined) releaseHeld();
  };

  /** The lines typed while --nick waited go now, in order, and so does a held end of input. */
  const releaseHeld = () => {
    clearTimeout(timer);
    const lines = held ?? [];
    held = undefined;
    for (const line of lines) hooks.typed(line);
    if (heldEnd) hooks.inputEnded();
    hooks.resume();
  };

  return {
    get greeted() {
      return greeted;
    },
    get ownNick() {
      return ownNick;
    },
    get lineLimit() {
      return lineLimit;
    },
    get holding() {
      return held !== undefined;
    },
    overLimit(line) {
      if (lineLimit === undefined) return undefined;
      const bytes = encoder.encode(line).length;
      if (bytes <= lineLimit) return undefined;
      return `! not sent: ${bytes} bytes, over the server's limit of ${lineLimit}`;
    },
    hold(line) {
      // A script can write faster than the welcome comes: hold a few, then pause.
      if (held?.push(line) === MAX_HELD_LINES) hooks.pause();
    },
    holdEnd() {
      heldEnd = true;
    },
    arrived(line) {
      first = linesSeen++ === 0;
      if ((first || admitting) && isWelcome(line)) {
        greeted = true;
        admitting = false;
        hooks.welcomed();
        decideNick(); // sent now, before the others hear of us
      } else if (first && isPasswordPrompt(line)) {
        // chat_server.ts with --password-file: the user's own /pass must go now
        // (--nick waits on); answered from a file, everything waits for the welcome.
        admitting = true;
        if (!answersPassword && held !== undefined) releaseHeld();
      }
    },
    learn(line) {
      ownNick = nickFromNotice(line) ?? ownNick;
      if (greeted) lineLimit = lineLimitFromNotice(line) ?? lineLimit;
      return greeted && mentionsNick(line, ownNick);
    },
    shown(line) {
      // After the prompt is shown: the answer, or the question, comes below it.
      if (admitting && (first || isWrongPassword(line))) hooks.passwordWanted(!first);
      if (first && !greeted && !admitting) {
        decideNick("the server did not greet like chat_server.ts");
      }
    },
    stop() {
      clearTimeout(timer);
    },
  };
}
