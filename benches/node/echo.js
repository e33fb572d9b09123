// Node `ws` echo server, the Node peer of benches/load.sh: every text or binary
// message is sent back as it came.
//
//   (cd benches/node && npm install --no-audit --no-fund) && node benches/node/echo.js 127.0.0.1:9110
'use strict';
const { WebSocketServer } = require('ws');

const [host, port] = (process.argv[2] || '127.0.0.1:9110').split(':');
const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.error(`ws echo server on ws://${host}:${port}/`));
