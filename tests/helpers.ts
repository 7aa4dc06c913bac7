// Shared test helpers: spawn a script as a real process, wait for its
// readiness line, and talk to it over loopback TCP.

import { fileURLToPath } from "node:url";
import { closeQuietly } from "../lib/net.ts";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads a byte stream as lines, keeping everything seen for assertions. */
export class LineReader {
  readonly lines: string[] = [];
  #next = 0;
  #buffer = "";
  #done = false;
  #waiters: (() => void)[] = [];
  readonly finished: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.finished = this.#pump(stream);
  }

  async #pump(stream: ReadableStream<Uint8Array>) {
    const streamDecoder = new TextDecoder();
    try {
      for await (const chunk of stream) {
        this.#buffer += streamDecoder.decode(chunk, { stream: true });
        const parts = this.#buffer.split("\n");
        this.#buffer = parts.pop()!;
        this.lines.push(...parts);
        this.#wake();
      }
    } catch {
      // The process or socket went away: treat as end of stream.
    }
    if (this.#buffer) this.lines.push(this.#buffer);
    this.#buffer = "";
    this.#done = true;
    this.#wake();
  }

  #wake() {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** All output so far, as text. */
  get text(): string {
    return this.lines.join("\n") + (this.#buffer ? "\n" + this.#buffer : "");
  }

  /** The next unread line; rejects after `timeoutMs` or at end of stream. */
  async next(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.#next >= this.lines.length) {
      if (this.#done) throw new Error(`stream ended; seen so far:\n${this.text}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line within ${timeoutMs} ms; seen so far:\n${this.text}`);
      await this.#wait(left);
    }
    return this.lines[this.#next++];
  }

  /** The next unread line if it has arrived already (no waiting), without taking it. */
  peek(): string | undefined {
    return this.lines[this.#next];
  }

  /** Skips lines until one matches; returns it. */
  async waitFor(pattern: RegExp | string, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const line = await this.next(Math.max(1, deadline - Date.now()));
      if (typeof pattern === "string" ? line.includes(pattern) : pattern.test(line)) return line;
    }
  }

  /** Resolves at end of stream. */
  async end(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#done) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`stream did not end within ${timeoutMs} ms`);
      await this.#wait(left);
    }
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push(done);
    });
  }
}

export interface Script {
  child: Deno.ChildProcess;
  stdout: LineReader;
  stderr: LineReader;
  /** Writes to the script's stdin (when spawned with stdin: "piped"). */
  write(text: string): Promise<void>;
  closeStdin(): Promise<void>;
  /** Waits for exit; kills with SIGKILL after `timeoutMs`. */
  exit(timeoutMs?: number): Promise<Deno.CommandStatus>;
  kill(signal?: Deno.Signal): void;
}

