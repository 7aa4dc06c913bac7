// tools/compile.ts: builds the scripts into standalone binaries that run
// without Deno installed.
//
//   deno task compile                            # every script there is, into dist/
//   deno run -A tools/compile.ts [--out-dir DIR] [SCRIPT ...]
//   dist/server --port 0                         # then run one like the script
//
// For each top-level script that exists (server.ts, client.ts, states.ts,
// reuse_server.ts, chat_server.ts, chat_client.ts) it runs
// `deno compile PERMISSIONS --output DIR/NAME SCRIPT`, type-checking as
// `deno check` does, and prints one line per binary. A binary cannot be given
// permissions when it is run, so each gets, baked in, what its script needs
// (PERMISSIONS below), not -A. The first compile downloads Deno's
// runtime (denort) and caches it; without network access that fails, and
// this says so in one line instead of deno's backtrace.

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join, relative, resolve } from "node:path";
import { Failure, runMain, UsageError } from "../utils.ts";

/** The scripts that can be compiled, in build order. */
export const SCRIPTS = [
  "server.ts",
  "client.ts",
  "states.ts",
  "reuse_server.ts",
  "chat_server.ts",
  "chat_client.ts",
] as const;

export const ROOT = fileURLToPath(new URL("../", import.meta.url));

export const USAGE = `usage: deno run -A tools/compile.ts [--out-dir DIR] [SCRIPT ...]

Compiles the project's scripts into standalone binaries with
"deno compile PERMISSIONS --output DIR/NAME SCRIPT": dist/server, dist/client, ...
Each binary has its script's permissions baked in, not -A: --allow-net
(chat_server --allow-read too: it reads --motd and the like); states and
reuse_server -A (Deno reads /proc only with all access).

arguments:
  SCRIPT          only these scripts (e.g. server.ts or server); default: every one
                  of ${SCRIPTS.join(", ")} that exists

options:
  --out-dir DIR   where the binaries go (default dist/ in the project)
  -h, --help      show this help

The first compile downloads Deno's runtime (denort) and needs network access.
Exit status: 0 all built, 1 a compile failed, 2 bad usage.`;

export const RUNTIME_DOWNLOAD_ERROR =
  "deno compile needs network access the first time to download Deno's runtime (denort); " +
  "run it once where the network is reachable (the runtime is then cached), " +
  "or set DENORT_BIN to a denort binary of the same Deno version";

export interface CompileOptions {
  outDir: string;
  scripts: string[];
}

/** The command line: script names and --out-dir; UsageError on anything else. */
export function parseCompileArgs(args: string[], exists = scriptExists): CompileOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        "out-dir": { type: "string", default: join(ROOT, "dist") },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    const message = (err as Error).message;
    throw new UsageError(message.charAt(0).toLowerCase() + message.slice(1));
  }
  if (parsed.values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const outDir = parsed.values["out-dir"];
  if (outDir === "") throw new UsageError("--out-dir must name a directory");
  return { outDir: resolve(outDir), scripts: chooseScripts(parsed.positionals, exists) };
}

/**
 * The scripts to build: the named ones (`server` or `server.ts`), or every
 * one that exists. Unknown or missing names are UsageErrors.
 */
