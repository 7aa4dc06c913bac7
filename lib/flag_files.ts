/**
 * Files named on the command line (`--motd FILE`, `--password-file FILE`,
 * TLS certificates): read with the one-line errors a user can act on. A
 * file that cannot be read is a mistake on the command line (exit 2), and
 * so is a missing read permission: the script says which flag to add
 * instead of letting Deno stop to ask on a terminal.
 *
 * @module
 */

import { UsageError } from "../utils.ts";

/** The text of the file `path` given to `flag`. */
export async function readFlagFile(path: string, flag: string): Promise<string> {
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    throw new UsageError(`${flag} ${path}: reading it needs --allow-read=${path} (or -A)`);
  }
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    const reason = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.IsADirectory
      ? "a directory"
      : err instanceof Error
      ? err.message.replace(/ \(os error \d+\).*$/, "").toLowerCase()
      : String(err);
    throw new UsageError(`${flag} ${path}: cannot read it (${reason})`);
  }
}

/** The file's lines, without their line endings (`\n` or `\r\n`). */
export async function readFlagFileLines(path: string, flag: string): Promise<string[]> {
  const lines = (await readFlagFile(path, flag)).split(/\r?\n/);
  if (lines.at(-1) === "") lines.pop();
  return lines;
}
