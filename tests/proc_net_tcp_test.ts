// Tests of lib/proc_net_tcp.ts: the /proc/net/tcp(6) parser on real kernel lines.

import assert from "node:assert/strict";
import { decodeAddress, parseProcNetTcp } from "../lib/proc_net_tcp.ts";

// Real lines, copied from /proc/net/tcp and /proc/net/tcp6 on Linux 6.18.
const TCP_FIXTURE = [
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5441 1 00000000bf80e203 100 0 0 10 0",
  "   9: 0100007F:D670 0100007F:B6D7 01 00000000:00000000 00:00000000 00000000     0        0 26035 2 00000000cee00e38 20 0 0 10 -1",
  "  29: 0100007F:9266 0100007F:8E05 04 003B4E87:00000000 01:00000012 00000000     0        0 0 2 00000000cd29b3ea 20 0 0 11 -1",
  "  34: 0100007F:8E05 0100007F:9266 01 00000000:0001F3E5 00:00000000 00000000     0        0 52487 2 00000000cd29b171 20 4 0 10 -1",
  "   5: 0100007F:C912 0100007F:B319 06 00000000:00000000 03:0000159F 00000000     0        0 0 3 000000001e3897dc",
  "",
].join("\n");

const TCP6_FIXTURE = [
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  "   0: 00000000000000000000000000000000:B6D7 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 26034 1 00000000c2aa813d 100 0 0 10 0",
  "   2: 00000000000000000000000001000000:9720 00000000000000000000000001000000:B08F 01 00000000:00000000 00:00000000 00000000     0        0 26038 2 0000000090d7d4c6 20 0 0 10 -1",
  "   3: 0000000000000000FFFF00000100007F:B6D7 0000000000000000FFFF00000100007F:D670 01 00000000:00000000 00:00000000 00000000     0        0 26036 1 00000000b53a413e 20 0 0 10 -1",
  "   0: 000000FD000000000000000002000000:D9F6 000000FD000000000000000002000000:ABBD 06 00000000:00000000 03:0000176E 00000000     0        0 0 3 000000004bf5c981",
].join("\n");

Deno.test("proc_net_tcp: decodeAddress undoes the kernel's byte order", () => {
  assert.deepEqual(decodeAddress("0100007F:1F90"), { hostname: "127.0.0.1", port: 8080 });
  assert.deepEqual(decodeAddress("00000000:0000"), { hostname: "0.0.0.0", port: 0 });
  assert.deepEqual(decodeAddress("0100A8C0:0050"), { hostname: "192.168.0.1", port: 80 });
  assert.deepEqual(decodeAddress("00000000000000000000000001000000:B08F"), {
    hostname: "::1",
    port: 45199,
  });
  assert.deepEqual(decodeAddress("00000000000000000000000000000000:0000"), {
    hostname: "::",
    port: 0,
  });
  assert.equal(decodeAddress("000000FD000000000000000002000000:D9F6").hostname, "fd00::2");
  // fe80::fc:ff:fe00:1: a zero run in the middle, groups without leading zeros.
  assert.equal(
    decodeAddress("000080FE00000000FF00FC00010000FE:0016").hostname,
    "fe80::fc:ff:fe00:1",
  );
  // IPv4-mapped (::ffff:127.0.0.1) is shown as the IPv4 address it is.
  assert.equal(decodeAddress("0000000000000000FFFF00000100007F:B6D7").hostname, "127.0.0.1");
  assert.throws(() => decodeAddress("0100007F"), /not a \/proc\/net\/tcp address/);
  assert.throws(() => decodeAddress("0100007:1F90"), /not a \/proc\/net\/tcp address/);
});