export function chooseScripts(names: string[], exists: (script: string) => boolean): string[] {
  if (names.length === 0) {
    const present = SCRIPTS.filter(exists);
    if (present.length === 0) throw new Failure(`none of ${SCRIPTS.join(", ")} exists`);
    return present;
  }
  const chosen: string[] = [];
  for (const name of names) {
    const script = name.replace(/^\.\//, "").replace(/(\.ts)?$/, ".ts");
    if (!(SCRIPTS as readonly string[]).includes(script)) {
      throw new UsageError(`unknown script '${name}'; choose from ${SCRIPTS.join(", ")}`);
    }
    if (!exists(script)) throw new UsageError(`${script} does not exist in this project (yet)`);
    if (!chosen.includes(script)) chosen.push(script);
  }
  return chosen;
}

function scriptExists(script: string): boolean {
  try {
    return Deno.statSync(join(ROOT, script)).isFile;
  } catch {
    return false;
  }
}

/** The binary's path for a script: DIR/server for server.ts. */
export function outputPath(outDir: string, script: string): string {
  const exe = Deno.build.os === "windows" ? ".exe" : "";
  return join(outDir, script.replace(/\.ts$/, "") + exe);
}

/**
 * The permissions baked into each binary: all its script needs for every
 * feature, since a binary cannot be given more when it runs: --allow-net
 * (without --allow-env a terminal gets no colours, and is never asked).
 * states.ts and reuse_server.ts read /proc, which Deno allows only with all
 * access (reuse_server --demo also calls libc through FFI). chat_server.ts
 * reads files it is given (--motd FILE, --password-file FILE), and --redis
 * imports lib/cluster.ts by a specifier built at run time, which needs read
 * access too; none of those paths is known when the binary is built.
 */
export const PERMISSIONS: Record<(typeof SCRIPTS)[number], string[]> = {
  "server.ts": ["--allow-net"],
  "client.ts": ["--allow-net"],
  "states.ts": ["--allow-all"],
  "reuse_server.ts": ["--allow-all"],
  "chat_server.ts": ["--allow-net", "--allow-read"],
  "chat_client.ts": ["--allow-net"],
};

/**
 * Modules a script loads through a specifier `deno compile` cannot see
 * (chat_server.ts loads its Redis link that way, so that a first run without
 * --redis downloads nothing): they must be named to be in the binary.
 */
const INCLUDES: Record<string, string[]> = {
  "chat_server.ts": ["--include", "lib/cluster.ts"],
};

/** The flags `deno compile` gets for a script: its permissions and includes. */
export function compileFlags(script: string): string[] {
  const permissions = PERMISSIONS[script as (typeof SCRIPTS)[number]] ?? [];
  return [...permissions, ...INCLUDES[script] ?? []];
}

/** Runs `deno compile` for one script; Failure with a one-line reason if it fails. */
export async function compileScript(script: string, outDir: string): Promise<string> {
  const output = outputPath(outDir, script);
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["compile", ...compileFlags(script), "--output", output, script],
    cwd: ROOT, // so deno.json is the project's
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (!result.success) {
    const stderr = new TextDecoder().decode(result.stderr);
    throw new Failure(explainCompileError(stderr, script));
  }
  return output;
}

/**
 * One line for a failed `deno compile`: the runtime download failing gets
 * its own explanation; otherwise deno's first line that says what went
 * wrong (a type error, or its `error:` line), without progress lines.
 */
export function explainCompileError(stderr: string, script: string): string {
  // deno colours some hints even with NO_COLOR.
  // deno-lint-ignore no-control-regex
  const lines = stderr.replace(/\x1b\[[0-9;]*m/g, "").split("\n").map((line) => line.trim());
  const errorAt = lines.findIndex((line) => /^error:/i.test(line));
  const failure = errorAt === -1 ? lines : lines.slice(errorAt);
  if (/denort|error sending request|download/i.test(failure.join("\n"))) {
    return RUNTIME_DOWNLOAD_ERROR;
  }
  const first = lines.find((line) =>
    line !== "" && !/^(Check|Compile|Download|Warning|Embedded Files)\b/.test(line)
  );
  const reason = first?.replace(/^error:\s*/i, "") ?? "deno compile failed without a message";
  return `cannot compile ${script}: ${reason}`;
}

/** `N.N MiB` for the line printed per binary. */
function formatSize(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** A path as the user would type it: relative to the current directory when inside it. */
function displayPath(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}

export async function main(args: string[]): Promise<number> {
  const { outDir, scripts } = parseCompileArgs(args);
  try {
    await Deno.mkdir(outDir, { recursive: true });
  } catch (err) {
    const reason = (err as Error).message.replace(/ \(os error \d+\).*$/, "").toLowerCase();
    throw new Failure(`cannot create ${displayPath(outDir)}: ${reason}`);
  }
  for (const script of scripts) {
    const output = await compileScript(script, outDir);
    const { size } = await Deno.stat(output);
    console.log(`built ${displayPath(output)} from ${script} (${formatSize(size)})`);
  }
  return 0;
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
