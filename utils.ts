// utils.ts: the few pieces every script shares, kept small on purpose.
//
// Flags (node:util parseArgs), address and port checks, the readiness line,
// message and line framing over a byte stream, text sanitising for terminals,
// colours (node:util styleText), shutdown wiring and one-line errors with
// exit codes: 0 success, 1 runtime failure, 2 usage error.

import { parseArgs, type ParseArgsConfig, styleText } from "node:util";
import process from "node:process";

export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 8080;

// ---------------------------------------------------------------- errors ---

/** A mistake on the command line: printed with a usage hint, exit code 2. */
export class UsageError extends Error {}

/** An ordinary runtime failure whose message is already user-facing: exit 1. */
export class Failure extends Error {}

/**
 * Runs a script's main(), turning every ordinary failure into one `error:`
 * line on stderr and the documented exit code, never a stack trace.
 */
export async function runMain(
  main: () => Promise<number | void>,
  usage: string,
): Promise<never> {
  let code: number;
  try {
    code = (await main()) ?? 0;
  } catch (err) {
    if (err instanceof UsageError) {
      printError(err.message);
      console.error(usage.split("\n")[0]);
      console.error("Run with --help for details.");
      code = 2;
    } else {
      printError(err instanceof Error ? err.message : String(err));
      code = 1;
    }
  }
  Deno.exit(code);
}

export function printError(message: string): void {
  console.error(`${paint("red", "error:", "stderr")} ${message}`);
}

// ----------------------------------------------------------------- flags ---

type Options = NonNullable<ParseArgsConfig["options"]>;

const SHARED_OPTIONS = {
  host: { type: "string", default: DEFAULT_HOST },
  port: { type: "string", short: "p", default: String(DEFAULT_PORT) },
  help: { type: "boolean", short: "h", default: false },
} as const satisfies Options;

/**
 * Parses `args` strictly with the shared `--host`, `--port`/`-p` and
 * `--help`/`-h` plus the script's own options. `--help` prints `usage` and
 * exits 0; anything unknown or malformed throws UsageError.
 */
export function parseFlags<const T extends Options>(
  args: string[],
  options: T,
  usage: string,
): FlagValues<T> {
  let values: FlagValues<T>;
  try {
    values = parseArgs({
      args,
      options: { ...SHARED_OPTIONS, ...options },
      strict: true,
      allowPositionals: false,
    }).values as unknown as FlagValues<T>;
  } catch (err) {
    throw new UsageError(lowerFirst((err as Error).message.split("\n")[0]));
  }
  if (values.help) {
    console.log(usage);
    Deno.exit(0);
  }
  return values;
}

/** What parseArgs yields for these options: a default makes a value certain. */
type FlagValues<T extends Options> =
  & { host: string; port: string; help: boolean }
  & {
    [K in keyof T]: T[K] extends { type: "boolean" }
      ? T[K] extends { default: boolean } ? boolean : boolean | undefined
      : T[K] extends { default: string } ? string
      : string | undefined;
  };

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** A whole number in [min, max], or UsageError naming the flag. */
export function parseIntFlag(
  value: string,
  flag: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `${min}-${max}`;
    throw new UsageError(`${flag} must be a whole number ${range}, got '${value}'`);
  }
  return n;
}

/** Port 0-65535; 0 asks the kernel for any free port. */
export function parsePort(value: string): number {
  return parseIntFlag(value, "--port", 0, 65535);
}

/** A host name or address; `[::1]` is accepted and unbracketed. */
export function parseHost(value: string): string {
  const host = value.startsWith("[") && value.endsWith("]") ? value.slice(1, -1) : value;
  if (host === "" || /[\s/]/.test(host)) {
    throw new UsageError(`--host must be a host name or IP address, got '${value}'`);
  }
  return host;
}

// ------------------------------------------------------------- addresses ---

/** `HOST:PORT`, with IPv6 hosts in brackets: `[::1]:8080`. */
export function formatAddress(addr: { hostname: string; port: number }): string {
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return `${host}:${addr.port}`;
}

/** The readiness line tests and users wait for: `listening on HOST:PORT`. */
export function announceListening(listener: Deno.TcpListener): void {
  console.log(`listening on ${formatAddress(listener.addr)}`);
}

/** Deno.listen with the failures users hit turned into Failure + a hint. */
export function listenTcp(
  hostname: string,
  port: number,
  extra: { tcpBacklog?: number } = {},
): Deno.TcpListener {
  try {
    return Deno.listen({ hostname, port, transport: "tcp", ...extra });
  } catch (err) {
    throw explainNetError(err, `cannot listen on ${formatAddress({ hostname, port })}`);
  }
}

