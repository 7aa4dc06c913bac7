/**
 * A step's textbook picture: the segments on the wire between client and
 * server, and the states each end is in once the segments above have
 * passed. states.ts --demo writes one per step; the timeline draws them.
 *
 * @module
 */

import type { StateName } from "./tcp_states.ts";

/** The two ends of a connection, as the textbooks draw them: client left, server right. */
export type End = "client" | "server";

/** Both ends, client first: the order every picture and table uses. */
export const ENDS: readonly End[] = ["client", "server"];

/** One TCP segment on the wire, named as the textbook names it (SYN, ACK, FIN, data...). */
export interface Segment {
  /** The end that sends it. */
  from: End;
  /** The end that receives it. */
  to: End;
  /** Its name: "SYN", "ACK", 'data "hello"'... */
  segment: string;
}

/**
 * A row of a picture: a segment on the wire, or the states the ends are in
 * once the segments above it have passed.
 */
export type PictureRow = Segment | Partial<Record<End, StateName>>;

/** A segment the client sends. */
export function clientSends(segment: string): Segment {
  return { from: "client", to: "server", segment };
}

/** A segment the server sends. */
export function serverSends(segment: string): Segment {
  return { from: "server", to: "client", segment };
}

/** The three-way handshake and the states it passes through. */
export const HANDSHAKE: readonly PictureRow[] = [
  clientSends("SYN"),
  { client: "SYN_SENT", server: "SYN_RCVD" },
  serverSends("SYN+ACK"),
  clientSends("ACK"),
  { client: "ESTABLISHED", server: "ESTABLISHED" },
];

/** Is this row a segment (not states)? */
export function isSegment(row: PictureRow): row is Segment {
  return "segment" in row;
}

/**
 * The states a picture has each end go through, in order. A state drawn
 * again (an end that stays in it while the other moves on) is not a new one.
 */
export function expectedOf(picture: readonly PictureRow[]): Record<End, StateName[]> {
  const expected: Record<End, StateName[]> = { client: [], server: [] };
  for (const row of picture) {
    if (isSegment(row)) continue;
    for (const end of ENDS) {
      const state = row[end];
      if (state && expected[end].at(-1) !== state) expected[end].push(state);
    }
  }
  return expected;
}
