// In-process tests of the chat room (lib/room.ts): fake connections, no
// sockets, so each test shows one rule of the room exactly.

import assert from "node:assert/strict";
import { type Member, Room } from "../lib/room.ts";
import { FakeConn, settle } from "./fake_conn.ts";

const encoder = new TextEncoder();

async function roomWith(count: number, maxQueue = 1 << 20, history = 0) {
  const log: string[] = [];
  const room = new Room({
    maxQueue,
    maxLine: 4096,
    history,
    log: (line) => log.push(typeof line === "string" ? line : new TextDecoder().decode(line)),
  });
  const conns: FakeConn[] = [];
  const members: Member[] = [];
  for (let i = 0; i < count; i++) {
    const conn = new FakeConn();
    conns.push(conn);
    members.push(await room.join(conn));
    room.announceJoin(members[i]); // as at its first line
  }
  await settle();
  return { room, conns, members, log };
}

async function shutdown(room: Room): Promise<void> {
  await room.shutdown();
  await settle();
}

Deno.test("room: a newcomer is welcomed; the others are told it joined", async () => {
  const { room, conns } = await roomWith(2);
  assert.deepEqual(conns[0].lines().slice(0, 3), [
    "* welcome, you are guest1",
    "* online (1): guest1",
    "* type /help for commands; lines up to 4096 bytes",
  ]);
  assert.equal(conns[0].lines()[3], "* guest2 joined");
  assert.equal(conns[1].lines()[1], "* online (2): guest1, guest2");
  assert.ok(!conns[1].lines().includes("* guest2 joined"), "nobody is told of their own join");
  await shutdown(room);
});

Deno.test("room: a line reaches everyone but its sender, once, in order", async () => {
  const { room, conns, members } = await roomWith(3);
  room.say(members[0], "héllo");
  room.sayPlain(members[0], encoder.encode("plain ascii"));
  room.act(members[1], "waves");
  await settle();
  const after = (conn: FakeConn) => conn.lines().filter((line) => !line.startsWith("* guest3"));
  assert.deepEqual(after(conns[2]).slice(-3), [
    "<guest1> héllo",
    "<guest1> plain ascii",
    "* guest2 waves",
  ]);
  assert.ok(!conns[0].lines().some((line) => line.startsWith("<guest1>")));
  assert.equal(conns[1].lines().filter((line) => line === "<guest1> héllo").length, 1);
  await shutdown(room);
});

Deno.test("room: a reader dropped by a line gets 'left' after that line, at every receiver", async () => {
  // The receivers sit on both sides of the slow one in the room's order, so
  // a drop inside the delivery would tell the later ones before the line.
  const { room, conns, members } = await roomWith(4, 1000);
  const [early, slow, late, sender] = [0, 1, 2, 3];
  conns[slow].stuck = true; // its queue grows; the others drain between lines
  const said: string[] = [];
  while (room.members.has(members[slow])) {
    said.push(`<${members[sender].nick}> line ${said.length} ${"x".repeat(290)}`);
    room.say(members[sender], said.at(-1)!.slice(`<${members[sender].nick}> `.length));
    await settle();
  }
  assert.ok(said.length > 1, "it was dropped once past twice --max-queue, not at once");
  const leftNotice = `* ${members[slow].nick} left (too slow)`;
  for (const receiver of [early, late]) {
    const lines = conns[receiver].lines().filter((line) => !line.endsWith(" joined"));
    assert.deepEqual(lines.slice(-said.length - 1), [...said, leftNotice], `receiver ${receiver}`);
  }
  assert.ok(conns[sender].lines().includes(leftNotice));
  assert.ok(conns[slow].closed, "the slow reader's connection is closed");
  await shutdown(room);
});

Deno.test("room: the same order of lines and notices for every receiver under drops", async () => {
  const { room, conns, members } = await roomWith(8, 1000);
  conns[2].stuck = true;
  conns[5].stuck = true;
  for (let i = 0; i < 12; i++) {
    room.say(members[7], `line ${i} ${"y".repeat(300)}`);
    await settle(15); // the stuck ones took nothing for over 0.1 s by the end: dropped
  }
  const seen = (conn: FakeConn) =>
    conn.lines().filter((line) => line.startsWith("<") || line.includes("too slow"));
  const reference = seen(conns[0]);
  assert.equal(reference.filter((line) => line.includes("too slow")).length, 2);
  for (const receiver of [1, 3, 4, 6]) assert.deepEqual(seen(conns[receiver]), reference);
  await shutdown(room);
});

