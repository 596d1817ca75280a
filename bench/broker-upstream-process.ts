/**
 * The broker benchmark's upstream: a stand-in third-party API on loopback, in its own process so
 * that its CPU is neither hidden inside the load generator's nor the broker's, and can be read
 * on its own (a report request answers with this process's CPU time so far, all threads, how many
 * connections it has accepted — keep-alive should keep that at the load's concurrency — and
 * how many requests came through the broker, which the audit is checked against).
 *
 *   node bench/broker-upstream-process.ts <key>
 *
 * It accepts only `Authorization: Bearer <key>` (anything else: 401), keeps connections alive,
 * and answers:
 * - `GET /v1/charges…`: 200 with a fixed 200-byte JSON body (`content-length` declared);
 * - `POST /v1/uploads`: reads the whole body, then 200 with `{"received":<bytes>}`;
 * - anything else: 404.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onReportRequest, onStopRequest, sendReady } from './child.ts';

/** Size of the GET answer's body, in bytes. */
const CHARGES_BODY_BYTES = 200;

const [key] = process.argv.slice(2);
if (!key) throw new Error('usage: broker-upstream-process.ts <key>');
const expected = Buffer.from(`Bearer ${key}`);

const charges = chargesBody();
let connections = 0;
/** Requests that came through the broker (it names its request id on every forwarded call). */
let forwarded = 0;
const server = createServer((req, res) => {
  if (req.headers['x-lanyard-request-id'] !== undefined) forwarded += 1;
  const presented = Buffer.from(req.headers.authorization ?? '');
  const authorized = presented.length === expected.length && timingSafeEqual(presented, expected);
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  req.on('end', () => {
    if (!authorized) return answer(401, '{"error":"invalid api key"}');
    const path = (req.url ?? '/').split('?', 1)[0]!;
    if (req.method === 'GET' && path.startsWith('/v1/charges')) return answer(200, charges);
    if (req.method === 'POST' && path === '/v1/uploads') return answer(200, JSON.stringify({ received }));
    return answer(404, '{"error":"not found"}');
  });
  function answer(status: number, body: string | Buffer): void {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
});
server.keepAliveTimeout = 65_000;
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

server.on('connection', () => {
  connections += 1;
});
onReportRequest(() => {
  const used = process.cpuUsage();
  return { cpuMs: (used.user + used.system) / 1000, connections, forwarded };
});
onStopRequest(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
);
sendReady({ type: 'ready', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });

/** A charge list shaped like a payment API's, padded to exactly CHARGES_BODY_BYTES bytes. */
function chargesBody(): Buffer {
  const shape = { object: 'list', data: [{ id: 'ch_3bench0000000001', amount: 1999, currency: 'eur', status: 'succeeded' }], has_more: false, pad: '' };
  const pad = CHARGES_BODY_BYTES - Buffer.byteLength(JSON.stringify(shape));
  if (pad < 0) throw new Error('the charge list is over its size');
  return Buffer.from(JSON.stringify({ ...shape, pad: 'x'.repeat(pad) }));
}
