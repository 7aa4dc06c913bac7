// A program on a real terminal for tests: a private tmux server (its own
// socket, removed at the end), keys typed with send-keys, the screen read
// with capture-pane. What a person at the terminal would see.

import { delay, run } from "./helpers.ts";

export interface Terminal {
  /** Types text literally (no key names). */
  type(text: string): Promise<void>;
  /** Presses keys by tmux name: "Enter", "C-c", "C-d", "Up". */
  press(...keys: string[]): Promise<void>;
  /** The screen's rows now (with `history`, the scrollback above it too). */
  screen(history?: boolean): Promise<string[]>;
  /** Polls the screen until `check` passes; returns its rows. */
  waitFor(what: string, check: (rows: string[]) => boolean, timeoutMs?: number): Promise<string[]>;
  /** The cursor's column and row. */
  cursor(): Promise<{ x: number; y: number }>;
  /** Resizes the window, as a user dragging its corner (the program gets SIGWINCH). */
  resize(columns: number, rows: number): Promise<void>;
  /** Kills the session and removes its socket. */
  close(): Promise<void>;
}

/**
 * Starts `command` (a shell command line) on a `columns` x `rows` terminal.
 * Append `; echo "exit=$?"; sleep 60` to see how it ended.
 */
export async function openTerminal(
  command: string,
  { columns = 80, rows = 24 }: { columns?: number; rows?: number } = {},
): Promise<Terminal> {
  const socketDir = await Deno.makeTempDir({ prefix: "tmux_" });
  const tmux = async (...args: string[]) => {
    const result = await run("tmux", ["-S", `${socketDir}/socket`, ...args]);
    if (result.code !== 0) throw new Error(`tmux ${args[0]}: ${result.stderr}`);
    return result.stdout;
  };
  await tmux(
    "new-session",
    "-d",
    "-s",
    "t",
    "-x",
    String(columns),
    "-y",
    String(rows),
    command,
  );
  const screen = async (history = false) =>
    (await tmux("capture-pane", "-p", "-t", "t", ...(history ? ["-S", "-"] : []))).split("\n");
  return {
    type: async (text) => void await tmux("send-keys", "-t", "t", "-l", text),
    press: async (...keys) => void await tmux("send-keys", "-t", "t", ...keys),
    screen,
    async waitFor(what, check, timeoutMs = 8000) {
      const deadline = Date.now() + timeoutMs;
      let rows = await screen();
      while (!check(rows)) {
        if (Date.now() > deadline) {
          throw new Error(`screen never showed ${what}:\n${rows.join("\n")}`);
        }
        await delay(50);
        rows = await screen();
      }
      return rows;
    },
    async cursor() {
      const [x, y] = (await tmux("display-message", "-p", "-t", "t", "#{cursor_x} #{cursor_y}"))
        .trim().split(" ").map(Number);
      return { x, y };
    },
    resize: async (columns, rows) =>
      void await tmux("resize-window", "-t", "t", "-x", String(columns), "-y", String(rows)),
    async close() {
      await run("tmux", ["-S", `${socketDir}/socket`, "kill-server"]);
      await Deno.remove(socketDir, { recursive: true });
    },
  };
}
