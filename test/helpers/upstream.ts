/**
 * A real third-party API stand-in on loopback: it accepts only the keys it is told are valid
 * (as `Authorization: Bearer <key>` or `?api_key=<key>`), answers 401 otherwise, and records
 * every request it received (with the key it saw) so tests can say what reached it.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface UpstreamHit {
  readonly at: number;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  /** The key the request presented, if any. */
  readonly key?: string;
  readonly bodyBytes: number;
  readonly bodySha256: string;
}

export interface FakeUpstream {
  readonly url: string;
  readonly hits: UpstreamHit[];
  /** Keys the upstream accepts right now. */
  readonly validKeys: Set<string>;
  close(): Promise<void>;
}

function presentedKey(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice('Bearer '.length);
  return new URL(req.url ?? '/', 'http://upstream').searchParams.get('api_key') ?? undefined;
}

export async function startFakeUpstream(initialKeys: readonly string[]): Promise<FakeUpstream> {
  const hits: UpstreamHit[] = [];
  const validKeys = new Set(initialKeys);
  const server: Server = createServer((req, res) => {
    const at = Date.now();
    const hash = createHash('sha256');
    let bodyBytes = 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
      hash.update(chunk);
      if (bodyBytes <= 64 * 1024) chunks.push(chunk);
    });
    req.on('end', () => {
      const key = presentedKey(req);
      hits.push({ at, method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, ...(key !== undefined && { key }), bodyBytes, bodySha256: hash.digest('hex') });
      if (key === undefined || !validKeys.has(key)) {
        // Like real APIs, the refusal quotes part of the key back: the broker must not pass it on.
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' });
        res.end(JSON.stringify({ error: `invalid api key ${key ?? ''}` }));
        return;
      }
      const path = new URL(req.url ?? '/', 'http://upstream').pathname;
      if (path === '/v1/slow') {
        setTimeout(() => res.end('late'), 2_000).unref();
        return;
      }
      if (path === '/v1/big') {
        // 3 MiB in 64 KiB chunks, no declared length: the broker must count as it streams.
        let left = 48;
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const more = () => {
          while (left > 0) {
            left -= 1;
            if (!res.write(Buffer.alloc(64 * 1024, 7))) {
              res.once('drain', more);
              return;
            }
          }
          res.end();
        };
        more();
        return;
      }
      if (path === '/v1/echo') {
        // A careless error page: it quotes the request line and the credential header, split
        // over two chunks in the middle of the quote.
        const quote = JSON.stringify({ error: 'not found', url: req.url, authorization: req.headers.authorization ?? null });
        const middle = Math.floor(quote.length / 2);
        res.writeHead(404, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(quote)) });
        res.write(quote.slice(0, middle));
        setTimeout(() => res.end(quote.slice(middle)), 20).unref();
        return;
      }
      if (path === '/v1/complete') {
        const tokens = Number((JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { tokens?: number }).tokens ?? 0);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ text: 'done', usage: { total_tokens: tokens } }));
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/json',
        'set-cookie': 'session=upstream-session; HttpOnly',
        'x-usage-units': '3',
      });
      res.end(JSON.stringify({ ok: true, method: req.method, path, query: new URL(req.url ?? '/', 'http://upstream').search, bodyBytes, bodySha256: hits.at(-1)?.bodySha256 }));
    });
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    validKeys,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
