// The house rules a learner relies on, checked on the real module graph
// (`deno info --json`): each script stands alone beside its note, machinery
// lives in lib/ with a module doc, and nothing imports in a circle.

import assert from "node:assert/strict";
import { SCRIPTS as COMPILED } from "../tools/compile.ts";
import { ROOT, run } from "./helpers.ts";

const SCRIPTS: readonly string[] = COMPILED; // every script beside its note

interface ModuleInfo {
  specifier: string;
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

let graphOnce: Promise<Map<string, string[]>> | undefined;
const importGraph = () => graphOnce ??= readImportGraph();

/** Local module -> the local modules it imports (static and dynamic, code and types). */
async function readImportGraph(): Promise<Map<string, string[]>> {
  const filesIn = (dir: string) =>
    [...Deno.readDirSync(`${ROOT}${dir}`)]
      .filter((entry) => entry.name.endsWith(".ts"))
      .map((entry) => `${dir}/${entry.name}`);
  // The scripts, their lib/, and every other entry point: the bench, the
  // tools, the tests (each test file pulls in what it tests).
  const roots = [
    ...SCRIPTS,
    "utils.ts",
    ...filesIn("lib"),
    "bench/bench.ts",
    "bench/load.ts",
    "bench/soak.ts",
    "tools/compile.ts",
    ...filesIn("tests"),
  ];
  const graph = new Map<string, string[]>();
  for (const file of roots) {
    const info = await run(Deno.execPath(), ["info", "--json", `${ROOT}${file}`], {
      timeoutMs: 60_000,
    });
    assert.equal(info.code, 0, info.stderr);
    const { modules } = JSON.parse(info.stdout) as { modules: ModuleInfo[] };
    for (const module of modules) {
      const from = localName(module.specifier);
      if (!from || graph.has(from)) continue;
      const targets = (module.dependencies ?? [])
        .flatMap((d) => [d.code?.specifier, d.type?.specifier])
        .map((specifier) => specifier && localName(specifier))
        .filter((name): name is string => Boolean(name));
      graph.set(from, [...new Set(targets)]);
    }
  }
  return graph;
}

/** "lib/room.ts" for a file of this repository, undefined for anything else. */
function localName(specifier: string): string | undefined {
  const root = `file://${ROOT}`;
  return specifier.startsWith(root) ? specifier.slice(root.length) : undefined;
}

Deno.test("layout: no script imports another script", async () => {
  const graph = await importGraph();
  for (const script of SCRIPTS) {
    const others = (graph.get(script) ?? []).filter((target) => SCRIPTS.includes(target));
    assert.deepEqual(others, [], `${script} imports ${others.join(", ")}`);
  }
  for (const [from, targets] of graph) {
    if (!from.startsWith("lib/") && from !== "utils.ts") continue;
    const scripts = targets.filter((target) => SCRIPTS.includes(target));
    assert.deepEqual(scripts, [], `${from} imports the script ${scripts.join(", ")}`);
  }
  const utilsImports = (graph.get("utils.ts") ?? []).filter((target) => target.startsWith("lib/"));
  assert.deepEqual(utilsImports, [], "utils.ts is the bottom layer: it imports nothing local");
});

Deno.test("layout: no import circle anywhere: scripts, lib/, bench/, tools/, tests/", async () => {
  const graph = await importGraph();
  const done = new Set<string>();
  const walk = (file: string, path: string[]) => {
    const seen = path.indexOf(file);
    assert.equal(seen, -1, `import circle: ${[...path.slice(seen), file].join(" -> ")}`);
    if (done.has(file)) return;
    for (const target of graph.get(file) ?? []) walk(target, [...path, file]);
    done.add(file);
  };
  for (const file of graph.keys()) walk(file, []);
});

Deno.test("layout: every lib/ file opens with a @module doc comment", () => {
  for (const entry of Deno.readDirSync(`${ROOT}lib`)) {
    if (!entry.name.endsWith(".ts")) continue;
    const text = Deno.readTextFileSync(`${ROOT}lib/${entry.name}`);
    assert.match(text, /^\/\*\*[\s\S]*?@module[\s\S]*?\*\//, `lib/${entry.name}`);
  }
});
