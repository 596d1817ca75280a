/**
 * The broker against an upstream that misbehaves on purpose (issue 6 review): one that quotes
 * the request URL back in a redirect, one that answers before the agent has finished its
 * upload, one that refuses the key until the circuit opens, and routes that refuse every call
 * with 401 or 403 although the key is good (issue 14: one agent must not cut every tenant off).
 * Each case is a bug that was found and fixed; the test fails without the fix.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PolicyDocument } from '../../shared/policy-file.ts';
import { KEYS, startTestIssuer, testPolicy, type TestIssuer } from '../helpers/issuer.ts';

const KEY = 'sk_live_review_key_QQQQQQQQQQQQQQQQ';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describe('the broker against a misbehaving upstream', () => {
  let issuer: TestIssuer;
  let upstreamUrl: string;
  const handlers = new Map<string, Handler>();
  let upstream: Server;
  const logLines: string[] = [];
  beforeAll(async () => {
    upstream = createServer((req, res) => {
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
        // Declared, but its key is never set.
        { id: 'unkeyed', actions: { call: 'write' }, enabled: true, upstream: { baseUrl: upstreamUrl, key: { header: 'authorization', scheme: 'Bearer' }, routes: { call: [{ method: 'GET', path: '/v1/*' }] } } },
      ],
      roles: [
        ...base.roles,
        { id: 'llm-user', version: 1, actions: ['llm:call'], approvedBy: 'alice@example.com' },
        { id: 'unkeyed-user', version: 1, actions: ['unkeyed:call'], approvedBy: 'alice@example.com' },
      ],
      grants: [
        ...base.grants,
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
