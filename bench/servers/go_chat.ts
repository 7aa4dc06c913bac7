/**
 * bench/servers/go_chat.ts: bench/peers/gopl_chat.go, a room in the shape of
 * the Go book's chapter 8 chat server (a broadcaster goroutine, a reader and
 * a writer goroutine per client, unbuffered channels). Built once per bench
 * with `go build` into a temporary directory (GOPATH, GOCACHE there too, no
 * modules: nothing is written into the repository); `go` (Debian golang-go)
 * is installed with apt-get when missing and we are root, else the column is
 * skipped. The build is removed when the bench exits.
 */

import { ROOT } from "../common/paths.ts";
import { type Availability, commandOutput } from "./command.ts";
import { type RunningServer, startAnnounced } from "./process.ts";

const SOURCE = "bench/peers/gopl_chat.go";

/** The binary ensureGoChat() built, if it did. */
let built: string | undefined;

/** `go version`'s version (go1.19.8), or undefined when there is no `go`. */
async function goVersion(): Promise<string | undefined> {
  const { code, text } = await commandOutput("go", ["version"], 10_000);
  const match = /go version (\S+)/.exec(text);
  return code === 0 && match ? match[1] : undefined;
}

/** Installs golang-go with apt-get (as root); a string says why not. */
async function installGo(log: (line: string) => void): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "go is missing and we are not root";
  const apt = await commandOutput("bash", ["-c", "command -v apt-get"], 5000);
  if (apt.code !== 0) return "go is missing and apt-get is not available";
  log("go is missing: installing golang-go with apt-get (at most 5 minutes)...");
  const env = "DEBIAN_FRONTEND=noninteractive";
  const install = await commandOutput("bash", [
    "-c",
    `${env} apt-get install -y -q golang-go || ` +
    `(apt-get update -q && ${env} apt-get install -y -q golang-go)`,
  ], 300_000);
  if (await goVersion()) return undefined;
  const tail = install.text.trim().split("\n").slice(-2).join(" / ");
  return `go is missing and apt-get could not install golang-go (${tail})`;
}

/**
 * Makes sure the Go peer can run: `go` there (installed when missing, as
 * above) and gopl_chat.go built. Its version is go's; a reason says why the
 * column is skipped.
 */
export async function ensureGoChat(log: (line: string) => void): Promise<Availability> {
  let version = await goVersion();
  if (!version) {
    const why = await installGo(log);
    version = await goVersion();
    if (why || !version) return { ok: false, reason: why ?? "go version failed after install" };
  }
  if (built) return { ok: true, version };
  const dir = await Deno.makeTempDir({ prefix: "gopl_chat_" });
  const path = `${dir}/gopl_chat`;
  const { code, text } = await commandOutput("env", [
    "GO111MODULE=off",
    "GOFLAGS=",
    `GOPATH=${dir}/gopath`,
    `GOCACHE=${dir}/cache`,
    "go",
    "build",
    "-o",
    path,
    `${ROOT}${SOURCE}`,
  ], 180_000);
  if (code !== 0) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    return { ok: false, reason: `go build failed: ${text.trim().split("\n").slice(-1)[0]}` };
  }
  built = path;
  // However the bench ends (its finally, Ctrl+C, an error): Deno.exit fires "unload".
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Gone already.
    }
  });
  return { ok: true, version };
}

/** The binary ensureGoChat() built (port 0); waits for its readiness line. */
export async function startGoChat(): Promise<RunningServer> {
  if (!built) throw new Error("gopl_chat is not built (ensureGoChat first)");
  return await startAnnounced("go", "gopl_chat", built, [], `${SOURCE} (go build)`);
}