/** Spawns `deno run -A SCRIPT ARGS` from the project root. */
export function spawnScript(
  script: string,
  args: string[],
  options: { stdin?: "piped" | "null"; env?: Record<string, string> } = {},
): Script {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}${script}`, ...args],
    cwd: ROOT,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  return wrapChild(child, options.stdin === "piped");
}

/** Spawns any command (nc, ss, ...) with the same conveniences. */
export function spawnCommand(
  command: string,
  args: string[],
  options: { stdin?: "piped" | "null" } = {},
): Script {
  const child = new Deno.Command(command, {
    args,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return wrapChild(child, options.stdin === "piped");
}

function wrapChild(child: Deno.ChildProcess, pipedStdin: boolean): Script {
  const stdout = new LineReader(child.stdout);
  const stderr = new LineReader(child.stderr);
  const writer = pipedStdin ? child.stdin.getWriter() : undefined;
  let stdinClosed = !pipedStdin;
  const closeStdin = async () => {
    if (stdinClosed) return;
    stdinClosed = true;
    await writer!.close().catch(() => {});
  };
  return {
    child,
    stdout,
    stderr,
    write: (text) => writer!.write(encoder.encode(text)),
    closeStdin,
    kill(signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch {
        // Already exited.
      }
    },
    async exit(timeoutMs = 10_000) {
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already exited.
        }
      }, timeoutMs);
      const status = await child.status;
      clearTimeout(timer);
      await closeStdin(); // stdin stays open until then: tests close it when they mean EOF
      await Promise.all([stdout.finished, stderr.finished]);
      return status;
    },
  };
}

/** A spawned server whose readiness line has been read. */
export interface Server extends Script {
  port: number;
  host: string;
}

/** Starts a server script on `--port 0` and waits for `listening on HOST:PORT`. */
export async function startServer(
  script: string,
  args: string[] = [],
  options: { stdin?: "piped" | "null"; env?: Record<string, string> } = {},
): Promise<Server> {
  const proc = spawnScript(script, ["--port", "0", ...args], options);
  let line: string;
  try {
    line = await proc.stdout.next(15_000);
  } catch (err) {
    proc.kill("SIGKILL");
    await proc.exit();
    throw new Error(`${script} did not start: ${(err as Error).message}\n${proc.stderr.text}`);
  }
  const match = /^listening on \[?([^\]]+)\]?:(\d+)$/.exec(line);
  if (!match) {
    proc.kill("SIGKILL");
    await proc.exit();
    throw new Error(`unexpected readiness line: ${line}`);
  }
  return { ...proc, host: match[1], port: Number(match[2]) };
}

/** Stops a server with SIGTERM (SIGKILL if it hangs) and waits for it. */
export async function stopServer(server: Script): Promise<Deno.CommandStatus> {
  server.kill("SIGTERM");
  return await server.exit();
}

/** A port that was free a moment ago (for peers like `nc -l` that cannot use port 0). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Waits until something listens on 127.0.0.1:port, without connecting to it. */
export async function waitForListen(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  while (Date.now() < deadline) {
    for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      const text = await Deno.readTextFile(table).catch(() => "");
      // local address field ends in :PORT, state 0A is LISTEN
      if (new RegExp(`:${hex} [0-9A-F]{8,32}:0000 0A `).test(text)) return;
    }
    await delay(20);
  }
  throw new Error(`nothing listened on port ${port} within ${timeoutMs} ms`);
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes all bytes (conn.write may write only part). */
export async function send(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  let bytes = typeof data === "string" ? encoder.encode(data) : data;
  while (bytes.length) bytes = bytes.subarray(await conn.write(bytes));
}

/** A TCP client whose received text is read as lines. */
export interface Client {
  conn: Deno.TcpConn;
  lines: LineReader;
  send(data: string | Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export async function connectClient(port: number, hostname = "127.0.0.1"): Promise<Client> {
  const conn = await Deno.connect({ hostname, port });
  const lines = new LineReader(readableOf(conn));
  let closed = false;
  return {
    conn,
    lines,
    send: (data) => send(conn, data),
    async close() {
      if (!closed) {
        closed = true;
        try {
          conn.close();
        } catch {
          // Already closed by the peer's EOF.
        }
      }
      await lines.finished;
    },
  };
}

/** A client of chat_server.ts, with the guest nick its welcome gave it (or the one it took). */
export type ChatClient = Client & { nick: string; history: string[] };

/**
 * Connects to chat_server.ts and reads the three welcome lines, and the
 * room's recent lines after them if there are any (`history`). Nagle is off
 * on the client's side too: tests speak in small lines and time them.
 */
export async function joinChat(port: number, timeoutMs = 10_000): Promise<ChatClient> {
  const client = await connectClient(port);
  client.conn.setNoDelay(true);
  const welcome = await client.lines.next(timeoutMs);
  const guest = /^\* welcome, you are (guest\d+)$/.exec(welcome);
  if (!guest) throw new Error(`not a chat welcome: ${welcome}`);
  const online = await client.lines.next(timeoutMs);
  if (!/^\* online \(\d+\): /.test(online)) throw new Error(`not a /who line: ${online}`);
  const help = await client.lines.next(timeoutMs);
  if (!help.startsWith("* type /help for commands")) {
    throw new Error(`not the welcome's help: ${help}`);
  }
  // The room's recent lines come in the welcome's write, if there are any.
  const history: string[] = [];
  if (client.lines.peek() === "* recent messages:") {
    await client.lines.next();
    for (let line; (line = await client.lines.next(timeoutMs)) !== "* end of recent messages";) {
      history.push(line);
    }
  }
  return { ...client, nick: guest[1], history };
}

/**
 * Joins and leaves a chat client was told of: `* NAME joined` lines count one
 * each, and a big room's `* 12 more joined, 3 more left (...)` its numbers.
 */
export function presenceCounts(lines: string[]): { joined: number; left: number } {
  let joined = 0;
  let left = 0;
  for (const line of lines) {
    if (/^\* \S+ joined$/.test(line)) joined++;
    if (/^\* \S+ left( \(.*\))?$/.test(line)) left++;
    const counted =
      /^\* (?:(\d+) more joined)?(?:, )?(?:(\d+) more left)? \(\/who lists everyone\)$/
        .exec(line);
    if (counted) {
      joined += Number(counted[1] ?? 0);
      left += Number(counted[2] ?? 0);
    }
  }
  return { joined, left };
}

/**
 * joinChat, then `/nick nick`; the next line must confirm it, or, with
 * `amidOthers` (others joining or talking meanwhile), the first line that
 * answers the /nick. `guest` is the nick the welcome gave.
 */
