// bench/peers/node_relay.mjs: the bench's Node peer, a room in plain `net`:
// every whole line a client sends (each read's block up to its last newline)
// written to every other client with one write each. No names, no queues, no
// backpressure: a reader that stops makes Node buffer for it without limit.
// node bench/peers/node_relay.mjs [--port N]   (default 0: any free port)
import net from "node:net";

const at = process.argv.indexOf("--port");
const port = at === -1 ? 0 : Number(process.argv[at + 1]);
const clients = new Set();
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let tail = Buffer.alloc(0); // the unfinished line
  clients.add(socket);
  socket.write("* welcome to the Node relay\n"); // the bench's clients wait for a first line
  socket.on("data", (chunk) => {
    const end = chunk.lastIndexOf(10) + 1;
    if (end === 0) return void (tail = Buffer.concat([tail, chunk]));
    const block = tail.length
      ? Buffer.concat([tail, chunk.subarray(0, end)])
      : chunk.subarray(0, end);
    tail = chunk.subarray(end);
    for (const other of clients) if (other !== socket) other.write(block);
  });
  socket.on("error", () => {}); // a reset: "close" follows
  socket.on("close", () => clients.delete(socket));
});
server.listen(port, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
