/**
 * bench/servers/ncat.ts: the reference room, Nmap's `ncat -l --chat -m 20000`
 * on a free loopback port; installed with apt-get when missing (as root), or
 * its column is skipped.
 */

import { type Availability, commandOutput } from "./command.ts";
import { type RunningServer, startOnFreePort } from "./process.ts";

/** ncat -l --chat -m 20000 127.0.0.1 PORT; waits until the port is in LISTEN. */
export async function startNcat(): Promise<RunningServer> {
  return await startOnFreePort(
    "ncat",
    "ncat",
    (port) => ["-l", "--chat", "-m", "20000", "127.0.0.1", String(port)],
    (args) => `ncat ${args.join(" ")}`,
  );
}

/** Nmap's ncat version, or undefined when `ncat` is missing or another ncat. */
async function ncatVersion(): Promise<string | undefined> {
  const { code, text } = await commandOutput("ncat", ["--version"], 5000);
  const match = /Ncat: Version (\S+)/.exec(text);
  return code === 0 && match ? match[1] : undefined;
}

/**
 * Makes sure Nmap's ncat (with --chat) is there: installs it with apt-get
 * when missing and we are root; otherwise says why the column is skipped.
 */
export async function ensureNcat(log: (line: string) => void): Promise<Availability> {
  let version = await ncatVersion();
  if (version) return { ok: true, version };
  const which = await commandOutput("bash", ["-c", "command -v ncat"], 5000);
  if (which.code === 0) {
    return { ok: false, reason: `${which.text.trim()} is not Nmap's ncat (no --chat)` };
  }
  if (Deno.uid() !== 0) return { ok: false, reason: "ncat is missing and we are not root" };
  const apt = await commandOutput("bash", ["-c", "command -v apt-get"], 5000);
  if (apt.code !== 0) return { ok: false, reason: "ncat is missing and apt-get is not available" };
  log("ncat is missing: installing it with apt-get (at most 3 minutes)...");
  const env = "DEBIAN_FRONTEND=noninteractive";
  const install = await commandOutput("bash", [
    "-c",
    `${env} apt-get install -y -q ncat || (apt-get update -q && ${env} apt-get install -y -q ncat)`,
  ], 180_000);
  version = await ncatVersion();
  if (version) return { ok: true, version };
  const tail = install.text.trim().split("\n").slice(-2).join(" / ");
  return { ok: false, reason: `ncat is missing and apt-get could not install it (${tail})` };
}