export async function joinChatAs(
  port: number,
  nick: string,
  { timeoutMs = 10_000, amidOthers = false } = {},
): Promise<ChatClient & { guest: string }> {
  const client = await joinChat(port, timeoutMs);
  await client.send(`/nick ${nick}\n`);
  const answer = amidOthers
    ? await client.lines.waitFor(/^\* you are now |^!/, timeoutMs)
    : await client.lines.next(timeoutMs);
  if (answer !== `* you are now ${nick}`) throw new Error(`/nick ${nick}: ${answer}`);
  return { ...client, nick, guest: client.nick };
}

/**
 * conn's bytes as a stream that does NOT close the connection at EOF (Deno's
 * conn.readable does), so a half-closed peer can still be written to.
 */
export function readableOf(conn: Deno.Conn): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async pull(controller) {
      const buffer = new Uint8Array(16 * 1024);
      try {
        const n = await conn.read(buffer);
        if (n === null) controller.close();
        else controller.enqueue(buffer.subarray(0, n));
      } catch {
        controller.close();
      }
    },
  });
}

/** Decodes UTF-8 bytes (for assertions). */
export function text(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** Runs a command to completion and returns its status and output. */
export async function run(
  command: string,
  args: string[],
  options: { stdin?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(command, {
    args,
    cwd: ROOT,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  // The timer runs from the start: a child that never reads its stdin
  // must not hang the write below forever.
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }, options.timeoutMs ?? 20_000);
  // Output is collected while stdin is written: a child that answers a
  // large input as it reads it would otherwise block on a full stdout pipe.
  const collected = child.output();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode(options.stdin)).catch(() => {});
    await writer.close().catch(() => {});
  }
  const output = await collected;
  clearTimeout(timer);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

/** `deno run -A SCRIPT ARGS` to completion. */
export function runScript(
  script: string,
  args: string[],
  options: { stdin?: string; env?: Record<string, string>; timeoutMs?: number } = {},
) {
  return run(Deno.execPath(), ["run", "-A", `${ROOT}${script}`, ...args], options);
}

/**
 * Connects, sends `payload`, then closes with SO_LINGER 0 so the kernel sends
 * a RST instead of a FIN: a peer that vanishes abruptly. Deno has no
 * SO_LINGER, so python3's socket module does it.
 */
export function resetAfterSending(port: number, payload: string) {
  const program = [
    "import socket, struct, sys, time",
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))",
    "s.sendall(sys.argv[2].encode())",
    "time.sleep(0.2)",
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))",
    "s.close()",
  ].join("\n");
  return run("python3", ["-c", program, String(port), payload]);
}

/** The environment of a user with a colour terminal (no NO_COLOR, no CI). */
export function colourEnv(): Record<string, string> {
  const env: Record<string, string> = { ...Deno.env.toObject(), TERM: "xterm-256color" };
  for (const name of ["NO_COLOR", "FORCE_COLOR", "CI"]) delete env[name];
  return env;
}

// python3 runs a command on a pseudo-terminal (its stdout and stderr) and
// prints everything the command wrote there.
const IN_TERMINAL = [
  "import os, pty, sys",
  "pid, fd = pty.fork()",
  "if pid == 0: os.execvp(sys.argv[1], sys.argv[1:])",
  "out = b''",
  "while True:",
  "    try: data = os.read(fd, 65536)",
  "    except OSError: break",
  "    if not data: break",
  "    out += data",
  "sys.stdout.buffer.write(out)",
  "sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))",
].join("\n");

/** Runs `command args` on a terminal with colourEnv(); what it printed there, and its exit code. */
export async function runInTerminal(
  command: string,
  args: string[],
): Promise<{ code: number; output: string }> {
  const result = await new Deno.Command("python3", {
    args: ["-c", IN_TERMINAL, command, ...args],
    clearEnv: true,
    env: colourEnv(),
    stdin: "null",
  }).output();
  return { code: result.code, output: text(result.stdout) };
}

/** Two ends of one loopback TCP connection; the listener is already closed. */
export async function connectedPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const [client, server] = await Promise.all([
      Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
      listener.accept(),
    ]);
    return [client, server];
  } finally {
    listener.close();
  }
}

/**
 * Runs `body` with a connection pair, closing both ends afterwards. A body
 * still running after `timeoutMs` has its conns closed under it, so a read
 * that would wait forever fails (Interrupted) instead of hanging the run.
 */
export async function withPair(
  body: (writer: Deno.TcpConn, reader: Deno.TcpConn) => Promise<void>,
  timeoutMs = 5000,
): Promise<void> {
  const [writer, reader] = await connectedPair();
  const closeBoth = () => {
    closeQuietly(writer);
    closeQuietly(reader);
  };
  const timer = setTimeout(closeBoth, timeoutMs);
  try {
    await body(writer, reader);
  } finally {
    clearTimeout(timer);
    closeBoth();
  }
}

/**
 * A throwaway redis-server on loopback `port`: nothing saved to disk. The
 * tests that need one share this line, so they all run Redis the same way.
 */
export function spawnRedis(port: number): Script {
  return spawnCommand("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
  ]);
}
