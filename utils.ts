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

// --------------------------------------------------------------- framing ---

export type MessageEnd = "newline" | "eof" | "size";

export interface Message {
  text: string;
  /** Bytes of the message as received, without the line ending. */
  byteLength: number;
  /** What ended it: a newline, the peer's EOF, or the --size limit. */
  end: MessageEnd;
  /** Bytes each conn.read() returned: the note's one recv() got only the first. */
  reads: number[];
}

// Not fatal: invalid bytes become U+FFFD. ignoreBOM: a U+FEFF a peer sends
// at the start of a line is text like any other, not a marker to eat.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const NEWLINE = 0x0a;

/**
 * Reads one message the way the note's recv(1024) meant to: up to a newline,
 * the peer's EOF, or `maxBytes`, whichever comes first, however many TCP
 * segments it arrives in. Bytes are collected first and decoded once, so a
 * character split across reads comes out whole; a message cut at `maxBytes`
 * is cut at a character boundary. Returns null when the peer closed (or
 * reset) before sending a byte.
 */
export async function readMessage(conn: Deno.Conn, maxBytes: number): Promise<Message | null> {
  const buffer = new Uint8Array(maxBytes);
  let filled = 0;
  let end: MessageEnd = "size";
  const reads: number[] = [];
  while (filled < maxBytes) {
    let n: number | null;
    try {
      n = await conn.read(buffer.subarray(filled));
    } catch (err) {
      if (!(err instanceof Deno.errors.ConnectionReset)) throw err;
      n = null; // A reset peer is one that went away, like EOF.
    }
    if (n === null) {
      end = "eof";
      break;
    }
    reads.push(n);
    const newline = buffer.subarray(filled, filled + n).indexOf(NEWLINE);
    filled += n;
    if (newline !== -1) {
      filled = filled - n + newline;
      end = "newline";
      break;
    }
  }
  if (filled === 0 && end === "eof") return null;
  let body = buffer.subarray(0, end === "size" ? utf8Boundary(buffer) : filled);
  if (end === "newline" && body.at(-1) === 0x0d) body = body.subarray(0, -1);
  return { text: utf8.decode(body), byteLength: body.length, end, reads };
}

export type Exchange = "replied" | "silent" | "gone";

/** `received: TEXT`, sanitised, with a note on stderr when --size stopped it. */
export function printReceived(message: Message, size: number): void {
  console.log(`received: ${sanitizeText(message.text)}`);
  if (message.end === "size") {
    const note = `(stopped at --size ${size} bytes; the rest was not read)`;
    console.error(paint("yellow", note, "stderr"));
  }
}

/**
 * The note's recv() -> print -> send() for one client, shared by server.ts and
 * reuse_server.ts: reads one message, prints `received: TEXT` (sanitised),
 * sends the reply in full. "silent": the client closed without sending;
 * "gone": it vanished before the reply was out. Both are reported, not thrown.
 */
export async function receiveAndReply(
  conn: Deno.TcpConn,
  size: number,
  reply: Uint8Array,
  explain: Explain,
): Promise<Exchange> {
  const peer = formatAddress(conn.remoteAddr);
  const message = await readMessage(conn, size);
  explain(`recv(${size})`, "conn.read(buf)", describeReceived(message, size, "the client"));
  if (!message) {
    console.log(`${peer} closed the connection without sending anything`);
    return "silent";
  }
  printReceived(message, size);
  let writes: number;
  try {
    writes = await writeAll(conn, reply);
  } catch {
    explain("send()", "conn.write()", `failed: ${peer} went away`);
    console.error(`${peer} went away before the reply could be sent`);
    return "gone";
  }
  explain("send()", "conn.write()", describeSent(reply.length, writes));
  return "replied";
}

/**
 * The length of the longest prefix of `bytes` that does not end inside a
 * UTF-8 sequence. Continuation bytes look like 10xxxxxx; the lead byte
 * before them says how long the sequence is.
 */
export function utf8Boundary(bytes: Uint8Array): number {
  const len = bytes.length;
  for (let back = 1; back <= Math.min(4, len); back++) {
    const byte = bytes[len - back];
    if ((byte & 0xc0) === 0x80) continue; // continuation: keep looking back
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? len - back : len;
  }
  return len;
}

/** Marks a line that went over the limit and was discarded. */
export const LINE_TOO_LONG = Symbol("line too long");
export type LineEvent = string | typeof LINE_TOO_LONG;

/**
 * Frames a byte stream into lines ending in `\n` (`\r\n` accepted). Splitting
 * happens on bytes, before decoding: 0x0a never occurs inside a UTF-8
 * sequence, so no character is ever cut, whatever the TCP segments were.
 * A line over `maxLine` bytes is reported once as LINE_TOO_LONG and its bytes
 * are dropped as they arrive: at most `maxLine` + 1 bytes are ever held.
 * Pass `null` (what conn.read() returns at EOF) to end the stream: that
 * yields the unfinished last line, if any, for peers that want it.
 */
export function createLineSplitter(
  maxLine: number,
): (chunk: Uint8Array | null) => LineEvent[] {
  const split = createByteLineSplitter(maxLine);
  return (chunk) => split(chunk).map((line) => line === LINE_TOO_LONG ? line : utf8.decode(line));
}

