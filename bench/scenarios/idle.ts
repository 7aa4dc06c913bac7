/**
 * bench/scenarios/idle.ts: idle, clients that connect and say nothing, in
 * steps up to 10,000: how many the server holds, and its resident memory per
 * client just after connecting and (judged) after the room was held idle.
 * Beside chat_server.ts and its peers: the Deno.listen floor (--server floor,
 * in the default list), a bare accept loop with one pending 128-byte read per
 * connection, the least a Deno server of chat_server's design can hold a
 * client in. It relays nothing, so this is the only scenario it is in.
 */

import { fdLimit, rssKiB, settle } from "../common/proc.ts";
import { delay } from "../common/time.ts";
import { LoadGroup } from "../load/group.ts";
import { fmt } from "../report/format.ts";
import { type DirectedRow } from "../report/summary.ts";
import { type Context, newRecord, type Row, type RunRecord, type Scenario } from "../scenario.ts";
import { type ServerKind, startServer } from "../servers/compared.ts";
import { describeDeath, type RunningServer } from "../servers/process.ts";

/** How long the empty and the full server are held before their RSS is taken. */
const IDLE_HOLD_MS = 40_000;

export function idleScenario(ctx: Context): Scenario {
  const steps = ctx.options.quick ? [0, 1000, 2500] : [0, 1000, 2500, 5000, 10_000];
  return {
    name: "idle",
    title: `idle: idle clients connected in steps ${steps.map(fmt.count).join(", ")}; ` +
      `server RSS per step after it settles`,
    servers: withFloor(ctx.options.servers, ctx.options.floor),
    runs: ctx.options.runs,
    rows: idleRows(steps),
    notes: [
      "KB/client: (server RSS - the empty server's RSS) / clients, the empty server's taken " +
      `after the same ${IDLE_HOLD_MS / 1000} s held idle; load generator RSS: all its workers'`,
    ],
    run: (server, index) => idleRun(ctx, server, index, steps),
  };
}

/** The servers, the floor (when asked) beside chat_server.ts. */
function withFloor(servers: ServerKind[], floor: boolean): ServerKind[] {
  if (!floor) return servers;
  const at = servers.indexOf("chat") + 1;
  return [...servers.slice(0, at), "floor", "floor1", ...servers.slice(at)];
}

function idleRows(steps: number[]): Row[] {
  const last = steps[steps.length - 1];
  const rows: DirectedRow[] = [{ key: "rssEmptyMB", label: "RSS, empty server", fmt: fmt.mb }];
  for (const step of steps) rows.push(...stepRows(step, step === last));
  rows.push({
    key: `kbPerClientHeld@${last}`,
    label: `${fmt.count(last)}: KB/client, after held idle ${IDLE_HOLD_MS / 1000} s`,
    fmt: fmt.kb,
    target: { text: "<= 8.2 KB", ok: (v) => v <= 8.2 },
  });
  rows.push({
    key: "mostHeld",
    label: "most clients held at once",
    fmt: fmt.count,
    better: "higher",
  }, {
    key: "loadGenRssMB",
    label: "load generator RSS, last step",
    fmt: fmt.mb,
    noRatio: true,
  });
  return rows;
}

/** The rows of one step; the last step's head count is judged (all held). */
function stepRows(step: number, isLast: boolean): DirectedRow[] {
  return [
    {
      key: `held@${step}`,
      label: `${fmt.count(step)}: clients held`,
      fmt: fmt.count,
      better: "higher",
      target: isLast ? { text: `= ${fmt.count(step)}`, ok: (v) => v >= step } : undefined,
    },
    { key: `rssMB@${step}`, label: `${fmt.count(step)}: server RSS`, fmt: fmt.mb },
    {
      key: `kbPerClient@${step}`,
      label: `${fmt.count(step)}: KB/client, just after connecting`,
      fmt: fmt.kb,
      target: isLast ? { text: "<= 8.2 KB", ok: (v) => v <= 8.2 } : undefined,
    },
    { key: `connectS@${step}`, label: `${fmt.count(step)}: time to connect step`, fmt: fmt.s },
  ];
}

async function idleRun(
  ctx: Context,
  server: ServerKind,
  index: number,
  steps: number[],
): Promise<RunRecord> {
  const record = newRecord(server, index);
  const room = await startServer(server, ctx.chat);
  let group: LoadGroup | undefined;
  try {
    record.notes.push(`server fd limit ${fdLimit(room.pid)}`);
    group = await LoadGroup.start(ctx.workers(2));
    await settle(room.pid, 5000);
    // V8 returns young-generation pages a quiet server no longer needs
    // some 30 s after its last full collection, to the empty server as to
    // the full one: both are measured after the same idle hold.
    await delay(IDLE_HOLD_MS);
    const empty = rssKiB(room.pid);
    record.metrics.rssEmptyMB = empty / 1024;
    const last = steps[steps.length - 1];
    let heldBefore = 0;
    for (const step of steps) {
      if (step === 0) continue;
      const held = await connectStep(record, room, group, step, heldBefore);
      if (held === undefined) break;
      heldBefore = held;
      await measureStep(record, room, group, step, empty);
      if (step === last && !(await measureHeld(record, room, step, empty))) break;
    }
  } finally {
    await room.stop();
    await group?.close();
  }
  return record;
}

/**
 * Connects the step's new clients; the clients held, or undefined (with the
 * record's capacityFailure set) when the server did not hold them all.
 */
async function connectStep(
  record: RunRecord,
  room: RunningServer,
  group: LoadGroup,
  step: number,
  heldBefore: number,
): Promise<number | undefined> {
  const connected = await group.connect(room.host, room.port, step - group.clients, {
    readBuffer: 4096,
    timeoutMs: 240_000,
  });
  record.metrics[`connectS@${step}`] = connected.ms / 1000;
  const alive = room.alive();
  const open = alive ? connected.open : 0;
  record.metrics[`held@${step}`] = open;
  // Before a crash: the clients of earlier steps plus those that got in now.
  const most = alive ? open : heldBefore + connected.ready;
  record.metrics.mostHeld = Math.max(record.metrics.mostHeld ?? 0, most);
  if (open >= step) return open;
  const death = describeDeath(room);
  record.capacityFailure = `held ${open} of ${step} clients` +
    (alive ? "" : ` (${most} before it died)`) +
    (death ? `; ${death}` : connected.firstError ? ` (${connected.firstError})` : "");
  return undefined;
}

/** The server's RSS once it settled after the step's connects, and the load workers'. */
async function measureStep(
  record: RunRecord,
  room: RunningServer,
  group: LoadGroup,
  step: number,
  emptyKiB: number,
): Promise<void> {
  await settle(room.pid, 20_000);
  await delay(500);
  const rss = rssKiB(room.pid);
  record.metrics[`rssMB@${step}`] = rss / 1024;
  record.metrics[`kbPerClient@${step}`] = (rss - emptyKiB) / step;
  record.metrics.loadGenRssMB = group.workers
    .reduce((sum, w) => sum + (rssKiB(w.pid) || 0), 0) / 1024;
}

/** The judged figure: RSS per client after the room was held idle; false if the server died. */
async function measureHeld(
  record: RunRecord,
  room: RunningServer,
  step: number,
  emptyKiB: number,
): Promise<boolean> {
  await delay(IDLE_HOLD_MS);
  if (!room.alive()) {
    record.capacityFailure = `died holding ${step} clients; ${describeDeath(room)}`;
    return false;
  }
  record.metrics[`kbPerClientHeld@${step}`] = (rssKiB(room.pid) - emptyKiB) / step;
  return true;
}
