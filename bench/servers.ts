// bench/servers.ts: starts and stops the rooms under test, chat_server.ts and
// `ncat -l --chat` (and the redis-server that chat_server.ts --redis
// instances share, and paced-100's C floor relay), each behind a small bash
// wrapper that raises the fd limit and kills the server if the bench itself
// dies (its stdin pipe closes).

import { fileURLToPath } from "node:url";
import {
  delay,
  freePort,
  isAlive,
  RAISE_FD_LIMIT,
  readLines,
  track,
  waitForListen,
} from "./shared.ts";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));

export type ServerKind = "chat" | "ncat";

export const SERVER_LABEL: Record<ServerKind, string> = {
  chat: "chat_server.ts",
  ncat: "ncat --chat",
};

export interface RunningServer {
  kind: ServerKind | "redis" | "floor";
  /** The server process itself (not the wrapper): for /proc CPU and RSS. */
  pid: number;
  host: string;
  port: number;
  /** The full command line, for the report. */
  command: string;
  /** Bytes and lines the server wrote to stdout so far (chat_server logs every line). */
  output: { bytes: number; lines: number };
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

interface Spawned {
  child: Deno.ChildProcess;
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  pid: Promise<number>;
  lines: (handler: (line: string) => void) => void;
  output: { bytes: number; lines: number };
  stderrTail: () => string;
  code: () => number | undefined;
  /** Stop splitting stdout into lines (after readiness); keep counting it. */
  stopSplitting: () => void;
}

function spawnWrapped(command: string, args: string[]): Spawned {
  const child = new Deno.Command("bash", {
    args: ["-c", WRAPPER, "bench-server", command, ...args],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stdin = child.stdin.getWriter();
  let resolvePid: (pid: number) => void = () => {};
  let rejectPid: (err: Error) => void = () => {};
  const pid = new Promise<number>((resolve, reject) => {
    resolvePid = resolve;
    rejectPid = reject;
  });
  let serverPid = 0;
  let exitCode: number | undefined;
  const untrack = track({
    kill() {
      if (serverPid) {
        try {
          Deno.kill(serverPid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    },
  });
  child.status.then((status) => {
    exitCode = status.code;
    untrack();
    rejectPid(new Error(`server wrapper exited with ${status.code}`));
  });
  const output = { bytes: 0, lines: 0 };
  let lineHandler: ((line: string) => void) | undefined;
  let collecting = true; // until the readiness line, split lines; then only count
  (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of child.stdout) {
        output.bytes += chunk.length;
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) output.lines++;
        if (!collecting) continue;
        buffer += decoder.decode(chunk, { stream: true });
        let newline: number;
        while ((newline = buffer.indexOf("\n")) !== -1) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          const match = /^bench-server-pid (\d+)$/.exec(line);
          if (match) {
            serverPid = Number(match[1]);
            resolvePid(serverPid);
          } else if (lineHandler) {
            lineHandler(line);
          }
        }
        if (buffer.length > 1 << 20) buffer = "";
      }
    } catch {
      // The wrapper is gone.
    }
  })();
  let stderr = "";
  readLines(child.stderr, (line) => {
    stderr = (stderr + line + "\n").slice(-4000);
  });
  return {
    child,
    stdin,
    pid,
    lines(handler) {
      lineHandler = handler;
    },
    output,
    stderrTail: () => stderr.trim(),
    code: () => exitCode,
    stopSplitting: () => {
      collecting = false;
    },
  };
}

function makeServer(
  kind: RunningServer["kind"],
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
        try {
          Deno.kill(pid, "SIGTERM");
        } catch {
          // Already gone.
        }
        const timer = setTimeout(() => {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch {
            // Already gone.
          }
        }, graceMs);
        await spawned.child.status;
        clearTimeout(timer);
      }
      await spawned.stdin.close().catch(() => {});
      return spawned.code();
    },
  };
}

export interface ChatOptions {
  script?: string;
  /** Extra deno flags before the script, e.g. --v8-flags=... or --cpu-prof. */
  denoFlags?: string[];
  args?: string[];
}

/** chat_server.ts --port 0 --max-clients 20000 (+args); waits for its readiness line. */
export async function startChat(options: ChatOptions = {}): Promise<RunningServer> {
  const script = options.script ?? "chat_server.ts";
  const args = [
    "run",
    "-A",
    ...(options.denoFlags ?? []),
    script,
    "--port",
    "0",
    "--max-clients",
    "20000",
    ...(options.args ?? []),
  ];
  const label = `deno ${args.join(" ")}`;
  return await startAnnounced("chat", "chat_server", Deno.execPath(), args, label);
}

