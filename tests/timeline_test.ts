// Tests of the timeline states.ts --demo draws: how each drawn state is
// marked (timelineOf), the layout (drawTimeline), and real runs, where the
// drawing must name each segment in order and mark as "(observed)" exactly
// the states /proc showed in that step (compared with --json and with the
// step-by-step text of the same run).

import assert from "node:assert/strict";
import type { End, PictureRow } from "../lib/picture.ts";
import type { StateName } from "../lib/tcp_states.ts";
import {
  type DemoStep,
  drawTimeline,
  type Seen,
  timelineOf,
  type TimelineRow,
} from "../lib/timeline.ts";
import { colourEnv, ROOT, runInTerminal, runScript } from "./helpers.ts";

const linux = Deno.build.os === "linux";
const ENDS = ["client", "server"] as const;

const C2S = (segment: string): PictureRow => ({ from: "client", to: "server", segment });
const S2C = (segment: string): PictureRow => ({ from: "server", to: "client", segment });
const HANDSHAKE: PictureRow[] = [
  C2S("SYN"),
  { client: "SYN_SENT", server: "SYN_RCVD" },
  S2C("SYN+ACK"),
  C2S("ACK"),
  { client: "ESTABLISHED", server: "ESTABLISHED" },
];

/** A demo step made up in the test: only what the timeline needs. */
function madeUp(id: string, picture: PictureRow[], observed: Record<End, StateName[]>): DemoStep {
  return {
    id,
    scene: "a scene",
    title: id,
    segments: [],
    expected: { client: [], server: [] },
    observed,
    addresses: { client: null, server: null },
    timers: { client: null, server: null },
    error: null,
    errorEnd: null,
    skipped: null,
    note: "",
    timeline: timelineOf(picture, observed),
  };
}

/** Each drawn state of a timeline as `KIND END STATE (SEEN)`, in order. */
function marks(rows: TimelineRow[]): string[] {
  return rows.flatMap((row) =>
    row.kind === "states" || row.kind === "instead"
      ? ENDS.flatMap((end) => {
        const drawn = row[end];
        return drawn ? [`${row.kind} ${end} ${drawn.state} (${drawn.seen})`] : [];
      })
      : []
  );
}

Deno.test("timeline: a state is observed only if /proc showed it in that step", () => {
  // Only ESTABLISHED seen: the SYN states were passed too fast, as ESTABLISHED proves.
  assert.deepEqual(
    marks(timelineOf(HANDSHAKE, { client: ["ESTABLISHED"], server: ["ESTABLISHED"] })),
    [
      "states client SYN_SENT (too fast to observe)",
      "states server SYN_RCVD (too fast to observe)",
      "states client ESTABLISHED (observed)",
      "states server ESTABLISHED (observed)",
    ],
  );
  // Nothing seen (a step that is only explained): nothing is observed, nothing inferred.
  assert.deepEqual(marks(timelineOf(HANDSHAKE, { client: [], server: [] })), [
    "states client SYN_SENT (not observed)",
    "states server SYN_RCVD (not observed)",
    "states client ESTABLISHED (not observed)",
    "states server ESTABLISHED (not observed)",
  ]);
  // The handshake's segments keep their order and direction.
  assert.deepEqual(
    timelineOf(HANDSHAKE, { client: [], server: [] })
      .flatMap((row) => row.kind === "segment" ? [`${row.from}>${row.to} ${row.segment}`] : []),
    ["client>server SYN", "server>client SYN+ACK", "client>server ACK"],
  );
});

