/**
 * The CLI plumbing every script shares: flags, one-line errors and exit codes
 * (0 success, 1 runtime failure, 2 usage error), stop signals and colours.
 * The socket helpers are in `lib/net.ts`, peer text made safe to print in
 * `lib/peer_text.ts`; each script's own machinery is in `lib/` too.
 *
 * @module
 */

import { inspect, parseArgs, type ParseArgsConfig, styleText } from "node:util";
import process from "node:process";

/** Where servers listen and clients connect unless told otherwise. */
export const DEFAULT_HOST = "127.0.0.1";
/** The notes' port. */
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
export async function runMain(main: () => Promise<number | void>, usage: string): Promise<never> {
  let code = 1;
  try {
    code = (await main()) ?? 0;
  } catch (err) {
    console.error(`${paint("red", "error:", "stderr")} ${errorMessage(err)}`);
    if (err instanceof UsageError) {
      console.error(synopsis(usage));
      console.error("Run with --help for details.");
      code = 2;
    }
  }
  Deno.exit(code);
}

/** The usage text's synopsis: every form of the command, up to the first blank line. */
function synopsis(usage: string): string {
  const end = usage.indexOf("\n\n");
  return end === -1 ? usage : usage.slice(0, end);
}

const errorMessage = (err: unknown) => err instanceof Error ? err.message : String(err);

// ----------------------------------------------------------------- flags ---

/** parseArgs option declarations, as a script passes them to parseFlags. */
export type Options = NonNullable<ParseArgsConfig["options"]>;

const SHARED_OPTIONS = {
  host: { type: "string", default: DEFAULT_HOST },
  port: { type: "string", short: "p", default: String(DEFAULT_PORT) },
  help: { type: "boolean", short: "h", default: false },
} as const satisfies Options;

/** What parseArgs yields for these options: a default makes a value certain. */
export type FlagValues<T extends Options> =
  & { host: string; port: string; help: boolean }
  & {
    [K in keyof T]: T[K] extends { type: "boolean" }
      ? T[K] extends { default: boolean } ? boolean : boolean | undefined
      : T[K] extends { default: string } ? string
      : string | undefined;
  };

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
  const all: Options = { ...SHARED_OPTIONS, ...options };
  const parsed = parseArgs({ args: withValuesJoined(args, all), options: all, strict: true });
  const values = parsed.values as unknown as FlagValues<T>;
  if (values.help) {
    console.log(usage);
    Deno.exit(0);
  }
  return values;
}

/**
 * `args` with every option's value joined to it (`--size=-1`), checked with
 * messages of our own: parseArgs refuses a value that starts with "-" ("argument
 * is ambiguous") and names options in its own syntax ("'-p, --port <value>'").
 */
function withValuesJoined(args: string[], options: Options): string[] {
  const shorts = new Map(Object.entries(options).map(([name, o]) => [`-${o.short}`, name]));
  // [name, the value given with it]: "--size=5" -> ["size", "5"], "-p80" -> ["port", "80"]
  const split = (arg: string): [string | undefined, string | undefined] => {
    const long = /^--([^=]+)(?:=([\s\S]*))?$/.exec(arg);
    return long ? [long[1], long[2]] : [shorts.get(arg.slice(0, 2)), arg.slice(2) || undefined];
  };
  const isOption = (arg: string) => /^-(-.|.$)/.test(arg) && split(arg)[0]! in options;
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (!/^-[^-]|^--./.test(args[i])) throw new UsageError(`unexpected argument '${args[i]}'`);
    const [name, value] = split(args[i]);
    const option = name === undefined ? undefined : options[name];
    if (!option) throw new UsageError(`unknown option '${args[i].split("=")[0]}'`);
    const shown = option.short ? `-${option.short}/--${name}` : `--${name}`;
    if (option.type === "boolean" && value !== undefined) {
      throw new UsageError(`${shown} takes no value`);
    }
    if (option.type === "boolean") joined.push(`--${name}`);
    else if (value !== undefined) joined.push(`--${name}=${value}`);
    else if (i + 1 < args.length && !isOption(args[i + 1])) joined.push(`--${name}=${args[++i]}`);
    else throw new UsageError(`${shown} needs a value`);
  }
  return joined;
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

// --------------------------------------------------------------- colours ---

/** A style node:util's styleText knows, e.g. "red" or "dim". */
export type Colour = Parameters<typeof styleText>[0];

// On a terminal styleText reads the environment (NO_COLOR, FORCE_COLOR,
// TERM...): without --allow-env Deno would stop to ask, so then paint
// colours by itself, from NO_COLOR and whether the stream is a terminal.
const mayReadEnv = Deno.permissions.querySync({ name: "env" }).state === "granted";

/**
 * Styles `text` only when the stream is a terminal and NO_COLOR is unset
 * (styleText checks both), so pipes and files always get plain text; a
 * least-privilege run (no --allow-env) never prompts for them.
 */
export function paint(
  format: Colour,
  text: string,
  stream: "stdout" | "stderr" = "stdout",
): string {
  if (mayReadEnv) return styleText(format, text, { stream: process[stream] });
  // Without --allow-env: NO_COLOR (Deno.noColor) and the terminal alone decide.
  if (Deno.noColor || !Deno[stream].isTerminal()) return text;
  return [format].flat().reduceRight((out, name) => {
    const [open, close] = inspect.colors[name] ?? [];
    return open === undefined ? out : `\x1b[${open}m${out}\x1b[${close}m`;
  }, text);
}

// --------------------------------------------------------------- signals ---

/** The signals that stop a script. */
export type StopSignal = "SIGINT" | "SIGTERM";
// Windows delivers Ctrl+C but has no SIGTERM.
const SIGNALS: StopSignal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];

/**
 * Calls `handler` once on Ctrl+C (SIGINT) or SIGTERM. Returns a function that
 * removes the listeners; they do not keep the process alive.
 */
export function onStopSignal(handler: (signal: StopSignal) => void): () => void {
  // Removing a listener twice is harmless: the handler and the caller both may.
  const remove = () => listeners.forEach(([signal, l]) => Deno.removeSignalListener(signal, l));
  const listeners = SIGNALS.map((signal) => {
    const listener = () => {
      remove();
      handler(signal);
    };
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  return remove;
}

/** Conventional shell exit status for a process stopped by a signal: 130, 143. */
export function signalExitCode(signal: StopSignal): number {
  return signal === "SIGINT" ? 130 : 143;
}
