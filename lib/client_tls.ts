/**
 * chat_client.ts --tls: the connection over TLS, with the handshake done
 * before the chat starts, so a certificate that does not verify is one
 * error: line saying what to do (trust the server's own certificate with
 * --ca, or check that the server speaks TLS at all), not a failed first
 * read; and --ca FILE, the PEM certificates to trust instead of the
 * system's roots.
 *
 * @module
 */

import { Failure, UsageError } from "../utils.ts";
import { readFlagFile } from "./flag_files.ts";
import { closeQuietly, formatAddress, withHints } from "./net.ts";
import { describeFailure } from "./client_ending.ts";

/**
 * TLS to `host`:`port`, verified against `caCerts` (or the system's roots),
 * handshake done. A Deno.TlsConn has no setNoDelay, and Nagle's algorithm
 * would hold each small line back for up to 40 ms behind the last one's ACK:
 * so a plain TCP connection first, Nagle off, then TLS over it (startTls).
 */
export async function connectTls(
  host: string,
  port: number,
  caCerts?: string[],
): Promise<Deno.TlsConn> {
  const where = formatAddress({ hostname: host, port });
  const tcp = await withHints(`connect to ${where}`, () => Deno.connect({ hostname: host, port }));
  tcp.setNoDelay(true);
  tcp.setKeepAlive(true);
  const conn = await Deno.startTls(tcp, { hostname: host, caCerts });
  try {
    await conn.handshake();
  } catch (err) {
    closeQuietly(conn);
    throw new Failure(
      `TLS with ${where} failed: ${describeFailure(err)}; ${tlsHint(err, caCerts)}`,
    );
  }
  return conn;
}

/** What to try after a failed handshake, e.g. trusting the server's own certificate. */
function tlsHint(err: unknown, caCerts?: string[]): string {
  // Plain text where a TLS record should be: the server does not speak TLS.
  if (/corrupt message|InvalidContentType/i.test(String(err))) {
    return "is the server using TLS? (chat_server.ts needs --tls-cert and --tls-key)";
  }
  return caCerts === undefined
    ? "if the server's certificate is its own (self-signed), pass --ca FILE with it"
    : "check that --ca names the certificate the server uses and --host a name it is for";
}

/** --ca FILE: PEM certificates to verify the server against, instead of the system's. */
export async function readCaFile(path: string): Promise<string> {
  const pem = await readFlagFile(path, "--ca");
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new UsageError(`--ca ${path}: not a PEM certificate (no BEGIN CERTIFICATE line)`);
  }
  return pem;
}
