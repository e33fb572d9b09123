// Socket.IO 4 with @socket.io/redis-adapter's sharded adapter (SSUBSCRIBE/SPUBLISH on a
// Redis Cluster, one channel per room: its default "dynamic" subscription mode), the
// Socket.IO peer of benches/cluster_50k.sh. It does for cli/examples/roomload.rs's
// Socket.IO mode what `rfc6455 serve` does for its own protocol, the way a Socket.IO
// application would write it:
//   "join" [rooms...], ack       -> await socket.join(rooms); ack()
//   "message" {room, text}, ack  -> socket.to(room).emit("message", {room, text}); ack()
// Socket.IO keeps no room history and its connection state recovery is not offered
// with this adapter, so a reconnecting member cannot catch up (the generator says so).
//
//   (cd benches/node && npm install --no-audit --no-fund)
//   node benches/node/socketio_rooms.js 127.0.0.1:9120 127.0.0.1:7000,127.0.0.1:7001
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { createCluster } = require('redis');
const { createShardedAdapter } = require('@socket.io/redis-adapter');

const [host, port] = (process.argv[2] || '127.0.0.1:9120').split(':');
const seeds = (process.argv[3] || '127.0.0.1:7000').split(',');

async function main() {
  const pub = createCluster({ rootNodes: seeds.map((s) => ({ url: `redis://${s}` })) });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) client.on('error', (e) => console.error(`redis: ${e.message}`));
  await Promise.all([pub.connect(), sub.connect()]);
  const server = http.createServer();
  const io = new Server(server, {
    adapter: createShardedAdapter(pub, sub),
    transports: ['websocket'],
    serveClient: false,
    perMessageDeflate: false,
  });
  io.on('connection', (socket) => {
    socket.on('join', async (rooms, ack) => {
      if (!Array.isArray(rooms)) return;
      // The sharded adapter subscribes to a room's channel when its first local
      // member joins: acked once that is done, as our join is.
      await socket.join(rooms.map(String));
      if (typeof ack === 'function') ack();
    });
    socket.on('message', (m, ack) => {
      if (!m || typeof m.room !== 'string' || !socket.rooms.has(m.room)) return;
      socket.to(m.room).emit('message', { room: m.room, text: String(m.text) });
      if (typeof ack === 'function') ack();
    });
  });
  server.listen(Number(port), host, () => console.error(`socket.io on ws://${host}:${port}/socket.io/`));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
