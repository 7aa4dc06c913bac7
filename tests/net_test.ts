// Unit tests of lib/net.ts over real loopback connections: full writes,
// quiet closes, and listen / connect / accept with their failures explained.

import assert from "node:assert/strict";
import { Failure } from "../utils.ts";
import { acceptClient, closeQuietly, connectTcp, listenTcp, writeAll } from "../lib/net.ts";
import { connectedPair, delay, freePort, withPair } from "./helpers.ts";

const encoder = new TextEncoder();

Deno.test("writeAll: 8 MiB to a peer that reads slowly arrives complete and in order", async () => {
  await withPair(async (writer, reader) => {
    const size = 8 * 1024 * 1024;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 16)) & 0xff;
    const received = new Uint8Array(size);
    const reading = (async () => {
      await delay(100); // let the socket buffers fill: conn.write() then writes partially
      let filled = 0;
      const chunk = new Uint8Array(256 * 1024);
      while (true) {
        const n = await reader.read(chunk);
        if (n === null) return filled;
        assert.ok(filled + n <= size, "more bytes than were written");
        received.set(chunk.subarray(0, n), filled);
        filled += n;
        if (filled % (2 * 1024 * 1024) < n) await delay(10); // slow down now and then
      }
    })();
    await writeAll(writer, data);
    await writer.closeWrite();
    assert.equal(await reading, size);
    assert.ok(received.every((byte, i) => byte === data[i]), "bytes differ");
  });
});

Deno.test("writeAll: keeps writing after partial writes (a writer taking 3 bytes a call)", async () => {
  const written: number[] = [];
  let calls = 0;
  const stingy = {
    write(bytes: Uint8Array): Promise<number> {
      calls++;
      const n = Math.min(3, bytes.length);
      written.push(...bytes.subarray(0, n));
      return Promise.resolve(n);
    },
  };
  await writeAll(stingy, encoder.encode("你好, partial writes!"));
  assert.equal(new TextDecoder().decode(new Uint8Array(written)), "你好, partial writes!");
  assert.equal(calls, Math.ceil(encoder.encode("你好, partial writes!").length / 3));
});

Deno.test("writeAll: an empty buffer writes nothing and returns", async () => {
  await withPair(async (writer, reader) => {
    await writeAll(writer, new Uint8Array());
    await writer.closeWrite();
    assert.equal(await reader.read(new Uint8Array(8)), null);
  });
});

Deno.test("closeQuietly: closes, then ignores an already-closed conn or listener", async () => {
  const [a, b] = await connectedPair();
  closeQuietly(a);
  assert.equal(await b.read(new Uint8Array(8)), null); // a really was closed
  closeQuietly(a); // a second close would throw BadResource
  assert.throws(() => a.close(), Deno.errors.BadResource);
  closeQuietly(b);
  closeQuietly(b);
  closeQuietly(undefined);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  closeQuietly(listener);
  closeQuietly(listener);
});

// --------------------------------------------------- listen and connect ---

Deno.test("listenTcp: a port in use is a Failure with a hint", () => {
  const first = listenTcp("127.0.0.1", 0);
  try {
    assert.throws(() => listenTcp("127.0.0.1", first.addr.port), (err: unknown) => {
      assert.ok(err instanceof Failure);
      assert.equal(
        err.message,
        `cannot listen on 127.0.0.1:${first.addr.port}: ` +
          "address already in use; choose another --port (0 picks a free one)",
      );
      return true;
    });
  } finally {
    first.close();
  }
});

Deno.test("connectTcp: connection refused is a Failure with a hint", async () => {
  const port = freePort();
  await assert.rejects(connectTcp("127.0.0.1", port), {
    message: `cannot connect to 127.0.0.1:${port}: connection refused; is the server running?`,
  });
  await assert.rejects(connectTcp("127.0.0.1", port), Failure);
});

Deno.test("acceptClient: returns the connection, then undefined once the listener is closed", async () => {
  const listener = listenTcp("127.0.0.1", 0);
  const [client, accepted] = await Promise.all([
    connectTcp("127.0.0.1", listener.addr.port),
    acceptClient(listener),
  ]);
  assert.ok(accepted);
  assert.equal(accepted.remoteAddr.port, client.localAddr.port);
  client.close();
  accepted.close();
  const pending = acceptClient(listener);
  listener.close();
  assert.equal(await pending, undefined);
});
