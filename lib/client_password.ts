/**
 * The room's password, chat_client.ts's side: chat_server.ts --password-file
 * first says "* password required: /pass PASSWORD". The password from
 * --password-file FILE (its first line) goes then, once, never before and
 * never to a server that did not ask; a terminal asks the user instead, on
 * the input row, masked; a script is told how to give one. The screen only
 * ever shows "/pass *****".
 *
 * @module
 */

import { Failure, UsageError } from "../utils.ts";
import { readFlagFileLines } from "./flag_files.ts";
import type { ClientView } from "./client_view.ts";

/** --password-file's password, and the file, for the error line if it is wrong. */
export interface GivenPassword {
  /** The password: the file's first line. */
  text: string;
  /** The file it came from. */
  file: string;
}

/** What answering the server's password prompt uses of the chat. */
export interface PasswordChat {
  /** stdin and stdout both a terminal: the user can be asked. */
  readonly interactive: boolean;
  /** Where the question, the masked answer and notices go. */
  readonly view: Pick<ClientView, "askPassword" | "endPassword" | "echo" | "local">;
  /** Sends a line to the server. */
  send(line: string): void;
  /** Ends the chat with this error: line (exit 1). */
  fail(error: Failure): void;
}

/** Answers the server's password prompts. */
export interface PasswordAnswer {
  /** A terminal is asking for the password: the next typed line is it. */
  readonly asking: boolean;
  /** The server asked for its password (its first line) or, `refused`, refused one. */
  wanted(refused: boolean): void;
  /** The line typed at "Password: ": sent as /pass; an empty one asks on. */
  typed(line: string): void;
}

/** --password-file FILE: its first line is the password; none is a usage error. */
export async function readPasswordFile(path: string): Promise<GivenPassword> {
  const first = (await readFlagFileLines(path, "--password-file"))[0];
  if (first === undefined || first === "") {
    throw new UsageError(`--password-file ${path}: the first line (the password) is empty`);
  }
  return { text: first, file: path };
}

/** A typed "/pass PASSWORD" as the screen shows it: "/pass *****". */
export function maskPassword(typed: string): string {
  return typed.replace(/^(\/pass\s+)\S.*$/, "$1*****");
}

/**
 * Answers for `chat`: --password-file's password at once (once: a refused
 * one ends the chat); else a terminal asks the user, again after "! wrong
 * password"; a script is told how to give one.
 */
export function answerPassword(
  given: GivenPassword | undefined,
  chat: PasswordChat,
): PasswordAnswer {
  let asking = false;

  /** "/pass PASSWORD" to the server; the screen shows only "/pass *****". */
  const sendPassword = (password: string) => {
    chat.send(`/pass ${password}`);
    if (chat.interactive) chat.view.echo("/pass *****");
  };

  return {
    get asking() {
      return asking;
    },
    wanted(refused) {
      if (given !== undefined && refused) {
        return chat.fail(
          new Failure(`the server refused the password in --password-file ${given.file}`),
        );
      }
      if (given !== undefined) return sendPassword(given.text);
      if (chat.interactive) {
        asking = true;
        return chat.view.askPassword();
      }
      if (!refused) {
        chat.view.local(
          "* the server wants a password: give --password-file FILE, or send /pass PASSWORD",
        );
      }
    },
    typed(line) {
      if (line === "") return;
      asking = false;
      chat.view.endPassword();
      sendPassword(line);
    },
  };
}