Deno.test("room: nick rules, renames and /who", async () => {
  const { room, conns, members } = await roomWith(2);
  assert.match(room.nickProblem("bad name") ?? "", /invalid nick/);
  assert.match(room.nickProblem("Server") ?? "", /reserved/);
  assert.match(room.nickProblem("GUEST2", members[0]) ?? "", /taken/);
  assert.equal(room.nickProblem("GUEST1", members[0]), undefined, "a change of case is allowed");
  await room.rename(members[0], "alice");
  await room.rename(members[1], "ALICE");
  await settle();
  assert.ok(conns[0].lines().includes("* you are now alice"));
  assert.ok(conns[1].lines().includes("* guest1 is now alice"));
  assert.ok(conns[1].lines().includes("! nick 'ALICE' is taken"));
  assert.equal(room.whoLine(), "* online (2): alice, guest2");
  assert.equal(room.find("Alice"), members[0]);
  await shutdown(room);
});

Deno.test("room: /msg goes to its target only; the operator sees that, not what", async () => {
  const { room, conns, members, log } = await roomWith(3);
  room.privateMessage(members[0], "GUEST2", "psst");
  room.privateMessage(members[0], "nobody", "hello?");
  await settle();
  assert.ok(conns[1].lines().includes("<guest1> (private) psst"));
  assert.ok(!conns[2].lines().some((line) => line.includes("psst")));
  assert.ok(conns[0].lines().includes("* (private to guest2) psst"));
  assert.ok(conns[0].lines().includes("! no one called 'nobody' is online"));
  assert.ok(log.includes("* guest1 sent a private message to guest2"));
  assert.ok(!log.some((line) => line.includes("psst")));
  await shutdown(room);
});

Deno.test("room: leaving drains what was queued for the leaver, then closes", async () => {
  const { room, conns, members } = await roomWith(2);
  room.sendTo(members[0], "* bye");
  room.leave(members[0]);
  assert.ok(!conns[0].closed, "its last lines are written first");
  await settle();
  assert.ok(conns[0].closed);
  assert.equal(conns[0].lines().at(-1), "* bye");
  assert.equal(conns[1].lines().at(-1), "* guest1 left");
  room.leave(members[0]); // twice is once
  await settle();
  assert.equal(conns[1].lines().filter((line) => line === "* guest1 left").length, 1);
  await shutdown(room);
});

Deno.test("room: a kick and an idle drop say why", async () => {
  const { room, conns, members } = await roomWith(3);
  assert.equal(room.kick("nobody"), false);
  assert.equal(room.kick("guest1"), true);
  members[1].lastHeard = Date.now() - 60_000;
  room.dropIdle(30_000);
  await settle();
  assert.equal(conns[0].lines().at(-1), "* you were kicked by the operator");
  assert.equal(conns[1].lines().at(-1), "! idle for 30 s, disconnecting");
  assert.deepEqual(conns[2].lines().slice(-2), ["* guest1 left (kicked)", "* guest2 left (idle)"]);
  await shutdown(room);
});

Deno.test("room: shutdown tells everyone and closes every connection", async () => {
  const { room, conns } = await roomWith(3);
  conns[1].stuck = true; // a reader that never reads is not waited for past the farewell
  const started = Date.now();
  await shutdown(room);
  assert.ok(Date.now() - started < 2500);
  for (const conn of conns) assert.ok(conn.closed);
  assert.equal(conns[0].lines().at(-1), "* server shutting down");
  assert.ok(
    !conns[0].lines().some((line) => line.includes("left")),
    "no leave notices at shutdown",
  );
  assert.equal(room.closing, true);
});

Deno.test("room: a silent newcomer's join is told to the others half a second later", async () => {
  const { room, conns } = await roomWith(1);
  const quiet = new FakeConn();
  await room.join(quiet);
  await settle(100);
  assert.ok(!conns[0].lines().includes("* guest2 joined"), "not yet: it may name itself first");
  assert.equal(quiet.lines()[0], "* welcome, you are guest2", "its own welcome is not delayed");
  await settle(500);
  assert.ok(conns[0].lines().includes("* guest2 joined"));
  await shutdown(room);
});

