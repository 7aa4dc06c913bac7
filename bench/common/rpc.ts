/**
 * bench/common/rpc.ts: a child process spoken to with one JSON object per
 * line over its stdin and stdout. Requests carry an `id`, and the child
 * answers each with the same `id` (and `error` when it failed). Replies are
 * handed over as `unknown`-valued objects: what they hold is for the caller's
 * protocol to narrow (see load/protocol.ts).
 */

import { track } from "./children.ts";
import { isObject, type JsonObject } from "./json.ts";
import { readLines } from "./lines.ts";

interface Pending {
  resolve: (reply: JsonObject) => void;
  reject: (error: Error) => void;
}

export class RpcChild {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #encoder = new TextEncoder();
  #untrack: () => void;
  exited = false;
  readonly done: Promise<void>;

  constructor(command: string, args: string[], env?: Record<string, string>) {
    this.child = new Deno.Command(command, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env,
    }).spawn();
    this.pid = this.child.pid;
    this.#writer = this.child.stdin.getWriter();
    this.#untrack = track({ kill: () => this.kill() });
    const lines = readLines(this.child.stdout, (line) => this.#onLine(line));
    this.done = Promise.all([lines, this.child.status]).then(() => {
      this.exited = true;
      this.#untrack();
      for (const { reject } of this.#pending.values()) {
        reject(new Error(`load worker ${this.pid} exited`));
      }
      this.#pending.clear();
    });
  }

  #onLine(line: string): void {
    if (!line.trim()) return;
    const message = parseJsonLine(line);
    if (!message) {
      console.error(`[worker ${this.pid}] ${line}`); // not a reply: pass it on as a log line
      return;
    }
    const id = message.id;
    const waiter = typeof id === "number" ? this.#pending.get(id) : undefined;
    if (!waiter || typeof id !== "number") return;
    this.#pending.delete(id);
    if (message.error) waiter.reject(new Error(`worker ${this.pid}: ${String(message.error)}`));
    else waiter.resolve(message);
  }

  /** Sends `{ id, cmd, ...params }`; resolves with the reply of the same id. */
  call(cmd: string, params: object = {}): Promise<JsonObject> {
    if (this.exited) return Promise.reject(new Error(`load worker ${this.pid} exited`));
    const id = this.#nextId++;
    const promise = new Promise<JsonObject>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    this.#writer.write(this.#encoder.encode(JSON.stringify({ id, cmd, ...params }) + "\n"))
      .catch(() => {});
    return promise;
  }

  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }

  /** Closes stdin (the worker exits on EOF); SIGKILL after `timeoutMs`. */
  async close(timeoutMs = 5000): Promise<void> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => this.kill(), timeoutMs);
    await this.done;
    clearTimeout(timer);
  }
}

function parseJsonLine(line: string): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