/**
 * Builds bench/floor_relay.c with `cc -O2` into a temporary directory (once
 * per bench); says why not when there is no C compiler.
 */
export async function buildFloorRelay(): Promise<
  { ok: true; path: string } | { ok: false; reason: string }
> {
  const dir = await Deno.makeTempDir({ prefix: "floor_relay_" });
  const path = `${dir}/floor_relay`;
  const { code, text } = await commandOutput(
    "cc",
    ["-O2", "-o", path, `${ROOT}bench/floor_relay.c`],
    60_000,
  );
  if (code === 0) return { ok: true, path };
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const reason = code === -1
    ? "no C compiler (cc)"
    : `cc failed: ${text.trim().split("\n").slice(-1)[0]}`;
  return { ok: false, reason };
}

/** The floor relay built by buildFloorRelay(); waits for its readiness line. */
export async function startFloorRelay(path: string): Promise<RunningServer> {
  return await startAnnounced("floor", "floor_relay", path, [], "bench/floor_relay.c (cc -O2)");
}

/** Starts a server that prints `listening on HOST:PORT` and waits for that line. */
async function startAnnounced(
  kind: RunningServer["kind"],
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

/** ncat -l --chat -m 20000 127.0.0.1 PORT; waits until the port is in LISTEN. */
export async function startNcat(): Promise<RunningServer> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = freePort();
    const args = ["-l", "--chat", "-m", "20000", "127.0.0.1", String(port)];
    const spawned = spawnWrapped("ncat", args);
    try {
      const pid = await spawned.pid;
      if (await waitForListen(port, 5000) && spawned.code() === undefined) {
        spawned.stopSplitting();
        return makeServer("ncat", spawned, pid, "127.0.0.1", port, `ncat ${args.join(" ")}`);
      }
    } catch {
      // Retry on another port.
    }
    await killSpawned(spawned);
  }
  throw new Error("ncat did not listen (3 attempts)");
}

/**
 * A throwaway redis-server on a free loopback port: no persistence (nothing
 * written to disk), only warnings logged; waits until the port is in LISTEN.
 */
export async function startRedis(): Promise<RunningServer> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = freePort();
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--loglevel",
      "warning",
    ];
    const spawned = spawnWrapped("redis-server", args);
    try {
      const pid = await spawned.pid;
      if (await waitForListen(port, 5000) && spawned.code() === undefined) {
        spawned.stopSplitting();
        const command = `redis-server ${args.map((a) => a || "''").join(" ")}`;
        return makeServer("redis", spawned, pid, "127.0.0.1", port, command);
      }
    } catch {
      // Retry on another port (another process may have taken this one).
    }
    await killSpawned(spawned);
  }
  throw new Error("redis-server did not listen (3 attempts)");
}

async function killSpawned(spawned: Spawned): Promise<void> {
  try {
    const pid = await Promise.race([spawned.pid, delay(100).then(() => 0)]);
    if (pid) Deno.kill(pid, "SIGKILL");
  } catch {
    // Gone.
  }
  try {
    spawned.child.kill("SIGKILL");
  } catch {
    // Gone.
  }
  await spawned.stdin.close().catch(() => {});
  await spawned.child.status;
}

export async function startServer(
  kind: ServerKind,
  chat: ChatOptions = {},
): Promise<RunningServer> {
  return kind === "chat" ? await startChat(chat) : await startNcat();
}

async function commandOutput(
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

/** redis-server's version, or why the cluster scenario cannot run (never installs it). */
export async function probeRedis(): Promise<
  { ok: true; version: string } | { ok: false; reason: string }
> {
  const { code, text } = await commandOutput("redis-server", ["--version"], 5000);
  const match = /v=(\S+)/.exec(text);
  if (code === 0 && match) return { ok: true, version: match[1] };
  return {
    ok: false,
    reason: code === -1
      ? "redis-server is not installed"
      : `redis-server --version: ${text.trim()}`,
  };
}

/**
 * Makes sure Nmap's ncat (with --chat) is there: installs it with apt-get
 * when missing and we are root; otherwise says why the column is skipped.
 */
export async function ensureNcat(log: (line: string) => void): Promise<
  { ok: true; version: string } | { ok: false; reason: string }
> {
  const probe = async () => {
    const { code, text } = await commandOutput("ncat", ["--version"], 5000);
    const match = /Ncat: Version (\S+)/.exec(text);
    return code === 0 && match ? match[1] : undefined;
  };
  let version = await probe();
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
  version = await probe();
  if (version) return { ok: true, version };
  const tail = install.text.trim().split("\n").slice(-2).join(" / ");
  return { ok: false, reason: `ncat is missing and apt-get could not install it (${tail})` };
}