Deno.test("room: a newcomer whose first line is /nick joins under that name", async () => {
  const { room, conns, members } = await roomWith(2);
  await room.rename(members[1], "bob"); // announced already: an ordinary rename
  const conn = new FakeConn();
  const carol = await room.join(conn);
  await room.rename(carol, "carol");
  const taken = new FakeConn();
  const late = await room.join(taken);
  await room.rename(late, "BOB");
  await settle();
  const others = conns[0].lines();
  assert.ok(others.includes("* carol joined"), others.join(" | "));
  assert.ok(!others.some((line) => line.includes("guest3")), "never heard as a guest");
  assert.ok(conn.lines().includes("* you are now carol"));
  assert.ok(taken.lines().includes("! nick 'BOB' is taken"), "told why");
  assert.ok(others.includes("* guest4 joined"), "a refused name joins as the guest it was");
  await shutdown(room);
});

Deno.test("room: one who leaves before its join was told leaves without a word", async () => {
  const { room, conns } = await roomWith(1);
  const brief = await room.join(new FakeConn());
  room.leave(brief);
  await settle(600);
  assert.ok(!conns[0].lines().some((line) => line.includes("guest2")), conns[0].lines().join("|"));
  await shutdown(room);
});

Deno.test("room: a newcomer never hears of a join its welcome already counted", async () => {
  const { room, conns } = await roomWith(1);
  const first = new FakeConn();
  await room.join(first); // silent: announced after its wait
  await settle(100);
  const second = new FakeConn();
  await room.join(second); // its welcome counts the first
  await settle(700);
  assert.equal(second.lines()[1], "* online (3): guest1, guest2, guest3");
  assert.ok(!second.lines().includes("* guest2 joined"), second.lines().join(" | "));
  assert.ok(first.lines().includes("* guest3 joined"), "the first did not know the second");
  assert.ok(conns[0].lines().includes("* guest2 joined"));
  assert.ok(conns[0].lines().includes("* guest3 joined"));
  await shutdown(room);
});

Deno.test("room: a newcomer is shown the recent public lines, in order, after its welcome", async () => {
  const { room, members } = await roomWith(2, 1 << 20, 3);
  const empty = new FakeConn();
  room.leave(await room.join(empty)); // no history yet: nothing at all
  room.say(members[0], "one");
  room.sayPlain(members[1], new TextEncoder().encode("two"));
  room.privateMessage(members[0], "guest2", "never replayed");
  room.act(members[1], "waves");
  room.sayAsOperator("four");
  room.broadcast("* a notice, never replayed");
  const conn = new FakeConn();
  await room.join(conn);
  await settle();
  assert.equal(empty.lines().length, 3, "the welcome only");
  assert.deepEqual(conn.lines().slice(3), [
    "* recent messages:",
    "<guest2> two",
    "* guest2 waves",
    "<server> four",
    "* end of recent messages",
  ], "the last 3 public lines, oldest first, as they were said");
  await shutdown(room);
});

Deno.test("room: away: /who shows it, a /msg to one away is delivered and says so", async () => {
  const { room, conns, members } = await roomWith(3);
  room.setAway(members[0], "lunch");
  room.setAway(members[1], "");
  assert.equal(room.whoLine(), "* online (3): guest1 (away: lunch), guest2 (away), guest3");
  room.privateMessage(members[2], "guest1", "ping?");
  room.privateMessage(members[2], "guest2", "you there?");
  room.setAway(members[0], undefined);
  room.privateMessage(members[2], "guest1", "back?");
  await settle();
  assert.ok(conns[0].lines().includes("* you are away: lunch"));
  assert.ok(conns[1].lines().includes("* you are away"));
  assert.ok(conns[0].lines().includes("<guest3> (private) ping?"), "delivered all the same");
  assert.deepEqual(conns[2].lines().filter((line) => / is away/.test(line)), [
    "* guest1 is away: lunch",
    "* guest2 is away",
  ]);
  assert.ok(conns[0].lines().includes("* you are back"));
  assert.equal(room.whoLine(), "* online (3): guest1, guest2 (away), guest3");
  await shutdown(room);
});

