/**
 * bench/servers/process.ts: how the bench runs any server under test (or
 * beside it): behind a small bash wrapper that raises the fd limit and kills
 * the server if the bench itself dies (its stdin pipe closes), ready once it
 * announces its port or its port is in LISTEN, stopped with SIGTERM then
 * SIGKILL. One file per kind of server (chat.ts, ncat.ts, ...) builds on this.
 */

import { RAISE_FD_LIMIT, track } from "../common/children.ts";
import { readLines } from "../common/lines.ts";
import { ROOT } from "../common/paths.ts";
import { freePort, waitForListen } from "../common/ports.ts";
import { isAlive } from "../common/proc.ts";
import { delay } from "../common/time.ts";

export interface RunningServer {
  /** What it is, e.g. "chat", "ncat", "redis", "floor". */
  kind: string;
  /** The server process itself (not the wrapper): for /proc CPU and RSS. */
  pid: number;
  host: string;
  port: number;
  /** The full command line, for the report. */
  command: string;
  /** Bytes and lines the server wrote to stdout so far (chat_server logs every line). */
  output: OutputCount;
  stderrTail(): string;
  /** Exit status once it has exited, else undefined. */
  exitCode(): number | undefined;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it is gone. */
  stop(graceMs?: number): Promise<number | undefined>;
}

// Runs "$@" in the background with the fd limit raised, prints its pid, and
// kills it with SIGKILL when our stdin reaches EOF (the bench exited or was
// killed), so no server outlives the bench.
const WRAPPER = `${RAISE_FD_LIMIT}
exec 3<&0
"$@" </dev/null 3<&- &
child=$!
echo "bench-server-pid $child"
{ while read -r _; do :; done; kill -KILL "$child" 2>/dev/null; } <&3 &
watcher=$!
exec 3<&-
wait "$child"
code=$?
kill "$watcher" 2>/dev/null
exit "$code"`;

export interface Spawned {
  child: Deno.ChildProcess;
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  pid: Promise<number>;
  lines: (handler: (line: string) => void) => void;
  output: OutputCount;
  stderrTail: () => string;
  code: () => number | undefined;
  /** Stop splitting stdout into lines (after readiness); keep counting it. */
  stopSplitting: () => void;
}

/** Sends a signal, ignoring that the process may be gone already. */
function signalQuietly(send: () => void): void {
  try {
    send();
  } catch {
    // Already gone.
  }
}

/** Output counters of a server: chat_server logs every line it relays. */
export interface OutputCount {
  bytes: number;
  lines: number;
}

/**
 * Counts every byte and line of `stdout` into `output`; while `splitting()`,
 * also hands each line to `onLine` (the readiness lines come first; after
 * them, splitting a busy server's log would cost the bench CPU for nothing).
 */
async function countAndSplit(
  stdout: ReadableStream<Uint8Array>,
  output: OutputCount,
  splitting: () => boolean,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of stdout) {
      output.bytes += chunk.length;
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) output.lines++;
      if (!splitting()) continue;
      buffer += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) !== -1) {
        onLine(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
      if (buffer.length > 1 << 20) buffer = "";
    }
  } catch {
    // The wrapper is gone.
  }
}

