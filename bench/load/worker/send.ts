/**
 * bench/load/worker/send.ts: a worker's sending side: starts a run, marks
 * lines due (paced by the clock, drift-free, senders spread evenly over each
 * period; or flat out), and writes them stamped with their send time.
 */

import { cpuSeconds } from "../../common/proc.ts";
import { nowMicros, nowMs } from "../../common/time.ts";
import { type RunReply, type RunRequest } from "../protocol.ts";
import { type RunConfig, runTotals, type Sender, W } from "./state.ts";

const NEWLINE = 10;
const DOLLAR = 36;
const PAD = 120; // 'x'

export function startRun(msg: RunRequest): RunReply {
  const run: RunConfig = {
    senders: msg.senders,
    lines: msg.lines,
    bytes: msg.bytes,
    rate: msg.rate,
    batch: Math.max(1, msg.batch),
    at: msg.at,
    epochMicros: Math.round(msg.at * 1000),
    stride: Math.ceil(msg.lines / 8),
    senderPorts: msg.senderPorts ?? null,
  };
  W.run = run;
  forgetLastRun();
  const byId = new Map(W.clients.map((c) => [c.id, c]));
  W.senders = [];
  for (const [id, index] of msg.mySenders) {
    const client = byId.get(id);
    if (!client) continue;
    client.senderIndex = index;
    W.senders.push({
      client,
      index,
      due: 0,
      written: 0,
      writing: false,
      // Spread the senders' lines evenly over each period.
      phaseMs: run.rate > 0 ? (index / run.senders) * (1000 / run.rate) : 0,
      done: false,
    });
  }
  W.expected = 0;
  for (const c of W.clients) {
    c.inRun = !c.closed && !c.slow;
    if (c.inRun) W.expected += run.senders * run.lines - (c.senderIndex >= 0 ? run.lines : 0);
  }
  W.cpuAtRun = cpuSeconds("self");
  setTimeout(tick, Math.max(0, run.at - nowMs()));
  return { expected: W.expected, senders: W.senders.length };
}

/** A second run on the same clients counts only its own lines. */
function forgetLastRun(): void {
  for (const c of W.clients) {
    c.seen = c.counts = c.maxSeq = null;
    c.unique = 0;
  }
  Object.assign(W, runTotals());
}

/** Marks lines due (paced: by the clock; flat out: all) and starts writers. */
function tick(): void {
  const run = W.run!;
  const now = nowMs();
  let nextDue = Infinity;
  for (const s of W.senders) {
    if (s.client.closed) {
      s.done = true;
      continue;
    }
    if (run.rate <= 0) {
      s.due = run.lines;
    } else {
      const elapsed = now - run.at - s.phaseMs;
      const due = elapsed < 0 ? 0 : Math.min(run.lines, Math.floor(elapsed * run.rate / 1000) + 1);
      if (due > s.due) {
        // How late the oldest newly due line is (the generator's own lag).
        const lag = now - (run.at + s.phaseMs + s.due * 1000 / run.rate);
        if (lag > W.maxSendLagMs) W.maxSendLagMs = lag;
        s.due = due;
      }
      if (s.due < run.lines) {
        nextDue = Math.min(nextDue, run.at + s.phaseMs + s.due * 1000 / run.rate);
      }
    }
    if (!s.writing && s.written < s.due) writeLines(s);
  }
  if (nextDue !== Infinity) setTimeout(tick, Math.max(0, nextDue - nowMs()));
}

const textEncoder = new TextEncoder();

/** Encodes lines [from, to) of a sender, all stamped now. */
function buildLines(index: number, from: number, to: number, bytes: number): Uint8Array {
  const out = new Uint8Array((to - from) * bytes);
  const now = nowMicros();
  if (W.firstSend === 0) W.firstSend = now;
  W.lastSend = now;
  // Relative to the run's start; a line built a moment early is clamped to 0.
  const sent = Math.max(0, now - W.run!.epochMicros);
  for (let seq = from; seq < to; seq++) {
    const start = (seq - from) * bytes;
    const base = `@${index}:${seq}:${sent}:`;
    const pad = padField(bytes - base.length - 3); // 3: its ':', then "$\n"
    if (!pad) throw new Error(`--bytes ${bytes} is too short for the payload header`);
    const { written } = textEncoder.encodeInto(`${base}${pad.text}:`, out.subarray(start));
    out.fill(PAD, start + written, start + written + pad.length);
    out[start + bytes - 2] = DOLLAR;
    out[start + bytes - 1] = NEWLINE;
  }
  return out;
}

/**
 * The pad length and its text for `room` bytes of both: the digits plus the
 * pad fill `room` exactly. Where no width fits (a pad of 999 takes 3 digits,
 * 1000 takes 4) the text has a leading zero ("0999"), which readers parse.
 */
function padField(room: number): { length: number; text: string } | undefined {
  for (let digits = 1; digits < 10; digits++) {
    const length = room - digits;
    if (length < 0) return undefined;
    if (String(length).length <= digits) {
      return { length, text: String(length).padStart(digits, "0") };
    }
  }
  return undefined;
}

async function writeLines(s: Sender): Promise<void> {
  const run = W.run!;
  s.writing = true;
  try {
    while (s.written < s.due && !s.client.closed) {
      const to = Math.min(s.due, s.written + run.batch);
      let bytes = buildLines(s.index, s.written, to, run.bytes);
      while (bytes.length) bytes = bytes.subarray(await s.client.conn.write(bytes));
      s.written = to;
    }
  } catch {
    W.sendErrors++;
    s.done = true;
  }
  s.writing = false;
  if (s.written >= run.lines) s.done = true;
}