Deno.test("proc_net_tcp: parseProcNetTcp reads real /proc/net/tcp lines", () => {
  const sockets = parseProcNetTcp(TCP_FIXTURE);
  assert.deepEqual(sockets.map((s) => s.state), [
    "LISTEN",
    "ESTABLISHED",
    "FIN_WAIT_1",
    "ESTABLISHED",
    "TIME_WAIT",
  ]);
  assert.deepEqual(sockets[0], {
    local: { hostname: "127.0.0.1", port: 22 },
    remote: { hostname: "0.0.0.0", port: 0 },
    state: "LISTEN",
    sendQueue: 0,
    recvQueue: 0,
    timer: null,
    timerSeconds: null,
    retransmits: 0,
    inode: 5441,
  });
  // A FIN_WAIT_1 caught by the demo's trick: megabytes unsent, and unread at the peer.
  assert.equal(sockets[2].sendQueue, 0x3b4e87);
  assert.equal(sockets[3].recvQueue, 0x1f3e5);
  assert.deepEqual(sockets[4].local, { hostname: "127.0.0.1", port: 0xc912 });
  assert.deepEqual(sockets[4].remote, { hostname: "127.0.0.1", port: 0xb319 });
});

Deno.test("proc_net_tcp: the timer fields: kind, seconds left (1/100 s ticks), retries", () => {
  const timers = parseProcNetTcp(TCP_FIXTURE).map((s) =>
    `${s.state} ${s.timer} ${s.timerSeconds} ${s.retransmits} ${s.inode}`
  );
  assert.deepEqual(timers, [
    "LISTEN null null 0 5441",
    "ESTABLISHED null null 0 26035",
    "FIN_WAIT_1 retransmit 0.18 0 0", // an orphan: closed, so no file, no inode
    "ESTABLISHED null null 0 52487",
    "TIME_WAIT timewait 55.35 0 0", // 0x159F ticks: 55.35 s of the 60 left
  ]);
  // Lines staged by states.ts --demo (Linux 6.18): the SYN+ACK timer of a
  // handshake held by TCP_DEFER_ACCEPT, a zero-window probe in CLOSING, a
  // keepalive, and a retransmit timer that has resent 3 times.
  const more = parseProcNetTcp([
    "   3: 0100007F:EE41 0100007F:939E 03 00000000:00000000 01:00000061 00000000     0        0 0 0 0000000000000000",
    "   4: 0100007F:C3A2 0100007F:9B1F 0B 003D7C87:00000000 04:00000010 00000000     0        0 0 2 00000000cd29b3ea 20 0 0 11 -1",
    "   5: 0100007F:1F90 0100007F:D4C2 01 00000000:00000000 02:000AFC7E 00000000  1000        0 90210 1 00000000cee00e38 20 4 30 10 -1",
    "   6: 0100007F:1F90 0100007F:D4C4 01 00000005:00000000 01:00000032 00000003  1000        0 90211 1 00000000cee00e39 20 4 30 10 -1",
  ].join("\n"));
  assert.deepEqual(
    more.map((s) => [s.state, s.timer, s.timerSeconds, s.retransmits]),
    [
      ["SYN_RCVD", "retransmit", 0.97, 0],
      ["CLOSING", "probe", 0.16, 0],
      ["ESTABLISHED", "keepalive", 7199.98, 0],
      ["ESTABLISHED", "retransmit", 0.5, 3],
    ],
  );
  assert.equal(more[2].inode, 90210);
});

Deno.test("proc_net_tcp: parseProcNetTcp reads real /proc/net/tcp6 lines, IPv4-mapped too", () => {
  const sockets = parseProcNetTcp(TCP6_FIXTURE);
  assert.deepEqual(
    sockets.map((s) =>
      `${s.local.hostname}:${s.local.port} ${s.remote.hostname}:${s.remote.port} ${s.state}`
    ),
    [
      ":::46807 :::0 LISTEN",
      "::1:38688 ::1:45199 ESTABLISHED",
      "127.0.0.1:46807 127.0.0.1:54896 ESTABLISHED",
      "fd00::2:55798 fd00::2:43965 TIME_WAIT",
    ],
  );
  assert.deepEqual(parseProcNetTcp("garbage\n  7: nothing here\n"), []);
});
