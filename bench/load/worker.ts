/**
 * bench/load/worker.ts: one load worker process, holding its share of a load
 * generator's clients. Started by load/group.ts (through `bash -c 'ulimit -n
 * ...; exec ...'`, so thousands of sockets fit) and driven with JSON lines on
 * stdin (load/protocol.ts); it exits when its stdin closes, so a dead
 * coordinator never leaves workers behind.
 *
 * Its parts are in load/worker/: its state, connecting, sending, receiving
 * (where the payload format and the checks are described) and reporting.
 */

import { isObject } from "../common/json.ts";
import { fdLimit } from "../common/proc.ts";
import { nowMs } from "../common/time.ts";
import {
  type ClockReply,
  type CloseReply,
  decodeRequest,
  type HelloReply,
  type WorkerRequest,
} from "./protocol.ts";
import { connectClients } from "./worker/connect.ts";
import { drainSlow, report, stats } from "./worker/report.ts";
import { startRun } from "./worker/send.ts";
import { closeClient, W } from "./worker/state.ts";

/** Runs one request against this worker's clients. */
async function handle(request: WorkerRequest): Promise<object> {
  switch (request.cmd) {
    case "hello":
      return { pid: Deno.pid, fdLimit: fdLimit("self") } satisfies HelloReply;
    case "clock":
      return { now: nowMs() } satisfies ClockReply;
    case "connect":
      return await connectClients(request);
    case "run":
      return startRun(request);
    case "stats":
      return stats();
    case "report":
      return report();
    case "drainSlow":
      return await drainSlow(request);
    case "close":
      for (const c of W.clients) closeClient(c);
      return { closed: W.clients.length } satisfies CloseReply;
  }
}

/**
 * Reads requests from stdin, one JSON object a line, and answers each on
 * stdout with its id; exits when stdin closes (the coordinator is gone).
 */
async function workerMain(): Promise<void> {
  const stdout = Deno.stdout;
  const encoder = new TextEncoder();
  const reply = async (message: object) => {
    let bytes = encoder.encode(JSON.stringify(message) + "\n");
    while (bytes.length) bytes = bytes.subarray(await stdout.write(bytes));
  };
  // Replies are written one after another, never interleaved.
  let output = Promise.resolve();
  const send = (message: object) => (output = output.then(() => reply(message)).catch(() => {}));
  const onLine = (line: string) => {
    let id: unknown;
    let request: WorkerRequest;
    try {
      const value: unknown = JSON.parse(line);
      id = isObject(value) ? value.id : undefined;
      request = decodeRequest(value).request;
    } catch (err) {
      send({ id, error: err instanceof Error ? err.message : String(err) });
      return;
    }
    handle(request).then(
      (result) => send({ ...result, id }),
      (err) => send({ id, error: err instanceof Error ? err.message : String(err) }),
    );
  };
  const decoder = new TextDecoder();
  const input = new Uint8Array(64 * 1024);
  let pending = "";
  while (true) {
    const n = await Deno.stdin.read(input);
    if (n === null) break;
    pending += decoder.decode(input.subarray(0, n), { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim()) onLine(line);
    }
  }
  // The coordinator closed our stdin (or died): close everything and leave.
  for (const c of W.clients) closeClient(c);
  await output;
  Deno.exit(0);
}

if (import.meta.main) await workerMain();