/** Deno.connect with the failures users hit turned into Failure + a hint. */
export async function connectTcp(hostname: string, port: number): Promise<Deno.TcpConn> {
  try {
    return await Deno.connect({ hostname, port, transport: "tcp" });
  } catch (err) {
    throw explainNetError(err, `cannot connect to ${formatAddress({ hostname, port })}`);
  }
}

function explainNetError(err: unknown, what: string): Error {
  const hint = err instanceof Deno.errors.AddrInUse
    ? "address already in use; choose another --port (0 picks a free one)"
    : err instanceof Deno.errors.ConnectionRefused
    ? "connection refused; is the server running?"
    : err instanceof Deno.errors.PermissionDenied
    ? "permission denied; ports below 1024 need root, choose another --port"
    : err instanceof Deno.errors.AddrNotAvailable
    ? "address not available on this machine; check --host"
    : err instanceof Deno.errors.TimedOut
    ? "timed out; is the host reachable?"
    : /lookup|resolve|dns|name or service/i.test(String(err))
    ? "unknown host; check --host"
    : err instanceof Error
    ? `${lowerFirst(err.message.replace(/ \(os error \d+\)$/, ""))}; check --host and --port`
    : String(err);
  return new Failure(`${what}: ${hint}`);
}

/**
 * accept() that survives a client resetting before the handshake completes
 * (Deno reports that as an error from accept); undefined once the listener
 * is closed (by a shutdown).
 */
export async function acceptClient(listener: Deno.TcpListener): Promise<Deno.TcpConn | undefined> {
  while (true) {
    try {
      return await listener.accept();
    } catch (err) {
      if (err instanceof Deno.errors.BadResource) return undefined;
      if (
        err instanceof Deno.errors.NotConnected ||
        err instanceof Deno.errors.ConnectionAborted ||
        err instanceof Deno.errors.ConnectionReset
      ) continue;
      throw err;
    }
  }
}

/** Closes a connection or listener that may already be closed. */
export function closeQuietly(resource: { close(): void } | undefined): void {
  try {
    resource?.close();
  } catch {
    // Already closed (BadResource): nothing left to release.
  }
}

/**
 * Writes all of `bytes`: Deno's conn.write() may write only part. Returns
 * how many write() calls that took (what --explain reports).
 */
export async function writeAll(
  writer: { write(bytes: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<number> {
  let offset = 0;
  let calls = 0;
  for (; offset < bytes.length; calls++) offset += await writer.write(bytes.subarray(offset));
  return calls;
}

// ---------------------------------------------------------------- text -----

// C0 controls but tab, DEL, C1 controls, and the bidirectional overrides that
// let a line display as something other than what it says.
// deno-lint-ignore no-control-regex
const UNSAFE_CHARS = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Makes peer text safe to print or relay: control characters become visible
 * escapes (`\x1b`, `\r`, `\u0085`), so a peer can never move another user's
 * cursor, clear their screen or fake a line. Everything else, Chinese and
 * emoji included, passes through untouched.
 */
export function sanitizeText(text: string): string {
  return text.replace(UNSAFE_CHARS, escapeChar);
}

function escapeChar(char: string): string {
  const code = char.charCodeAt(0);
  if (char === "\r") return "\\r";
  if (char === "\n") return "\\n";
  if (code < 0x80) return `\\x${code.toString(16).padStart(2, "0")}`;
  return `\\u${code.toString(16).padStart(4, "0")}`;
}

// --------------------------------------------------------------- colours ---

export type Colour = Parameters<typeof styleText>[0];

/**
 * Styles `text` only when the stream is a terminal and NO_COLOR is unset;
 * styleText checks both, so pipes and files always get plain text.
 */
export function paint(
  format: Colour,
  text: string,
  stream: "stdout" | "stderr" = "stdout",
): string {
  return styleText(format, text, { stream: stream === "stdout" ? process.stdout : process.stderr });
}

// -------------------------------------------------------------- shutdown ---

export type StopSignal = "SIGINT" | "SIGTERM";
// Windows delivers Ctrl+C but has no SIGTERM.
const SIGNALS: StopSignal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];

/**
 * Calls `handler` once on Ctrl+C (SIGINT) or SIGTERM. Returns a function that
 * removes the listeners; they do not keep the process alive.
 */
export function onStopSignal(handler: (signal: StopSignal) => void): () => void {
  const listeners = SIGNALS.map((signal) => {
    const listener = () => {
      remove();
      handler(signal);
    };
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  const remove = () => {
    for (const [signal, listener] of listeners) {
      try {
        Deno.removeSignalListener(signal, listener);
      } catch {
        // Already removed.
      }
    }
  };
  return remove;
}

/** Conventional shell exit status for a process stopped by a signal. */
export function signalExitCode(signal: StopSignal): number {
  return signal === "SIGINT" ? 130 : 143;
}
