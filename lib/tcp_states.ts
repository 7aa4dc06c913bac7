/**
 * The TCP states by the notes' names (CLOSED ... CLOSE_WAIT, plus the two the
 * notes leave out), what each means in the notes' words, the order a
 * connection lives through them, the colour each is drawn in, and a name as
 * a user types it (`--state time-wait`) read as a state.
 *
 * @module
 */

import { UsageError } from "../utils.ts";

/** The notes' names; the kernel's /proc spells some differently (FIN_WAIT1, SYN_RECV). */
export type StateName =
  | "CLOSED"
  | "LISTEN"
  | "SYN_SENT"
  | "SYN_RCVD"
  | "ESTABLISHED"
  | "FIN_WAIT_1"
  | "FIN_WAIT_2"
  | "TIME_WAIT"
  | "CLOSE_WAIT"
  | "LAST_ACK"
  | "CLOSING";

/** One line per state, in the notes' words (LAST_ACK and CLOSING are not in the notes). */
export const MEANINGS: Record<StateName, string> = {
  CLOSED: "表示关闭状态（初始状态）",
  LISTEN: "服务器端的某个SOCKET处于监听状态，可以接受连接",
  SYN_SENT: "客户端已发送SYN报文，等待三次握手中的第2个报文",
  SYN_RCVD: "接收到SYN报文，三次握手的中间状态，很短暂，收到ACK后进入ESTABLISHED",
  ESTABLISHED: "表示连接已经建立",
  FIN_WAIT_1: "主动关闭，已向对方发送FIN报文，等待对方的ACK（一般较难见到）",
  FIN_WAIT_2: "主动关闭方发出FIN收到ACK以后，半关闭：只能接收数据，不能发",
  TIME_WAIT: "收到了对方的FIN报文，并发送出了ACK报文，等2MSL后即可回到CLOSED",
  CLOSE_WAIT: "对方发来FIN，系统已回应ACK，等待本方close()",
  LAST_ACK: "被动关闭方close()发出FIN后，等待对方最后的ACK（笔记未列出）",
  CLOSING: "双方同时关闭：发出FIN后又收到对方的FIN，等待ACK（笔记未列出）",
};

/** How each state is painted on a terminal: one colour per phase of a connection. */
export const STATE_COLOURS: Record<
  StateName,
  "gray" | "blue" | "cyan" | "green" | "magenta" | "yellow"
> = {
  CLOSED: "gray",
  LISTEN: "blue",
  SYN_SENT: "cyan",
  SYN_RCVD: "cyan",
  ESTABLISHED: "green",
  FIN_WAIT_1: "magenta",
  FIN_WAIT_2: "magenta",
  CLOSE_WAIT: "magenta",
  LAST_ACK: "magenta",
  CLOSING: "magenta",
  TIME_WAIT: "yellow",
};

/** The order a connection lives through them: used to sort, never to guess. */
const LIFECYCLE: StateName[] = [
  "CLOSED",
  "LISTEN",
  "SYN_SENT",
  "SYN_RCVD",
  "ESTABLISHED",
  "FIN_WAIT_1",
  "CLOSE_WAIT",
  "FIN_WAIT_2",
  "CLOSING",
  "LAST_ACK",
  "TIME_WAIT",
];

/** Every state, in the order a connection lives through them. */
export const ALL_STATES: readonly StateName[] = LIFECYCLE;

/** The kernel's and `ss`'s spelling (SYN_RECV, syn-recv) of a state the notes spell SYN_RCVD. */
const ALIASES: Record<string, StateName> = { SYNRECV: "SYN_RCVD" };

/**
 * A state's name as a user types it (`time-wait`, `TIME_WAIT`, `syn-recv`):
 * case, `-` and `_` do not matter. Undefined for a name that is no state.
 */
export function stateNamed(text: string): StateName | undefined {
  const bare = (name: string) => name.toUpperCase().replace(/[-_]/g, "");
  return LIFECYCLE.find((state) => bare(state) === bare(text)) ?? ALIASES[bare(text)];
}

/**
 * States named as a user types them (see stateNamed); a name that is no
 * state is a UsageError naming `flag` and listing the states.
 */
export function statesNamed(names: string[], flag: string): StateName[] {
  return names.map((name) => {
    const state = stateNamed(name);
    if (state) return state;
    throw new UsageError(`${flag}: no state '${name}'; the states: ${LIFECYCLE.join(", ")}`);
  });
}

/** `states` without repeats, in the order a connection lives through them. */
export function byLifecycle(states: StateName[]): StateName[] {
  return [...new Set(states)].sort((a, b) => LIFECYCLE.indexOf(a) - LIFECYCLE.indexOf(b));
}
