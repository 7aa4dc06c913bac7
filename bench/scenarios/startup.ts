/**
 * bench/scenarios/startup.ts: startup, from spawning `deno run -A
 * chat_server.ts --port 0` to its `listening on` line, warm cache; beside it
 * a `deno eval` that only listens and prints, the floor for any Deno server.
 */

import { ROOT } from "../common/paths.ts";
import { fmt } from "../report/format.ts";
import { type Context, newRecord, type Scenario } from "../scenario.ts";

/** Milliseconds from spawning `command` to its `listening on` line; NaN if none in 20 s. */
async function startupOnce(command: string[]): Promise<number> {
  const started = performance.now();
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  let elapsed = NaN;
  const decoder = new TextDecoder();
  let text = "";
  try {
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (/listening on \S+\n/.test(text)) {
        elapsed = performance.now() - started;
        break;
      }
    }
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await child.status;
    clearTimeout(timer);
  }
  return elapsed;
}

/** Listens on a free port, prints the readiness line, exits: a Deno server doing nothing. */
const FLOOR_SCRIPT = "const l = Deno.listen({ hostname: '127.0.0.1', port: 0 }); " +
  "console.log(`listening on 127.0.0.1:${l.addr.port}`); l.close();";

export function startupScenario(ctx: Context): Scenario {
  const samples = ctx.options.quick ? 3 : 5;
  const chat = [
    Deno.execPath(),
    "run",
    "-A",
    ...ctx.chat.denoFlags,
    ctx.chat.script,
    "--port",
    "0",
  ];
  const floor = [Deno.execPath(), "eval", FLOOR_SCRIPT];
  let warmed = false;
  return {
    name: "startup",
    title: `startup: spawn to "listening on" of \`deno run -A ${ctx.chat.script} --port 0\`, ` +
      `warm cache, median of ${samples} (after 1 warm-up)`,
    servers: ["chat"],
    runs: samples,
    rows: [
      {
        key: "readyMs",
        label: `deno run -A ${ctx.chat.script} --port 0`,
        fmt: fmt.ms,
        target: { text: "<= 150 ms", ok: (v) => v <= 150 },
        noRatio: true,
      },
      {
        key: "floorMs",
        label: "floor: deno eval listen + print",
        fmt: fmt.ms,
        noRatio: true,
      },
    ],
    async run(server, index) {
      // The first start compiles and caches the modules: not a warm start.
      if (!warmed) {
        warmed = true;
        await startupOnce(chat);
        await startupOnce(floor);
      }
      const record = newRecord(server, index);
      record.metrics.readyMs = await startupOnce(chat);
      record.metrics.floorMs = await startupOnce(floor);
      return record;
    },
  };
}
