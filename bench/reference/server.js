// Reference implementation of the gateway lock on the Node stack, as a yardstick for
// the benchmarks: node:http with an exclusive listen, the `ws` package on the same
// port, the protocol subset the benchmarks use (connect/hello-ok, health, /healthz,
// the shutdown event and close 1001 on SIGTERM). Not a product: kept minimal.
'use strict';
const http = require('node:http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 18789);
const host = '127.0.0.1';
const url = `ws://${host}:${port}`;
const started = Date.now();
const version = '0.0.0-reference';

const health = () => ({
  ok: true, status: 'live', service: 'gateway', pid: process.pid, port,
  profile: 'default', version, uptimeMs: Date.now() - started,
});

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    const body = JSON.stringify(health());
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  } else {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"not_found"}}');
  }
});

const wss = new WebSocketServer({ server, maxPayload: 1024 * 1024 });
wss.on('error', () => {}); // the http server's handler below reports and exits
wss.on('connection', (ws) => {
  let connected = false;
  ws.on('message', (data, isBinary) => {
    if (isBinary) return ws.close(1003, 'binary messages are not supported');
    let msg;
    try { msg = JSON.parse(data); } catch { msg = null; }
    if (!connected) {
      if (!msg || msg.type !== 'req' || msg.method !== 'connect') {
        return ws.close(1008, 'invalid handshake: first request must be connect');
      }
      connected = true;
      return ws.send(JSON.stringify({
        type: 'res', id: msg.id, ok: true,
        payload: {
          type: 'hello-ok', protocol: 1, server: { version, pid: process.pid, profile: 'default' },
          methods: ['health', 'status'], events: ['tick', 'shutdown'],
          policy: { tickIntervalMs: 30000, maxPayload: 1048576 },
        },
      }));
    }
    if (msg && msg.method === 'health') {
      ws.send(JSON.stringify({ type: 'res', id: msg.id, ok: true, payload: health() }));
    } else {
      ws.send(JSON.stringify({ type: 'res', id: msg ? msg.id : null, ok: false,
        error: { code: 'unknown_method', message: 'unknown method' } }));
    }
  });
});

server.on('error', (err) => {
  if (err.code === 'EADDRINUSE') {
    console.error(`GatewayLockError: another gateway instance is already listening on ${url}`);
    process.exit(78);
  }
  console.error(`GatewayLockError: failed to bind gateway socket on ${url}: ${err.message}`);
  process.exit(71);
});

server.listen({ port, host, exclusive: true }, () => {
  console.error(`gateway listening on ${url} (pid ${process.pid})`);
});

process.on('SIGTERM', () => {
  const shutdown = JSON.stringify({ type: 'event', event: 'shutdown',
    payload: { reason: 'gateway stopping', restartExpectedMs: null } });
  for (const ws of wss.clients) {
    ws.send(shutdown);
    ws.close(1001, 'gateway stopping');
  }
  wss.close();
  // Node closes the listening socket here at once; the process exits when the last
  // connection has closed.
  server.close(() => process.exit(0));
});