/** Starts `command args` behind WRAPPER; the server's pid comes from the wrapper's first line. */
function spawnWrapped(command: string, args: string[]): Spawned {
  const child = new Deno.Command("bash", {
    args: ["-c", WRAPPER, "bench-server", command, ...args],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const pid = Promise.withResolvers<number>();
  let serverPid = 0;
  let exitCode: number | undefined;
  const untrack = track({
    kill() {
      if (serverPid) signalQuietly(() => Deno.kill(serverPid, "SIGKILL"));
      signalQuietly(() => child.kill("SIGKILL"));
    },
  });
  child.status.then((status) => {
    exitCode = status.code;
    untrack();
    pid.reject(new Error(`server wrapper exited with ${status.code}`));
  });
  const output = { bytes: 0, lines: 0 };
  let lineHandler: ((line: string) => void) | undefined;
  let splitting = true;
  countAndSplit(child.stdout, output, () => splitting, (line) => {
    const match = /^bench-server-pid (\d+)$/.exec(line);
    if (match) {
      serverPid = Number(match[1]);
      pid.resolve(serverPid);
    } else {
      lineHandler?.(line);
    }
  });
  let stderr = "";
  readLines(child.stderr, (line) => {
    stderr = (stderr + line + "\n").slice(-4000);
  });
  return {
    child,
    stdin: child.stdin.getWriter(),
    pid: pid.promise,
    lines(handler) {
      lineHandler = handler;
    },
    output,
    stderrTail: () => stderr.trim(),
    code: () => exitCode,
    stopSplitting: () => {
      splitting = false;
    },
  };
}

/** The RunningServer of a spawned server once it is ready. */
function makeServer(
  kind: string,
  spawned: Spawned,
  pid: number,
  host: string,
  port: number,
  command: string,
): RunningServer {
  return {
    kind,
    pid,
    host,
    port,
    command,
    output: spawned.output,
    stderrTail: spawned.stderrTail,
    exitCode: spawned.code,
    alive: () => spawned.code() === undefined && isAlive(pid),
    async stop(graceMs = 5000) {
      if (spawned.code() === undefined) {
        signalQuietly(() => Deno.kill(pid, "SIGTERM"));
        const timer = setTimeout(() => signalQuietly(() => Deno.kill(pid, "SIGKILL")), graceMs);
        await spawned.child.status;
        clearTimeout(timer);
      }
      await spawned.stdin.close().catch(() => {});
      return spawned.code();
    },
  };
}

/** Starts a server that prints `listening on HOST:PORT` and waits for that line. */
export async function startAnnounced(
  kind: string,
  name: string,
  command: string,
  args: string[],
  label: string,
): Promise<RunningServer> {
  const spawned = spawnWrapped(command, args);
  const ready = new Promise<{ host: string; port: number }>((resolve) => {
    spawned.lines((line) => {
      const match = /^listening on \[?([^\]]+)\]?:(\d+)$/.exec(line);
      if (match) resolve({ host: match[1], port: Number(match[2]) });
    });
  });
  const failed = spawned.child.status.then((s) => {
    throw new Error(`${name} exited with ${s.code}: ${spawned.stderrTail()}`);
  });
  const timeout = delay(30_000).then(() => {
    throw new Error(`${name} printed no readiness line within 30 s`);
  });
  try {
    const pid = await spawned.pid;
    const { host, port } = await Promise.race([ready, failed, timeout]);
    spawned.stopSplitting(); // from now on only count its (log) output
    return makeServer(kind, spawned, pid, host, port, label);
  } catch (err) {
    await killSpawned(spawned);
    throw err;
  }
}

/**
 * Starts a server that is told its port (ncat, redis-server: neither can
 * report one it picked) on a free loopback port, and waits until that port is
 * in LISTEN; another port on each of 3 attempts, in case another process took
 * the free one first.
 */
export async function startOnFreePort(
  kind: string,
  command: string,
  argsFor: (port: number) => string[],
  label: (args: string[]) => string,
): Promise<RunningServer> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = freePort();
    const args = argsFor(port);
    const spawned = spawnWrapped(command, args);
    try {
      const pid = await spawned.pid;
      if (await waitForListen(port, 5000) && spawned.code() === undefined) {
        spawned.stopSplitting();
        return makeServer(kind, spawned, pid, "127.0.0.1", port, label(args));
      }
    } catch {
      // Retry on another port.
    }
    await killSpawned(spawned);
  }
  throw new Error(`${command} did not listen (3 attempts)`);
}

/** Kills a server that never became ready, and its wrapper. */
async function killSpawned(spawned: Spawned): Promise<void> {
  // The pid may never come (the wrapper died first): wait for it only briefly.
  const pid = await Promise.race([spawned.pid, delay(100).then(() => 0)]).catch(() => 0);
  if (pid) signalQuietly(() => Deno.kill(pid, "SIGKILL"));
  signalQuietly(() => spawned.child.kill("SIGKILL"));
  await spawned.stdin.close().catch(() => {});
  await spawned.child.status;
}

/** Why a server is gone (exit code and the end of its stderr), or "" while it runs. */
export function describeDeath(server: RunningServer): string {
  const code = server.exitCode();
  if (code === undefined) return "";
  // Without the wrapper's own "bench-server: line 9: PID Aborted ..." line.
  const stderr = server.stderrTail().replace(/bench-server: line \d+:.*/g, "").trim()
    .split("\n").slice(-2).join(" / ");
  return `server exited with code ${code}${stderr ? ` (${stderr})` : ""}`;
}
