/**
 * bench/environment.ts: the machine and versions a bench ran on, for the
 * --json output and the header line above the tables; the chat script's
 * SHA-256 ties a result to a version of the server.
 */

import { ROOT } from "./common/paths.ts";
import { fdLimit } from "./common/proc.ts";
import { type Options } from "./options.ts";
import { type Environment } from "./results.ts";
import { CPUS } from "./scenario.ts";
import { type Availability } from "./servers/command.ts";
import { type ServerKind } from "./servers/compared.ts";

/** What the probes of the peers and redis found; a missing one was not asked (not measured). */
export async function environment(
  options: Options,
  peers: Partial<Record<ServerKind, Availability>>,
  redis: Availability | undefined,
): Promise<Environment> {
  const cpuModel = (await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))
    .match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown";
  return {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    ncat: peers.ncat === undefined ? "not asked" : describe(peers.ncat),
    node: peers.node === undefined ? "not asked" : describe(peers.node),
    go: peers.go === undefined ? "not asked" : describe(peers.go),
    redis: redis === undefined ? "not asked" : describe(redis),
    cpus: CPUS,
    cpuModel,
    loadavg: Deno.loadavg(),
    memoryGiB: +(Deno.systemMemoryInfo().total / 1024 ** 3).toFixed(1),
    benchFdLimit: fdLimit("self"),
    chatScript: options.chatScript,
    chatScriptSha256: await scriptSha256(options.chatScript),
    denoFlags: options.denoFlags,
    options,
  };
}

function describe(found: Availability): string {
  return found.ok ? found.version : `skipped: ${found.reason}`;
}

/** Which version of the chat server was measured (it changes while being optimised). */
async function scriptSha256(script: string): Promise<string> {
  const bytes = await Deno.readFile(new URL(script, `file://${ROOT}`)).catch(() => null);
  if (!bytes) return "unreadable";
  return Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
}

/** The line above the tables: when, which versions, which machine, which chat script. */
export function headerLine(options: Options, env: Environment): string {
  const redis = options.scenarios.includes("cluster") ? `redis-server ${env.redis}, ` : "";
  // The peers asked for: their versions, or why their columns are skipped.
  const peers = ([["ncat", env.ncat], ["node", env.node], ["go", env.go]] as const)
    .filter(([, found]) => found !== "not asked")
    .map(([name, found]) => `${name} ${found}, `).join("");
  return `# deno task bench${options.quick ? " --quick" : ""}: ${env.date}, Deno ${env.deno}, ` +
    `${peers}${redis}${env.cpus} CPUs (${env.cpuModel}), load average ` +
    `${env.loadavg.map((v) => v.toFixed(2)).join(" ")} at start, ` +
    `load: bench/loadgen.c where it serves, else ${options.workers ?? "1-2"} Deno workers, ` +
    `fd limit ${env.benchFdLimit}, ` +
    `${options.chatScript} sha256 ${env.chatScriptSha256} (run with --max-rate 0, flood control ` +
    "off, in every scenario but flood-limited)";
}