Deno.test("timeline: CLOSING is never inferred; what the kernel did instead is drawn", () => {
  const picture: PictureRow[] = [
    C2S("FIN"),
    S2C("FIN"),
    { client: "CLOSING", server: "CLOSING" },
    C2S("ACK"),
    S2C("ACK"),
    { client: "TIME_WAIT", server: "TIME_WAIT" },
  ];
  const rows = timelineOf(picture, {
    client: ["FIN_WAIT_2", "TIME_WAIT"],
    server: ["LAST_ACK", "CLOSED"],
  });
  assert.deepEqual(marks(rows), [
    // TIME_WAIT is reached through FIN_WAIT_2 too: it proves nothing about CLOSING.
    "states client CLOSING (not observed)",
    "states server CLOSING (not observed)",
    "states client TIME_WAIT (observed)",
    "states server TIME_WAIT (not observed)",
    "instead client FIN_WAIT_2 (observed)",
    "instead server LAST_ACK (observed)",
    "instead server CLOSED (no socket)",
  ]);
  // Only the end really in TIME_WAIT gets the 2MSL timer.
  assert.deepEqual(rows.at(-1), {
    kind: "timer",
    ends: ["client"],
    timer: "2MSL timer (60 s on Linux)",
    then: "CLOSED (not waited for)",
    secondsLeft: {},
  });
});

Deno.test("timeline: an observed TIME_WAIT shows the seconds its kernel timer had left", () => {
  const picture: PictureRow[] = [
    S2C("FIN"),
    { server: "LAST_ACK" },
    C2S("ACK"),
    { client: "TIME_WAIT", server: "CLOSED" },
  ];
  const timer = { state: "TIME_WAIT" as const, timer: "timewait" as const, retransmits: 0 };
  const timers = { client: { ...timer, timerSeconds: 59.83 }, server: null };
  const rows = timelineOf(picture, { client: ["TIME_WAIT"], server: ["CLOSED"] }, timers);
  assert.deepEqual(rows.find((r) => r.kind === "states" && r.client), {
    kind: "states",
    client: { state: "TIME_WAIT", seen: "observed", secondsLeft: 59.83 },
    server: { state: "CLOSED", seen: "no socket" },
  });
  assert.deepEqual(rows.at(-1), {
    kind: "timer",
    ends: ["client"],
    timer: "2MSL timer (60 s on Linux)",
    then: "CLOSED (not waited for)",
    secondsLeft: { client: 59.83 },
  });
  const step = { ...madeUp("close", picture, { client: ["TIME_WAIT"], server: ["CLOSED"] }) };
  step.timeline = rows;
  assert.deepEqual(drawTimeline([step], { colour: false }).slice(-3), [
    "    TIME_WAIT (observed, 59.8 s left)     CLOSED (no socket)",
    "      :  2MSL timer: 59.8 s left",
    "      v  then CLOSED (not waited for)",
  ]);
  // A timer the kernel does not have is not made up: a TIME_WAIT not observed gets none.
  const unseen = timelineOf(picture, { client: ["FIN_WAIT_2"], server: ["CLOSED"] }, timers);
  assert.ok(!unseen.some((r) => r.kind === "timer"));
});

Deno.test("timeline: CLOSED is 'no socket' only when /proc had no entry", () => {
  const picture: PictureRow[] = [
    S2C("FIN"),
    { server: "LAST_ACK" },
    C2S("ACK"),
    { client: "TIME_WAIT", server: "CLOSED" },
  ];
  assert.deepEqual(marks(timelineOf(picture, { client: ["TIME_WAIT"], server: ["CLOSED"] })), [
    "states server LAST_ACK (too fast to observe)",
    "states client TIME_WAIT (observed)",
    "states server CLOSED (no socket)",
  ]);
  // Still in LAST_ACK when the demo stopped looking: CLOSED is not claimed.
  assert.deepEqual(marks(timelineOf(picture, { client: ["TIME_WAIT"], server: ["LAST_ACK"] })), [
    "states server LAST_ACK (observed)",
    "states client TIME_WAIT (observed)",
    "states server CLOSED (not observed)",
  ]);
});

