/**
 * bench/common/children.ts: every child process the bench starts (servers,
 * load workers) is tracked here, so Ctrl+C, SIGTERM or a failed run can end
 * them all; and the shell prologue that raises their open-file limit.
 */

/** The fd limit the bench asks for; the hard limit is used when it is lower. */
const WANTED_FD_LIMIT = 65536;

/**
 * `bash -c` prologue raising the open-file limit (soft and hard) before the
 * real command runs; falls back to the current hard limit when raising the
 * hard limit is not permitted (e.g. no CAP_SYS_RESOURCE in a container).
 */
export const RAISE_FD_LIMIT =
  `ulimit -n ${WANTED_FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true`;

export interface Killable {
  kill(): void;
}

const children = new Set<Killable>();

/** Tracks a child; returns the function that stops tracking it. */
export function track(child: Killable): () => void {
  children.add(child);
  return () => children.delete(child);
}

/** Ends every tracked child (SIGKILL): servers and load workers. */
export function killAllTracked(): void {
  for (const child of [...children]) {
    try {
      child.kill();
    } catch {
      // Already gone.
    }
  }
  children.clear();
}

/**
 * On Ctrl+C or SIGTERM: kill every child this process started, then exit
 * 130/143. Returns a function removing the handlers.
 */
export function cleanupOnSignal(onSignal?: () => void): () => void {
  const handlers: [Deno.Signal, () => void][] = [];
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const handler = () => {
      onSignal?.();
      killAllTracked();
      console.error(`\n${signal}: stopped; servers and load workers killed`);
      Deno.exit(signal === "SIGINT" ? 130 : 143);
    };
    Deno.addSignalListener(signal, handler);
    handlers.push([signal, handler]);
  }
  return () => {
    for (const [signal, handler] of handlers) {
      try {
        Deno.removeSignalListener(signal, handler);
      } catch {
        // Already removed.
      }
    }
  };
}
