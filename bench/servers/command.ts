/**
 * bench/servers/command.ts: running a short helper command (a version probe,
 * a compiler, apt-get) to completion with a time limit, for its exit code and
 * output.
 */

/** Exit code and stdout + stderr; code -1 when the command could not start. */
export async function commandOutput(
  command: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number; text: string }> {
  try {
    const child = new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, timeoutMs);
    const out = await child.output();
    clearTimeout(timer);
    const decoder = new TextDecoder();
    return { code: out.code, text: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
  } catch (err) {
    return { code: -1, text: err instanceof Error ? err.message : String(err) };
  }
}

/** What a probe found: a version to report, or why the tool cannot be used. */
export type Availability = { ok: true; version: string } | { ok: false; reason: string };
