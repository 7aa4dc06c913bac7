/**
 * bench/load/worker/connect.ts: opening a worker's clients, a few at a time,
 * each waiting for the room's first line before the next connects.
 */

import { type ConnectReply, type ConnectRequest } from "../protocol.ts";
import { readLoop } from "./receive.ts";
import { type Receiver, W } from "./state.ts";

function newReceiver(
  id: number,
  conn: Deno.TcpConn | Deno.TlsConn,
  slow: boolean,
  readBuffer: number,
): Receiver {
  return {
    id,
    conn,
    buf: new Uint8Array(slow ? 0 : readBuffer),
    tail: 0,
    skipping: false,
    inHistory: false,
    ready: slow,
    closed: false,
    slow,
    inRun: false,
    senderIndex: -1,
    counts: null,
    maxSeq: null,
    seen: null,
    unique: 0,
    onReady: null,
    localPort: conn.localAddr.port,
    serverPort: conn.remoteAddr.port,
  };
}

/** How far one client got: not connected, connected, or welcomed by the room (ready). */
type ConnectOutcome = "failed" | "connected" | "ready";

/**
 * Connects one client and, unless it is slow (never reads), waits for its
 * first line (chat_server's welcome, ncat's announce) until `deadline`: the
 * room has then accepted and registered it, so at most `concurrency`
 * handshakes wait in the server's accept queue at once.
 */
async function connectOne(
  host: string,
  port: number,
  id: number,
  slow: boolean,
  readBuffer: number,
  deadline: number,
  caCert: string | undefined,
): Promise<ConnectOutcome> {
  let conn: Deno.TcpConn | Deno.TlsConn;
  try {
    conn = await Deno.connect({ hostname: host, port });
  } catch (err) {
    W.connectFailed++;
    W.firstError ||= err instanceof Error ? err.message : String(err);
    return "failed";
  }
  try {
    conn.setNoDelay(true);
  } catch {
    // Reset already; the read loop notices.
  }
  if (caCert !== undefined) {
    // TLS over the TCP socket whose Nagle is already off (a TlsConn from
    // Deno.connectTls has no setNoDelay, and the senders' small lines would
    // wait for ACKs): the option stays on the socket under TLS.
    const tcp = conn;
    try {
      conn = await Deno.startTls(tcp, { hostname: host, caCerts: [caCert] });
    } catch (err) {
      tcp.close();
      W.connectFailed++;
      W.firstError ||= err instanceof Error ? err.message : String(err);
      return "failed";
    }
  }
  const c = newReceiver(id, conn, slow, readBuffer);
  W.clients.push(c);
  if (slow) return "ready";
  const isReady = new Promise<void>((resolve) => (c.onReady = resolve));
  readLoop(c);
  const left = deadline - Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([isReady, new Promise((r) => (timer = setTimeout(r, Math.max(0, left))))]);
  clearTimeout(timer);
  return c.ready && !c.closed ? "ready" : "connected";
}

/** Connects `msg.ids`, `msg.concurrency` at a time, until all are tried or the deadline. */
export async function connectClients(msg: ConnectRequest): Promise<ConnectReply> {
  const { ids, ports } = msg;
  const slowIds = new Set<number>(msg.slowIds);
  const started = performance.now();
  const deadline = Date.now() + msg.timeoutMs;
  const failedBefore = W.connectFailed;
  let next = 0;
  let connected = 0;
  let ready = 0;
  const lanes = Array.from({ length: Math.max(1, msg.concurrency) }, async () => {
    while (next < ids.length && Date.now() < deadline) {
      const i = next++;
      // One port for all, or one per id (clients spread over several instances).
      const port = ports ? ports[i] : msg.port ?? 0;
      const outcome = await connectOne(
        msg.host,
        port,
        ids[i],
        slowIds.has(ids[i]),
        msg.readBuffer,
        deadline,
        msg.caCert,
      );
      if (outcome !== "failed") connected++;
      if (outcome === "ready") ready++;
    }
  });
  await Promise.all(lanes);
  return {
    attempted: next,
    connected,
    ready,
    failed: W.connectFailed - failedBefore,
    closed: W.clients.filter((c) => c.closed).length,
    open: W.clients.filter((c) => !c.closed).length,
    ms: performance.now() - started,
    firstError: W.firstError,
  };
}