Deno.test("room: one who arrived before a newcomer named itself is told the new name", async () => {
  const { room, conns } = await roomWith(1);
  const first = new FakeConn();
  const named = await room.join(first); // guest2, silent for now
  const second = new FakeConn();
  await room.join(second); // guest3: its welcome names guest2
  await room.rename(named, "alice"); // guest2's first line
  await settle();
  assert.ok(second.lines()[1].includes("guest2"), second.lines()[1]);
  assert.ok(second.lines().includes("* guest2 is now alice"), second.lines().join(" | "));
  assert.ok(!second.lines().includes("* alice joined"), "its welcome counted it already");
  assert.ok(conns[0].lines().includes("* alice joined"));
  assert.ok(!conns[0].lines().some((line) => line.includes("guest2")), "never heard of as guest2");
  await shutdown(room);
});

Deno.test("room: /mute: a muted member's lines, /me and /msg are not relayed; it is told each time", async () => {
  const { room, conns, members } = await roomWith(2);
  assert.equal(room.mute("GUEST1", true), true);
  assert.equal(room.mute("nobody", true), false);
  room.say(members[0], "hello?");
  room.sayPlain(members[0], new TextEncoder().encode("plain"));
  room.act(members[0], "waves");
  room.privateMessage(members[0], "guest2", "psst");
  room.mute("guest1", false);
  room.say(members[0], "back");
  await settle();
  assert.deepEqual(conns[0].lines().filter((l) => l.startsWith("!")), [
    "! you are muted",
    "! you are muted",
    "! you are muted",
    "! you are muted",
  ]);
  assert.deepEqual(conns[1].lines().filter((l) => /^<guest1>|^\* guest1 |private/.test(l)), [
    "<guest1> back",
  ]);
  await shutdown(room);
});

Deno.test("room: /ban: told, disconnected, its address refused; /unban lifts it", async () => {
  const { room, conns, members } = await roomWith(3);
  assert.equal(room.ban("nobody"), undefined);
  assert.equal(room.ban("guest2"), "127.0.0.1");
  await settle();
  assert.equal(conns[1].lines().at(-1), "! you are banned");
  assert.ok(conns[1].closed);
  assert.ok(conns[0].lines().includes("* guest2 left (banned)"));
  assert.ok(room.members.has(members[2]), "others from that address stay");
  assert.equal(room.isBanned("127.0.0.1"), true);
  assert.deepEqual(room.bans(), ["127.0.0.1"]);
  assert.equal(room.unban("127.0.0.1"), true);
  assert.equal(room.unban("127.0.0.1"), false);
  assert.equal(room.isBanned("127.0.0.1"), false);
  await shutdown(room);
});

Deno.test("room: a run of plain lines is one delivery, each line kept in the history and logged", async () => {
  const { room, conns, members, log } = await roomWith(3, 1 << 20, 10);
  const before = conns[2].writes.length;
  room.sayPlainLines(members[0], ["one", "two", "three"].map((text) => encoder.encode(text)));
  await settle();
  assert.equal(conns[2].writes.length, before + 1, "one write for the run");
  assert.deepEqual(conns[2].lines().slice(-3), ["<guest1> one", "<guest1> two", "<guest1> three"]);
  assert.ok(!conns[0].lines().some((line) => line.startsWith("<guest1>")), "not to its sender");
  assert.deepEqual(log.slice(-3), ["<guest1> one\n", "<guest1> two\n", "<guest1> three\n"]);
  const late = new FakeConn();
  await room.join(late);
  await settle();
  const replay = late.lines();
  assert.deepEqual(replay.slice(replay.indexOf("* recent messages:") + 1, -1), [
    "<guest1> one",
    "<guest1> two",
    "<guest1> three",
  ]);
  room.mute("guest1", true);
  room.sayPlainLines(members[0], [encoder.encode("hidden"), encoder.encode("too")]);
  await settle();
  assert.ok(!conns[1].lines().includes("<guest1> hidden"), "a muted member's run is not relayed");
  await shutdown(room);
});