Deno.test("timeline: drawTimeline draws two columns, arrows between, step numbers on the left", () => {
  const steps = [
    madeUp("listen", [{ client: "CLOSED", server: "LISTEN" }], {
      client: ["CLOSED"],
      server: ["LISTEN"],
    }),
    madeUp("handshake", HANDSHAKE, {
      client: ["ESTABLISHED"],
      server: ["SYN_RCVD", "ESTABLISHED"],
    }),
    madeUp("close", [S2C("FIN"), { server: "LAST_ACK" }, C2S("ACK"), {
      client: "TIME_WAIT",
      server: "CLOSED",
    }], { client: ["TIME_WAIT"], server: ["CLOSED"] }),
  ];
  assert.deepEqual(drawTimeline(steps, { colour: false }), [
    "",
    "-- a scene",
    "",
    "    client                                server",
    " 1  CLOSED (no socket)                    LISTEN (observed)",
    " 2    |  ------------- SYN ------------->   |",
    "    SYN_SENT (too fast to observe)        SYN_RCVD (observed)",
    "      |  <----------- SYN+ACK -----------   |",
    "      |  ------------- ACK ------------->   |",
    "    ESTABLISHED (observed)                ESTABLISHED (observed)",
    " 3    |  <------------- FIN -------------   |",
    "      |                                   LAST_ACK (too fast to observe)",
    "      |  ------------- ACK ------------->   |",
    "    TIME_WAIT (observed)                  CLOSED (no socket)",
    "      :  2MSL timer (60 s on Linux)",
    "      v  then CLOSED (not waited for)",
  ]);
  // Steps of other scenes are left out; the numbers stay those of the whole demo.
  const other = { ...steps[0], scene: "another scene" };
  const drawn = drawTimeline([other, steps[1]], { colour: false, scenes: ["a scene"] });
  assert.ok(!drawn.includes("-- another scene"));
  assert.match(drawn[4], /^ 2 {4}\| {2}-+ SYN -+> {3}\|$/);
});

interface DemoJson {
  steps: DemoStep[];
  timelineScenes: string[];
}

