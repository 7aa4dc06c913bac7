/**
 * Notices a chat server that is gone without a FIN or RST (host crashed,
 * cable pulled, a NAT that forgot the connection): the note's `recv()` would
 * wait forever, and TCP keep-alive probes only after 2 hours idle.
 *
 * Half the timeout after the last byte received, the watch sends
 * "/ping alive-N"; a live chat_server.ts answers "* pong alive-N" at once,
 * and any byte at all restarts the clock. At the full timeout without a byte
 * it declares the server dead. It owns that dialogue: the answers to its own
 * pings are recognised so they can be hidden from the user.
 *
 * @module
 */

/** What the watch needs from the chat. */
export interface SilenceHooks {
  /** Send `line` (a "/ping alive-N" command) to the server. */
  send(line: string): void;
  /** Nothing arrived for the whole timeout: the server or the network is gone. */
  dead(): void;
}

/** A running watch; idle until start(). */
export interface SilenceWatch {
  /** Starts the clock: call once the peer has shown it is chat_server.ts, the one that answers. */
  start(): void;
  /** A byte arrived: the server is alive, the clock restarts. */
  heard(): void;
  /** True for the answer to one of the watch's own pings, which the user should not see. */
  isOwnPong(line: string): boolean;
  /** Stops the clock for good. */
  stop(): void;
}

/** A watch that calls `hooks.dead` after `timeoutMs` of silence (0: never). */
export function watchSilence(timeoutMs: number, hooks: SilenceHooks): SilenceWatch {
  let lastHeard = Date.now();
  let pinged = false;
  let pings = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const unanswered = new Set<string>();

  const check = () => {
    const silent = Date.now() - lastHeard;
    if (silent >= timeoutMs) return hooks.dead();
    if (!pinged && silent >= timeoutMs / 2) {
      pinged = true;
      const token = `alive-${++pings}`;
      unanswered.add(token);
      hooks.send(`/ping ${token}`);
    }
    // A byte heard since the last check moved lastHeard: this wakes later.
    timer = setTimeout(check, (pinged ? timeoutMs : timeoutMs / 2) - silent);
  };

  return {
    start() {
      if (timeoutMs === 0 || timer !== undefined) return;
      lastHeard = Date.now();
      timer = setTimeout(check, timeoutMs / 2);
    },
    heard() {
      lastHeard = Date.now();
      pinged = false;
    },
    isOwnPong(line) {
      const token = /^\* pong (alive-\d+)$/.exec(line)?.[1];
      return token !== undefined && unanswered.delete(token);
    },
    stop: () => clearTimeout(timer),
  };
}
