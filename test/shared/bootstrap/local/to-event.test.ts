/**
 * The local server's request → API Gateway payload 2.0 event (shared/bootstrap/local/server.ts
 * `toEvent`), on real `node:http` requests: bodies that are valid UTF-8 travel as text, any
 * other bytes base64-encoded with `isBase64Encoded`, as API Gateway does for binary.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toEvent } from '../../../../shared/bootstrap/local/server.ts';
import type { HttpEvent } from '../../../../shared/http/types.ts';

let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const event = toEvent(req, (req.method ?? 'GET').toUpperCase(), url, Buffer.concat(chunks), 'req-1');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(event));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function eventFor(body: Uint8Array | undefined, path = '/v1/credentials', headers: Record<string, string> = {}): Promise<HttpEvent> {
  const response = await fetch(`${base}${path}`, { method: body ? 'POST' : 'GET', headers, ...(body && { body }) });
  return (await response.json()) as HttpEvent;
}

describe('toEvent', () => {
  it('passes a UTF-8 body as text, multi-byte characters included', async () => {
    const text = '{"tenant":"acmé","note":"日本 🚀"}';
    const event = await eventFor(new TextEncoder().encode(text));
    expect(event.isBase64Encoded).toBe(false);
    expect(event.body).toBe(text);
  });

  it('base64-encodes a body that is not valid UTF-8', async () => {
    const bytes = new Uint8Array([0x7b, 0xff, 0xfe, 0x22, 0xc3]); // a lone continuation start and a truncated sequence
    const event = await eventFor(bytes);
    expect(event.isBase64Encoded).toBe(true);
    expect(Buffer.from(event.body!, 'base64')).toEqual(Buffer.from(bytes));
  });

  it('base64-encodes UTF-8-encoded surrogates (CESU-8), which are not UTF-8', async () => {
    const event = await eventFor(new Uint8Array([0xed, 0xa0, 0x80]));
    expect(event.isBase64Encoded).toBe(true);
    expect(event.body).toBe(Buffer.from([0xed, 0xa0, 0x80]).toString('base64'));
  });

  it('leaves the body out when there is none, copies the headers and splits the target into path and query', async () => {
    const event = await eventFor(undefined, '/v1/revocations?since=1&since=2', { 'x-lanyard-test': 'one' });
    expect(event.body).toBeUndefined();
    expect(event.isBase64Encoded).toBe(false);
    expect(event.headers['x-lanyard-test']).toBe('one');
    expect(event.rawPath).toBe('/v1/revocations');
    expect(event.rawQueryString).toBe('since=1&since=2');
    expect(event.queryStringParameters).toEqual({ since: '1,2' });
    expect(event.routeKey).toBe('GET /v1/revocations');
  });
});
