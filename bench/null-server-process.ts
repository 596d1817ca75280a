/**
 * The harness ceiling: a node:http server that answers every request with a fixed 201 and a
 * body the size of a Lanyard credential, doing no other work. Loaded like the real servers,
 * it shows the most the load generator can measure on this machine.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onStopRequest, sendReady } from './child.ts';

const body = Buffer.from(JSON.stringify({ token: 'x'.repeat(700), padding: 'y'.repeat(300) }));
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(201, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 65_000;
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
onStopRequest(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
);
sendReady({ type: 'ready', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
