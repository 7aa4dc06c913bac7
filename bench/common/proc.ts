/**
 * bench/common/proc.ts: what the bench reads about a process from /proc: CPU
 * seconds, resident memory, the open-file limit, whether it still runs, and
 * waiting for it to go quiet.
 */

import { delay, nowMs } from "./time.ts";

let clockTicks: number | undefined;

/** Clock ticks per second for /proc/PID/stat (`getconf CLK_TCK`, read once). */
function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      const out = new Deno.Command("getconf", { args: ["CLK_TCK"], stderr: "null" }).outputSync();
      clockTicks = Number(new TextDecoder().decode(out.stdout).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** user + system CPU seconds of a process (all its threads); NaN if gone. */
export function cpuSeconds(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / clkTck();
  } catch {
    return NaN;
  }
}

/** Resident set size in KiB (VmRSS), NaN if the process is gone. */
export function rssKiB(pid: number | "self"): number {
  return statusField(pid, "VmRSS");
}

function statusField(pid: number | "self", name: string): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Soft "Max open files" of a process. */
export function fdLimit(pid: number | "self"): number {
  try {
    const limits = Deno.readTextFileSync(`/proc/${pid}/limits`);
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    return match ? (match[1] === "unlimited" ? Infinity : Number(match[1])) : NaN;
  } catch {
    return NaN;
  }
}

export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Waits until the process's CPU use drops below 10% of a core (at most `maxMs`); ms waited. */
export async function settle(pid: number, maxMs: number): Promise<number> {
  const started = nowMs();
  let last = cpuSeconds(pid);
  let quiet = 0;
  // Quiet for QUIET_WINDOWS windows in a row (about a second), not one: the
  // chat tells the room of its newcomers up to half a second after they
  // connect (it waits for a first /nick), then in batches, and that work
  // must be done before a scenario measures anything.
  while (nowMs() - started < maxMs) {
    await delay(300);
    const now = cpuSeconds(pid);
    if (!Number.isFinite(now)) break;
    quiet = now - last <= 0.03 ? quiet + 1 : 0;
    if (quiet >= QUIET_WINDOWS) break;
    last = now;
  }
  return nowMs() - started;
}

const QUIET_WINDOWS = 3;