export type ByteLineEvent = Uint8Array | typeof LINE_TOO_LONG;

/**
 * A buffer holding `used` bytes with room for `more`: `buffer` if it has it,
 * else a bigger copy (doubling, at most `most`). Sized to the fragments it
 * holds, not to the longest line: a busy sender's lines are cut at almost
 * every read, and a buffer of --max-line bytes each time was most of what
 * relaying a push allocated.
 */
function roomFor(
  buffer: Uint8Array | undefined,
  used: number,
  more: number,
  most: number,
): Uint8Array {
  const needed = used + more;
  if (buffer && buffer.length >= needed) return buffer;
  const grown = new Uint8Array(Math.min(most, Math.max(256, 2 * needed)));
  if (buffer) grown.set(buffer.subarray(0, used));
  return grown;
}

/**
 * createLineSplitter's lines as bytes, undecoded, for a caller that can
 * relay them as they are. A line may be a view into `chunk`: use it before
 * reading into that buffer again.
 */
export function createByteLineSplitter(
  maxLine: number,
): (chunk: Uint8Array | null) => ByteLineEvent[] {
  let partial: Uint8Array | undefined; // bytes of an unfinished line, allocated on demand
  let partialLength = 0;
  let discarding = false; // inside an overlong line, waiting for its newline
  const finishLine = (line: Uint8Array): ByteLineEvent => {
    if (line.at(-1) === 0x0d) line = line.subarray(0, -1);
    return line.length > maxLine ? LINE_TOO_LONG : line;
  };
  return (chunk) => {
    if (chunk === null) {
      const events: ByteLineEvent[] = discarding || partialLength === 0
        ? []
        : [finishLine(partial!.subarray(0, partialLength))];
      partial = undefined;
      partialLength = 0;
      discarding = false;
      return events;
    }
    const events: ByteLineEvent[] = [];
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      if (discarding) {
        discarding = newline === -1;
      } else if (partialLength + end - start > maxLine + 1) { // + 1: room for a \r
        events.push(LINE_TOO_LONG);
        partial = undefined;
        partialLength = 0;
        discarding = newline === -1;
      } else if (newline === -1) {
        partial = roomFor(partial, partialLength, end - start, maxLine + 1);
        partial.set(chunk.subarray(start, end), partialLength);
        partialLength += end - start;
      } else {
        let line = chunk.subarray(start, end);
        if (partialLength > 0) {
          partial = roomFor(partial, partialLength, line.length, maxLine + 1);
          partial.set(line, partialLength);
          line = partial.subarray(0, partialLength + line.length);
          partial = undefined;
          partialLength = 0;
        }
        events.push(finishLine(line));
      }
      start = end + 1;
    }
    return events;
  };
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

/**
 * True when `bytes` are printable ASCII and tabs only: text sanitizeText
 * would leave as it is, so it can be relayed without decoding it.
 */
export function isPlainAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if ((byte < 0x20 && byte !== 0x09) || byte > 0x7e) return false;
  }
  return true;
}

function escapeChar(char: string): string {
  const code = char.charCodeAt(0);
  if (char === "\r") return "\\r";
  if (char === "\n") return "\\n";
  if (code < 0x80) return `\\x${code.toString(16).padStart(2, "0")}`;
  return `\\u${code.toString(16).padStart(4, "0")}`;
}

// --------------------------------------------------------------- explain ---

/** Prints one --explain line: the note's Python call, its Deno twin, what happened. */
export type Explain = (python: string, deno: string, result: string) => void;

/**
 * The --explain printer: when `on`, each call prints one dim line on stderr,
 * `PYTHON_CALL  ->  DENO_CALL   RESULT`, so stdout stays exactly what it is
 * without --explain. When off, it prints nothing.
 */
export function explainer(on: boolean): Explain {
  if (!on) return () => {};
  return (python, deno, result) =>
    console.error(paint("dim", `${python}  ->  ${deno}   ${result}`, "stderr"));
}

/**
 * The recv line's result: the bytes of the message (without its newline), how
 * it ended, and how many reads it took, with what one recv() would have got.
 */
export function describeReceived(message: Message | null, size: number, peer: string): string {
  if (!message) return `0 bytes: ${peer} closed without sending (Python's recv() returns b"")`;
  const { reads } = message;
  const ended = message.end === "newline"
    ? "ended by a newline"
    : message.end === "eof"
    ? `ended by ${peer}'s EOF (its FIN)`
    : `stopped at --size ${size} (at a character boundary)`;
  if (reads.length <= 1) return `${bytes(message.byteLength)}, ${ended}, 1 read`;
  return `${bytes(message.byteLength)} in ${reads.length} reads, ${ended}; ` +
    `one recv(${size}) would have returned only the first ${bytes(reads[0])}`;
}

/** The send line's result: bytes written, and the writes it took when more than one. */
export function describeSent(length: number, writes: number): string {
  return writes <= 1
    ? bytes(length)
    : `${bytes(length)} in ${writes} writes (one send() may send only part; sendall() loops)`;
}

function bytes(n: number): string {
  return n === 1 ? "1 byte" : `${n} bytes`;
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
