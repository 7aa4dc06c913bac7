// A newcomer's first run: an empty Deno cache (DENO_DIR), every script, its
// --help and an ordinary run. Nothing may be downloaded: without --redis no
// script needs a package, and Deno says "Download ..." on stderr when it
// fetches one (--cached-only would not catch a prefetch that is allowed to
// fail quietly).

import assert from "node:assert/strict";
import { freePort, spawnScript } from "./helpers.ts";

interface FirstRun {
  args: string[];
  /** A line on stdout that means the run got going (then it is stopped). */
  ready?: RegExp;
}

const closedPort = String(freePort());
const RUNS: Record<string, FirstRun> = {
  "server.ts": { args: ["--port", "0"], ready: /^listening on / },
  "client.ts": { args: ["--port", closedPort, "-m", "hi"] },
  "states.ts": { args: ["--port", closedPort] },
  "reuse_server.ts": { args: ["--port", "0"], ready: /^listening on / },
  "chat_server.ts": { args: ["--port", "0"], ready: /^listening on / },
  "chat_client.ts": { args: ["--port", closedPort] },
};

async function firstRun(script: string, args: string[], ready?: RegExp): Promise<string> {
  const denoDir = await Deno.makeTempDir({ prefix: "first_run_" });
  try {
    const child = spawnScript(script, args, { env: { DENO_DIR: denoDir } });
    if (ready) {
      await child.stdout.waitFor(ready, 60_000);
      child.kill("SIGTERM");
    }
    await child.exit(60_000);
    return child.stderr.text;
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
}

for (const [script, { args, ready }] of Object.entries(RUNS)) {
  Deno.test(`first run: ${script} and its --help download nothing`, async () => {
    const [help, run] = await Promise.all([
      firstRun(script, ["--help"]),
      firstRun(script, args, ready),
    ]);
    assert.doesNotMatch(help, /Download/, `${script} --help:\n${help}`);
    assert.doesNotMatch(run, /Download/, `${script} ${args.join(" ")}:\n${run}`);
  });
}