async function demoJson(): Promise<DemoJson> {
  const result = await runScript("states.ts", ["--demo", "--json"]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

const arrowText = (s: { from: End; to: End; segment: string }) => `${s.from}>${s.to} ${s.segment}`;

Deno.test({
  name: "timeline: --demo --json carries each step's timeline, true to what /proc showed",
  ignore: !linux,
  async fn() {
    const { steps, timelineScenes } = await demoJson();
    // Every scene is drawn but the one of tricks (each step there its own connection).
    const scenes = [...new Set(steps.map((s) => s.scene))];
    assert.deepEqual(timelineScenes, scenes.filter((s) => s !== "catching the short-lived states"));
    for (const step of steps) {
      const rows = step.timeline;
      // The segments, in order, are the step's segments.
      assert.deepEqual(
        rows.flatMap((row) => row.kind === "segment" ? [arrowText(row)] : []),
        step.segments.map(arrowText),
        step.id,
      );
      for (const end of ENDS) {
        const drawn = rows.flatMap((row) =>
          (row.kind === "states" || row.kind === "instead") && row[end] ? [row[end]!] : []
        );
        // The textbook rows give the expected states, in order (one drawn again is not new).
        assert.deepEqual(
          rows.flatMap((row) => row.kind === "states" && row[end] ? [row[end]!.state] : [])
            .filter((state, i, all) => state !== all[i - 1]),
          step.expected[end],
          `${step.id} ${end}`,
        );
        const seen = step.observed[end];
        for (const { state, seen: mark } of drawn) {
          const why = `${step.id} ${end} ${state} (${mark}), /proc showed: ${seen.join(", ")}`;
          const rule: Record<Seen, boolean> = {
            observed: seen.includes(state) && state !== "CLOSED",
            "no socket": state === "CLOSED" && seen.includes("CLOSED"),
            "too fast to observe": !seen.includes(state) &&
              step.expected[end].slice(step.expected[end].indexOf(state) + 1)
                .some((later) => seen.includes(later)),
            "not observed": !seen.includes(state),
          };
          assert.ok(rule[mark], why);
        }
        // And everything /proc showed is drawn.
        for (const state of seen) {
          assert.ok(
            drawn.some((d) => d.state === state && ["observed", "no socket"].includes(d.seen)),
            `${step.id} ${end}: ${state} was observed but not drawn as such`,
          );
        }
      }
      // The 2MSL timer only where the kernel really had the TIME_WAIT, with what it had left.
      for (const row of rows) {
        if (row.kind !== "timer") continue;
        assert.equal(row.timer, "2MSL timer (60 s on Linux)");
        for (const end of row.ends) {
          assert.ok(step.observed[end].includes("TIME_WAIT"), step.id);
          const left: number = row.secondsLeft[end] ?? -1;
          assert.ok(left > 0 && left <= 60, `${step.id} ${end}: ${left} s left`);
          assert.equal(left, step.timers[end]?.timerSeconds);
        }
      }
    }
    const byId = (id: string) => steps.find((s) => s.id === id)!;
    assert.ok(byId("server-close").timeline.some((r) => r.kind === "timer"));
    assert.ok(byId("client-close-last").timeline.some((r) => r.kind === "timer"));
    assert.ok(byId("closing-end").timeline.some((r) => r.kind === "timer"));
    // SYN_RCVD and CLOSING are drawn as observed: /proc really showed them.
    assert.deepEqual(marks(byId("syn-rcvd").timeline), [
      "states client SYN_SENT (too fast to observe)",
      "states server SYN_RCVD (observed)",
      "states client ESTABLISHED (observed)",
      "states server SYN_RCVD (observed)",
    ]);
    assert.ok(marks(byId("closing").timeline).includes("states client CLOSING (observed)"));
    // The reset part: RST arrows, no TIME_WAIT, no timer.
    for (const id of ["refused", "abort", "linger"]) {
      assert.ok(byId(id).segments.some((s) => s.segment === "RST"), id);
      assert.ok(!byId(id).timeline.some((r) => r.kind === "timer"), id);
    }

    // The JSON is enough to draw the same timeline.
    const drawn = drawTimeline(steps, { colour: false, scenes: timelineScenes }).join("\n");
    assert.match(drawn, /^ 2 {4}\| {2}-+ SYN -+> {3}\|$/m);
    assert.match(drawn, /^ {4}TIME_WAIT \(observed, \d+\.\d s left\) +CLOSED \(no socket\)$/m);
    assert.match(drawn, /^ {6}: {2}2MSL timer: \d+\.\d s left$/m);
    assert.match(drawn, /^ {6}\| {2}<-+ RST -+ {3}\|$/m);
  },
});

/** The timeline part of `states.ts --demo`'s text output, as lines. */
function timelinePart(out: string): string[] {
  const start = out.indexOf("\n== The same exchange as a timeline");
  const end = out.indexOf("\nSeen in /proc:");
  assert.ok(start > 0 && end > start, out);
  return out.slice(start, end).split("\n");
}

/** What each step's text block says /proc showed: step number -> end -> states. */
function blockStates(out: string): Map<number, Record<End, StateName[]>> {
  const blocks = new Map<number, Record<End, StateName[]>>();
  let current: Record<End, StateName[]> | undefined;
  for (const line of out.split("\n")) {
    const header = /^ ?(\d+)\. /.exec(line);
    if (header) blocks.set(Number(header[1]), current = { client: [], server: [] });
    const states = /^ {6}(client|server) (?:-|\S+:\d+) +(.+?)(?: {2}\(textbook: .*\))?$/.exec(line);
    if (current && states && !["not observed", "skipped"].includes(states[2])) {
      // Without the timer said after the last state: " (59.8 s left)", " (timer: ...)".
      current[states[1] as End] = states[2].replace(/ \([^)]*\)/g, "").split(" -> ") as StateName[];
    }
  }
  return blocks;
}

Deno.test({
  name: "timeline: --demo draws each segment in order and marks only what that step observed",
  ignore: !linux,
  async fn() {
    const result = await runScript("states.ts", ["--demo"]);
    assert.equal(result.code, 0, result.stderr);
    const out = result.stdout;
    assert.ok(!out.includes("\x1b["), "NO_COLOR and a pipe: plain text");
    const lines = timelinePart(out);

    // The arrows, in order, are the segments of the drawn scenes (the same in every run).
    const { steps, timelineScenes } = await demoJson();
    const drawnSteps = steps.filter((s) => timelineScenes.includes(s.scene));
    const arrows = lines.flatMap((line) => {
      const m = /^(?: ?\d+)? +\| {2}(<)?-+ (.+?) -+(>)? {3}\|$/.exec(line);
      return m ? [`${m[1] ? "server>client" : "client>server"} ${m[2]}`] : [];
    });
    assert.deepEqual(arrows, drawnSteps.flatMap((s) => s.segments.map(arrowText)));
    assert.ok(lines.some((line) => line.includes("-- " + timelineScenes[1])));

    // Each "(observed)" is a state the same run's step text shows for that end, and back.
    const blocks = blockStates(out);
    const drawnMarks = new Map<number, Record<End, Set<string>>>();
    let number = 0;
    for (const line of lines) {
      const gutter = /^ ?(\d+) {2}/.exec(line);
      if (gutter) number = Number(gutter[1]);
      if (!number || /\| {3}\|$/.test(line)) continue;
      const cells = { client: line.slice(4, 42), server: line.slice(42) };
      for (const end of ENDS) {
        const cell = /(?:instead: )?([A-Z_0-9]+) \((observed|no socket)[,)]/.exec(cells[end]);
        if (!cell) continue;
        if (!drawnMarks.has(number)) {
          drawnMarks.set(number, { client: new Set(), server: new Set() });
        }
        drawnMarks.get(number)![end].add(cell[1]);
      }
    }
    assert.deepEqual([...drawnMarks.keys()], drawnSteps.map((s) => steps.indexOf(s) + 1));
    for (const [n, ends] of drawnMarks) {
      for (const end of ENDS) {
        assert.deepEqual(
          [...ends[end]].sort(),
          [...new Set(blocks.get(n)![end])].sort(),
          `step ${n} ${end}: drawn as observed vs the step's own text`,
        );
      }
    }
    assert.match(lines.join("\n"), /^ {4}SYN_SENT \((observed|too fast to observe)\)/m);
    assert.match(lines.join("\n"), /: {2}2MSL timer: \d+\.\d s left$/m);
  },
});

Deno.test({
  name: "timeline: coloured on a terminal, plain in a pipe even without NO_COLOR",
  ignore: !linux,
  async fn() {
    const demo = ["run", "-A", `${ROOT}states.ts`, "--demo"];
    const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

    const terminal = await runInTerminal(Deno.execPath(), demo);
    assert.equal(terminal.code, 0, terminal.output);
    const coloured = terminal.output;
    assert.ok(coloured.includes("\x1b[32m(observed)\x1b[39m"), "observed marks in green");
    assert.ok(coloured.includes("\x1b[1m SYN \x1b[22m"), "segment names in bold");

    const piped = await new Deno.Command(Deno.execPath(), {
      args: demo,
      clearEnv: true,
      env: colourEnv(),
      stdin: "null",
    }).output();
    assert.equal(piped.code, 0, decode(piped.stderr));
    assert.ok(!decode(piped.stdout).includes("\x1b["), "a pipe gets plain text");
    assert.match(decode(piped.stdout), /^ 2 {4}\| {2}-+ SYN -+> {3}\|$/m);
  },
});
