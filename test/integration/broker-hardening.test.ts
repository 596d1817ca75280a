/**
 * The broker against an upstream that misbehaves on purpose (issue 6 review): one that quotes
 * the request URL back in a redirect, one that answers before the agent has finished its
 * upload, one that refuses the key until the circuit opens, and routes that refuse every call
 * with 401 or 403 although the key is good (issue 14: one agent must not cut every tenant off).
 * Each case is a bug that was found and fixed; the test fails without the fix.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PolicyDocument } from '../../shared/policy/policy-file.ts';
import { KEYS, startTestIssuer, testPolicy, type TestIssuer } from '../helpers/issuer.ts';

const KEY = 'sk_live_review_key_QQQQQQQQQQQQQQQQ';
/** A key with the characters encoders disagree on: `/`, `+`, `=`, `&`, `<`, `"`, `\`, `%` and a space. */
const ODD_KEY = 'sk/live+odd=key&<Q>"Q\\Q%20Q QQQQQQQQ';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describe('the broker against a misbehaving upstream', () => {
  let issuer: TestIssuer;
  let upstreamUrl: string;
  const handlers = new Map<string, Handler>();
  let upstream: Server;
  /** Every request target the upstream received. */
  const received: string[] = [];
  const logLines: string[] = [];
  beforeAll(async () => {
    upstream = createServer((req, res) => {
      received.push(req.url ?? '');
      const path = new URL(req.url ?? '/', 'http://u').pathname;
      (handlers.get(path) ?? ((_q, r) => r.end('{}')))(req, res);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const base = testPolicy();
    const policy: PolicyDocument = {
      ...base,
      tools: [
        ...base.tools,
        { id: 'llm', actions: { call: 'write' }, enabled: true, upstream: { baseUrl: upstreamUrl, key: { query: 'api_key' }, routes: { call: [{ method: 'GET', path: '/v1/*' }, { method: 'POST', path: '/v1/*' }] }, timeoutMs: 800 } },
        // Behind a base path, with one route: nothing outside /api/v1/charges may be reached.
        { id: 'pay', actions: { read: 'read' }, enabled: true, upstream: { baseUrl: `${upstreamUrl}/api`, key: { header: 'authorization', scheme: 'Bearer' }, routes: { read: [{ method: 'GET', path: '/v1/charges*' }] } } },
        { id: 'payq', actions: { read: 'read' }, enabled: true, upstream: { baseUrl: `${upstreamUrl}/api`, key: { query: 'api_key' }, routes: { read: [{ method: 'GET', path: '/v1/charges*' }] } } },
        { id: 'matrix', actions: { read: 'read' }, enabled: true, upstream: { baseUrl: `${upstreamUrl}/api`, key: { header: 'x-key' }, routes: { read: [{ method: 'GET', path: '/v1/charges*' }] }, allowPathParameters: true } },
        // Declared, but its key is never set.
        { id: 'unkeyed', actions: { call: 'write' }, enabled: true, upstream: { baseUrl: upstreamUrl, key: { header: 'authorization', scheme: 'Bearer' }, routes: { call: [{ method: 'GET', path: '/v1/*' }] } } },
      ],
      roles: [
        ...base.roles,
        { id: 'llm-user', version: 1, actions: ['llm:call'], approvedBy: 'alice@example.com' },
        { id: 'pay-reader', version: 1, actions: ['pay:read', 'payq:read', 'matrix:read'], approvedBy: 'alice@example.com' },
        { id: 'unkeyed-user', version: 1, actions: ['unkeyed:call'], approvedBy: 'alice@example.com' },
      ],
      grants: [
        ...base.grants,
        { identity: 'support-triage/prod', role: 'pay-reader@1', tenants: ['*'], maxTtlSeconds: 900, kinds: ['jwt'], quotaBucket: 'pay-shared' },
        { identity: 'support-triage/prod', role: 'llm-user@1', tenants: ['*'], maxTtlSeconds: 900, kinds: ['jwt'], quotaBucket: 'llm-shared' },
        { identity: 'billing-bot/prod', role: 'llm-user@1', tenants: ['*'], maxTtlSeconds: 300, kinds: ['jwt'], quotaBucket: 'llm-tiny' },
        { identity: 'support-triage/prod', role: 'unkeyed-user@1', tenants: ['*'], maxTtlSeconds: 900, kinds: ['jwt'], quotaBucket: 'llm-shared' },
      ],
      quotas: [{ bucket: 'llm-tiny', windowSeconds: 3600, requests: 3 }],
    };
    const capture = (level: string) => (message: string, extra?: Record<string, unknown>) => void logLines.push(JSON.stringify({ level, message, ...extra }));
    issuer = await startTestIssuer({ policy, log: { info: capture('info'), warn: capture('warn'), error: capture('error') } });
    const set = await issuer.post('/v1/admin', { command: 'upstream.secret.set', provider: 'llm', secret: KEY, reason: 'test' }, KEYS.admin);
    expect(set.status).toBe(200);
    for (const provider of ['pay', 'payq', 'matrix']) {
      expect((await issuer.post('/v1/admin', { command: 'upstream.secret.set', provider, secret: ODD_KEY, reason: 'test' }, KEYS.admin)).status).toBe(200);
    }
  });
  afterAll(async () => {
    await issuer.stop();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });
  const token = async (agentKey: string = KEYS.agent, tenant?: string) => {
    const issued = await issuer.post('/v1/credentials', { tool: 'llm', actions: ['llm:call'], ...(tenant && { tenant }) }, agentKey);
    expect(issued.status).toBe(201);
    return issued.body.token as string;
  };
  const readToken = async (tool: 'pay' | 'payq' | 'matrix') => {
    const issued = await issuer.post('/v1/credentials', { tool, actions: [`${tool}:read`] }, KEYS.agent);
    expect(issued.status, JSON.stringify(issued.body)).toBe(201);
    return issued.body.token as string;
  };
  /** A raw request: the target goes out exactly as written (fetch would resolve dot segments). */
  const rawGet = (target: string, headers: Record<string, string>) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const url = new URL(issuer.url);
      const req = httpRequest({ host: url.hostname, port: url.port, method: 'GET', path: target, headers }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end();
    });

  it.each([
    '/v1/proxy/pay/v1/charges/..;/..;/..;/admin/keys',
    '/v1/proxy/pay/v1/charges/..;jsessionid=1/..;/..;/admin/keys',
    '/v1/proxy/pay/v1/charges/..%3B/..%3B/..%3B/admin/keys',
    '/v1/proxy/pay/v1/charges/%252e%252e/%252e%252e/%252e%252e/admin/keys',
    '/v1/proxy/matrix/v1/charges/..;/..;/..;/admin/keys',
  ])('never forwards a path that climbs out of the route and the base path: %s', async (target) => {
    const provider = target.split('/')[3] as 'pay' | 'matrix';
    const before = received.length;
    const response = await rawGet(target, { authorization: `Bearer ${await readToken(provider)}` });
    expect(response.status, response.text).toBe(400);
    expect(JSON.parse(response.text).error).toMatchObject({ code: 'invalid_request', field: 'path' });
    expect(received.slice(before)).toEqual([]);
  });

  it('forwards path parameters only for a provider that allows them', async () => {
    handlers.set('/api/v1/charges;v=2', (_req, res) => res.end('{"matrix":true}'));
    const before = received.length;
    const refused = await rawGet('/v1/proxy/pay/v1/charges;v=2', { authorization: `Bearer ${await readToken('pay')}` });
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.text).error).toMatchObject({ code: 'invalid_request', field: 'path' });
    expect(received.slice(before)).toEqual([]);
    const allowed = await rawGet('/v1/proxy/matrix/v1/charges;v=2', { authorization: `Bearer ${await readToken('matrix')}` });
    expect(allowed).toEqual({ status: 200, text: '{"matrix":true}' });
    expect(received.slice(before)).toEqual(['/api/v1/charges;v=2']);
  });

  it('never hands the agent a query key the upstream quotes back in Location or Content-Location', async () => {
    handlers.set('/v1/moved', (req, res) => {
      // A common redirect: the same URL with a trailing slash, query (and key) included.
      res.writeHead(301, { location: `http://127.0.0.1${req.url!.replace('/v1/moved', '/v1/moved/')}`, 'content-location': req.url, 'content-type': 'text/plain' });
      res.end('moved');
    });
    const response = await fetch(`${issuer.url}/v1/proxy/llm/v1/moved?page=2`, { headers: { authorization: `Bearer ${await token()}` }, redirect: 'manual' });
    expect(response.status).toBe(301);
    expect(await response.text()).toBe('moved');
    expect(JSON.stringify([...response.headers])).not.toContain(KEY);
    expect(response.headers.get('location')).toMatch(/\/v1\/moved\/\?page=2&api_key=\[redacted\]$/);
    expect(response.headers.get('content-location')).toBe('/v1/moved?page=2&api_key=[redacted]');
  });

  describe('never hands the agent the key, however the upstream encodes its echo', () => {
    /** What each echo endpoint was asked for: the broker must ask for identity. */
    const asked: (string | undefined)[] = [];
    const echo = (req: IncomingMessage) => {
      asked.push(req.headers['accept-encoding']);
      return JSON.stringify({ authorization: req.headers.authorization ?? null, url: req.url });
    };
    beforeAll(() => {
      // Compresses when asked to, as most servers do.
      handlers.set('/api/v1/charges/echo-gzip', (req, res) => {
        const body = echo(req);
        if (/gzip/.test(String(req.headers['accept-encoding']))) {
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
          res.end(gzipSync(body));
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(body);
        }
      });
      // Compresses whatever it was asked for.
      handlers.set('/api/v1/charges/echo-always-gzip', (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(gzipSync(echo(req)));
      });
      // JSON as Go (\u0026 for &, <, >) and PHP (\/) write it, split mid-key over two chunks.
      handlers.set('/api/v1/charges/echo-json', (req, res) => {
        const body = echo(req)
          .replace(/[&<>+=]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
          .replace(/\//g, '\\/');
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
        res.write(body.slice(0, 30));
        setTimeout(() => res.end(body.slice(30)), 20).unref();
      });
      // Percent-encoded by an encoder that leaves / alone (Python's quote()).
      handlers.set('/api/v1/charges/echo-quoted', (req, res) => {
        asked.push(req.headers['accept-encoding']);
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`seen=${encodeURIComponent(req.headers.authorization ?? '').replace(/%2F/g, '/')}`);
      });
      // A login redirect carrying the request URL (and so the query key) in its own query: encoded twice.
      handlers.set('/api/v1/charges/login', (req, res) => {
        asked.push(req.headers['accept-encoding']);
        const next = `/login?next=${encodeURIComponent(req.url ?? '')}`;
        res.writeHead(302, { location: next, 'content-type': 'text/plain' });
        res.end(`go to ${next}`);
      });
    });
    const get = async (provider: 'pay' | 'payq', path: string) =>
      fetch(`${issuer.url}/v1/proxy/${provider}/v1/charges/${path}`, {
        headers: { authorization: `Bearer ${await readToken(provider)}`, 'accept-encoding': 'gzip' },
        redirect: 'manual',
      });

    it('an agent that asks for gzip gets the echo uncompressed, and masked', async () => {
      asked.length = 0;
      const response = await get('pay', 'echo-gzip');
      const text = await response.text();
      expect(response.status).toBe(200);
      expect(asked).toEqual(['identity']);
      expect(response.headers.get('content-encoding')).toBeNull();
      expect(text).not.toContain(ODD_KEY);
      // JSON.stringify wrote " and \ as \" and \\: the mask covers those spellings too.
      expect(JSON.parse(text).authorization).toBe(`Bearer ${'*'.repeat(ODD_KEY.length + 2)}`);
    });

    it('an answer compressed anyway is refused, not passed on unread', async () => {
      const response = await get('pay', 'echo-always-gzip');
      const bytes = Buffer.from(await response.arrayBuffer());
      expect(response.status).toBe(502);
      expect(JSON.parse(bytes.toString()).error).toMatchObject({ code: 'upstream_failed', provider: 'pay' });
      const decoded = response.headers.get('content-encoding') === 'gzip' ? gunzipSync(bytes) : bytes;
      expect(decoded.toString('latin1')).not.toContain(ODD_KEY);
    });

    it('JSON \\u escapes and \\/', async () => {
      const response = await get('pay', 'echo-json');
      const text = await response.text();
      expect(response.status).toBe(200);
      expect(Buffer.byteLength(text)).toBe(Number(response.headers.get('content-length')));
      expect(JSON.parse(text).authorization).toMatch(/^Bearer \*+$/);
    });

    it('percent-encoding that leaves / unescaped', async () => {
      const response = await get('pay', 'echo-quoted');
      const text = await response.text();
      expect(response.status).toBe(200);
      expect(decodeURIComponent(text)).not.toContain(ODD_KEY);
      expect(text).toMatch(/^seen=Bearer%20\*+$/);
    });

    it('a query key encoded twice in a Location header and the body', async () => {
      const response = await get('payq', 'login?page=2');
      const text = await response.text();
      expect(response.status).toBe(302);
      const location = response.headers.get('location') ?? '';
      for (const seen of [location, text]) {
        const twice = decodeURIComponent(decodeURIComponent(seen.replace(/\[redacted\]|\*+/g, '')));
        expect(twice).not.toContain(ODD_KEY);
        expect(twice).toContain('/api/v1/charges/login?page=2&api_key=');
      }
      expect(location).toBe(`/login?next=${encodeURIComponent('/api/v1/charges/login?page=2&api_key=')}[redacted]`);
    });
  });

  it('cuts an upload the agent keeps dripping once the upstream has answered, so it cannot hold the upstream connection', async () => {
    let upstreamClosed: number | undefined;
    handlers.set('/v1/early', (req, res) => {
      req.resume();
      req.socket.once('close', () => (upstreamClosed = Date.now()));
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('early');
    });
    const t = await token();
    const url = new URL(issuer.url);
    const req = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path: '/v1/proxy/llm/v1/early', headers: { authorization: `Bearer ${t}`, 'transfer-encoding': 'chunked' } });
    req.on('error', () => {});
    req.write('x');
    const answered = await new Promise<{ status: number; text: string }>((resolve) =>
      req.on('response', (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      }),
    );
    const at = Date.now();
    const drip = setInterval(() => req.write('x'), 50);
    try {
      expect(answered).toEqual({ status: 200, text: 'early' });
      // Well past the provider's 800 ms deadline: the upload must be cut by now.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(upstreamClosed, 'the upstream connection is still held by the dripping upload').toBeDefined();
      expect(upstreamClosed! - at).toBeLessThan(1_000);
    } finally {
      clearInterval(drip);
      req.destroy();
    }
  });

  it('cuts off only the lanes of one agent that provokes 401s with a good key, and counts no 403 at all', async () => {
    let refusals = 0;
    const refuse = (status: number) => (req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      refusals += 1;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `not with ${new URL(req.url ?? '/', 'http://u').searchParams.get('api_key')}` }));
    };
    handlers.set('/v1/needs-other-auth', refuse(401));
    handlers.set('/v1/not-yours', refuse(403));
    const call = (t: string, path: string) => fetch(`${issuer.url}/v1/proxy/llm${path}`, { headers: { authorization: `Bearer ${t}` } });
    const answer = async (response: Response) => ({ status: response.status, ...(((await response.json()) as { error?: Record<string, unknown> }).error ?? {}) });
    // One agent, two lanes (its grant allows any tenant): each is cut off after three 401s.
    for (const tenant of ['acme', 'globex']) {
      const rogue = await token(KEYS.agent, tenant);
      for (let i = 0; i < 3; i += 1) expect(await answer(await call(rogue, '/v1/needs-other-auth'))).toMatchObject({ status: 502, code: 'upstream_auth_failed', upstreamStatus: 401 });
      expect(await answer(await call(rogue, '/v1/needs-other-auth'))).toMatchObject({ status: 503, code: 'upstream_circuit_open', circuit: 'lane' });
      expect(await answer(await call(rogue, '/v1/fine'))).toMatchObject({ status: 503, code: 'upstream_circuit_open', circuit: 'lane' });
    }
    expect(refusals).toBe(6);
    // Every other lane still reaches the upstream: one identity cannot open the provider's circuit.
    const bystander = await call(await token(KEYS.agent, 'initech'), '/v1/fine');
    expect(bystander.status, await bystander.text()).toBe(200);

    // A 403 is the upstream refusing one request made with a key it accepted: still not passed
    // through (its body may quote the key), and never a reason to stop calling.
    const curious = await token(KEYS.agent, 'acme');
    for (let i = 0; i < 5; i += 1) {
      const response = await call(curious, '/v1/not-yours');
      const text = await response.text();
      expect(text).not.toContain(KEY);
      expect({ status: response.status, ...(JSON.parse(text) as { error: object }).error }).toMatchObject({ status: 502, code: 'upstream_auth_failed', upstreamStatus: 403, message: expect.stringContaining('refused this request') });
    }
    expect(refusals).toBe(11);
  });

  it('a circuit probe refused by the quota is released, so the circuit closes once the key works again', async () => {
    let refuseKey = true;
    handlers.set('/v1/probe', (req, res) => {
      req.resume();
      res.writeHead(refuseKey ? 401 : 200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    const call = (t: string) => fetch(`${issuer.url}/v1/proxy/llm/v1/probe`, { headers: { authorization: `Bearer ${t}` } });
    const spender = await token(KEYS.otherAgent); // bucket llm-tiny: three requests an hour
    const agent = await token(); // an unmetered bucket
    // Lanes of two identities see the key refused: the circuit opens for every lane.
    for (let i = 0; i < 3; i += 1) expect((await call(spender)).status).toBe(502);
    for (let i = 0; i < 3; i += 1) expect((await call(agent)).status).toBe(502);
    expect((await call(agent)).status).toBe(503);
    refuseKey = false;
    // Past the cool-down, the first call through is the probe: the spender's, refused by its quota.
    const moved = vi.spyOn(Date, 'now').mockReturnValue(Date.now() + 31_000);
    try {
      const refused = await call(spender);
      expect(refused.status).toBe(429);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('quota_exhausted');
      const next = await call(agent);
      expect(next.status, await next.text()).toBe(200);
    } finally {
      moved.mockRestore();
    }
  });

  it('refuses a call to a provider whose key was never set as the operator\'s to fix, not retryable, and sends nothing upstream', async () => {
    let reached = false;
    handlers.set('/v1/unkeyed', (req, res) => {
      reached = true;
      req.resume();
      res.end('{}');
    });
    const issued = await issuer.post('/v1/credentials', { tool: 'unkeyed', actions: ['unkeyed:call'] }, KEYS.agent);
    expect(issued.status).toBe(201);
    const response = await fetch(`${issuer.url}/v1/proxy/unkeyed/v1/unkeyed`, { headers: { authorization: `Bearer ${issued.body.token as string}` } });
    expect(response.status).toBe(502);
    expect(((await response.json()) as { error: unknown }).error).toMatchObject({ code: 'upstream_auth_failed', provider: 'unkeyed', retryable: false });
    expect(response.headers.get('retry-after')).toBeNull();
    expect(reached).toBe(false);
  });

  it('drops the connection of a refused key at once, however slowly the upstream sends its refusal', async () => {
    let upstreamClosed: number | undefined;
    handlers.set('/v1/refuse-slowly', (req, res) => {
      req.resume();
      req.socket.once('close', () => (upstreamClosed = Date.now()));
      res.writeHead(403, { 'content-type': 'text/plain' });
      const drip = setInterval(() => res.write('x'), 50);
      res.once('close', () => clearInterval(drip));
    });
    const started = Date.now();
    const response = await fetch(`${issuer.url}/v1/proxy/llm/v1/refuse-slowly`, { headers: { authorization: `Bearer ${await token()}` } });
    expect(response.status).toBe(502);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('upstream_auth_failed');
    // Well past the provider's 800 ms deadline.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(upstreamClosed, 'the broker is still draining the refusal').toBeDefined();
    expect(upstreamClosed! - started).toBeLessThan(1_000);
  });
});
