/**
 * bench/options.ts: the bench's command-line flags: their help text, and
 * parsing them into Options (which scenarios, which servers, how many runs).
 */

import { parseArgs } from "node:util";
import { SERVER_KINDS, type ServerKind } from "./servers/compared.ts";

export const USAGE = `usage: deno task bench [options]   (or: deno run -A bench/bench.ts [options])

  --quick              1 run each, smaller sizes (about 20 minutes)
  --scenario NAME      run only this scenario (repeatable; a unique prefix is enough):
                       startup, paced-1000, paced-100, paced-1000-tls, paced-100-tls,
                       flood-5000, flood-limited, flood-1k, idle, slow-reader, cluster
                       (skipped when redis-server is missing); chat_server runs with
                       --max-rate 0 but in flood-limited
  --runs N             runs per server per scenario (default 3; --quick: 1)
  --server LIST        comma-separated: chat, ncat, node (Node relay), go (Go book's chat
                       shape), floor (the Deno.listen floors, idle only); or all (the
                       default: every one available here), or both (chat,ncat)
  --json FILE          also write every raw figure as JSON to FILE
  --workers W          load generator worker processes (default: 1 for paced-100,
                       2 for the others; on 2 cores more workers only add contention)
  --chat-script FILE   the chat server to measure (default chat_server.ts)
  --deno-flag FLAG     extra flag for the chat server's deno run (repeatable), e.g. --cpu-prof
  -h, --help           this help`;

export interface Options {
  quick: boolean;
  runs: number;
  /** The rooms to measure: chat and its peers (ncat, node, go), never the floor. */
  servers: ServerKind[];
  /** The Deno.listen floor beside them, in the idle scenario only (it relays nothing). */
  floor: boolean;
  scenarios: string[];
  json?: string;
  /** Load generator workers; undefined: each scenario's default (1 or 2). */
  workers?: number;
  chatScript: string;
  denoFlags: string[];
}

/**
 * The options, or undefined after printing the help; throws on a bad flag.
 * `names` are the scenarios there are, in the bench's order (passed in, so
 * that the scenarios, which read the options, are not imported here).
 */
export function parseOptions(args: string[], names: readonly string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      scenario: { type: "string", multiple: true },
      runs: { type: "string" },
      server: { type: "string", default: "all" },
      json: { type: "string" },
      workers: { type: "string" },
      "chat-script": { type: "string", default: "chat_server.ts" },
      "deno-flag": { type: "string", multiple: true },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return undefined;
  }
  const scenarios = (values.scenario ?? names).map((name) => scenarioNamed(name, names));
  const named = serversNamed(values.server);
  const servers = named.filter((s) => s !== "floor" && s !== "floor1");
  if (servers.length === 0) {
    throw new Error("--server floor: the floor stands beside another server (in idle)");
  }
  const runs = Number(values.runs ?? (values.quick ? 1 : 3));
  const workers = values.workers === undefined ? undefined : Number(values.workers);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error("--runs: 1 to 20");
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1 || workers > 16)) {
    throw new Error("--workers: 1 to 16");
  }
  return {
    quick: values.quick,
    runs,
    servers,
    floor: named.includes("floor") || named.includes("floor1"),
    // In the bench's own order, whatever the order of the flags.
    scenarios: names.filter((s) => scenarios.includes(s)),
    json: values.json,
    workers,
    chatScript: values["chat-script"],
    denoFlags: values["deno-flag"] ?? [],
  };
}

/** A scenario's full name from its name or a unique prefix. */
function scenarioNamed(name: string, names: readonly string[]): string {
  const matches = names.includes(name) ? [name] : names.filter((s) => s.startsWith(name));
  if (matches.length !== 1) {
    throw new Error(`--scenario ${name}: expected one of ${names.join(", ")}`);
  }
  return matches[0];
}

/** `--server`'s list in column order: `all`, `both` (chat,ncat) or kinds, comma-separated. */
function serversNamed(list: string): ServerKind[] {
  const names = new Set<string>();
  for (const name of list.split(",").map((n) => n.trim()).filter((n) => n)) {
    if (name === "all") SERVER_KINDS.forEach((kind) => names.add(kind));
    else if (name === "both") names.add("chat").add("ncat");
    else if ((SERVER_KINDS as readonly string[]).includes(name)) names.add(name);
    else {
      throw new Error(`--server ${name}: expected ${SERVER_KINDS.join(", ")}, all or both`);
    }
  }
  if (names.size === 0) throw new Error("--server: name at least one server");
  return SERVER_KINDS.filter((kind) => names.has(kind));
}
