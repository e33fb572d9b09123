// Node `ws` rooms server with a hand-written room loop: the Node peer of the fan-out
// workload of benches/load.sh. It speaks the part of `rfc6455 serve`'s JSON protocol
// that examples/loadgen's --fanout mode uses, and does what our server does for it:
//   {"type":"hello","name":N}               -> remembered
//   {"type":"join","room":R}                -> {"type":"joined",...} to the room,
//                                              {"type":"presence",...} to the joiner
//   {"type":"message","room":R,"text":T}    -> {"type":"message","room":R,"from":N,
//                                              "text":T,"ts":...,"seq":S} to every member,
//                                              serialized once per message
//
//   node benches/node/rooms.js 127.0.0.1:9114
'use strict';
const { WebSocketServer } = require('ws');

const [host, port] = (process.argv[2] || '127.0.0.1:9114').split(':');
const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate: false });
const rooms = new Map(); // room -> Set of sockets
let seq = 0;

function broadcast(room, text) {
  for (const member of rooms.get(room) || []) member.send(text);
}

wss.on('connection', (ws) => {
  ws.name = '';
  ws.joined = new Set();
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let request;
    try {
      request = JSON.parse(data);
    } catch {
      return ws.send(JSON.stringify({ type: 'error', code: 'bad_json' }));
    }
    switch (request.type) {
      case 'hello':
        ws.name = String(request.name);
        break;
      case 'join': {
        const room = String(request.room);
        if (!rooms.has(room)) rooms.set(room, new Set());
        rooms.get(room).add(ws);
        ws.joined.add(room);
        broadcast(room, JSON.stringify({ type: 'joined', room, user: ws.name }));
        const members = [...rooms.get(room)].map((m) => m.name);
        ws.send(JSON.stringify({ type: 'presence', room, members }));
        break;
      }
      case 'message': {
        const room = String(request.room);
        if (!ws.joined.has(room)) return;
        seq += 1;
        const text = JSON.stringify({
          type: 'message', room, from: ws.name, text: String(request.text), ts: Date.now(), seq,
        });
        broadcast(room, text);
        break;
      }
      default:
        break;
    }
  });
  ws.on('close', () => {
    for (const room of ws.joined) rooms.get(room).delete(ws);
  });
});
wss.on('listening', () => console.error(`ws rooms server on ws://${host}:${port}/`));
