/**
 * The broker end to end (issue 6): a real issuer on loopback, a real upstream on loopback that
 * accepts only the real key, agents that hold nothing but their Lanyard credentials.
 */
import { request as httpRequest } from 'node:http';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { lanyardFetch } from '@lanyard/sdk';
import type { DecisionRecord } from '../../shared/domain/model.ts';
import type { Log } from '../../shared/ports/log.ts';
import type { PolicyDocument } from '../../shared/policy/policy-file.ts';
import { KEYS, startTestIssuer, testPolicy, type TestIssuer } from '../helpers/issuer.ts';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts';
import { startFakeUpstream, type FakeUpstream } from '../helpers/upstream.ts';
import { highS, padded, strayBits } from '../sdk/fixtures/tokens.ts';

const KEY_A = 'sk_live_upstream_key_AAAAAAAAAAAAAAAAAAAA';
const KEY_B = 'sk_live_upstream_key_BBBBBBBBBBBBBBBBBBBB';

/**
 * The providers' deadline (`timeoutMs`). Loopback calls take milliseconds, but on a loaded
 * machine the scheduler can hold one for seconds: a tight deadline there is a 504 that says
 * nothing about the broker (issue 14). Only the deadline test sets a short one.
 */
const GENEROUS_TIMEOUT_MS = 15_000;

function brokerPolicy(upstreamUrl: string, timeoutMs = GENEROUS_TIMEOUT_MS): PolicyDocument {
  const base = testPolicy();
  return {
    ...base,
    tools: [
      ...base.tools,
      {
        id: 'payments',
        actions: { 'charges.read': 'read', 'charges.create': 'write' },
        enabled: true,
        upstream: {
          baseUrl: upstreamUrl,
          key: { header: 'authorization', scheme: 'Bearer' },
          routes: {
            'charges.read': [
              { method: 'GET', path: '/v1/charges*' },
              { method: 'GET', path: '/v1/big' },
              { method: 'GET', path: '/v1/slow' },
              { method: 'GET', path: '/v1/echo' },
            ],
            'charges.create': [
              { method: 'POST', path: '/v1/charges' },
              { method: 'POST', path: '/v1/upload' },
            ],
          },
          units: { name: 'calls', header: 'x-usage-units' },
          timeoutMs,
          maxRequestBytes: 1024 * 1024,
          maxResponseBytes: 2 * 1024 * 1024,
        },
      },
      {
        id: 'llm',
        actions: { complete: 'write' },
        enabled: true,
        upstream: {
          baseUrl: upstreamUrl,
          key: { query: 'api_key' },
          routes: { complete: [{ method: 'POST', path: '/v1/complete' }, { method: 'GET', path: '/v1/echo' }] },
          units: { name: 'tokens', json: 'usage.total_tokens' },
          timeoutMs,
        },
      },
    ],
    roles: [
      ...base.roles,
      { id: 'payments-reader', version: 1, actions: ['payments:charges.read'], approvedBy: 'alice@example.com' },
      { id: 'payments-writer', version: 1, actions: ['payments:charges.read', 'payments:charges.create'], approvedBy: 'alice@example.com' },
      { id: 'llm-user', version: 1, actions: ['llm:complete'], approvedBy: 'alice@example.com' },
    ],
    grants: [
      ...base.grants,
      { identity: 'support-triage/prod', role: 'payments-reader@1', tenants: ['acme'], maxTtlSeconds: 900, kinds: ['jwt'], quotaBucket: 'payments-support', budgetOwner: 'team-support' },
      { identity: 'billing-bot/prod', role: 'payments-writer@1', tenants: ['acme'], maxTtlSeconds: 300, kinds: ['jwt'], quotaBucket: 'payments-billing', budgetOwner: 'team-billing' },
      { identity: 'support-triage/prod', role: 'llm-user@1', tenants: ['*'], maxTtlSeconds: 900, kinds: ['jwt'], quotaBucket: 'llm-shared', budgetOwner: 'team-support' },
      { identity: 'billing-bot/prod', role: 'llm-user@1', tenants: ['*'], maxTtlSeconds: 300, kinds: ['jwt'], quotaBucket: 'llm-shared', budgetOwner: 'team-billing' },
    ],
    quotas: [
      { bucket: 'payments-billing', windowSeconds: 3600, requests: 5 },
      { bucket: 'llm-shared', windowSeconds: 3600, units: 100 },
    ],
  };
}

interface Harness {
  readonly issuer: TestIssuer;
  readonly upstream: FakeUpstream;
  readonly logLines: string[];
  credential(agentKey: string, tool: string, actions: string[], tenant?: string): Promise<{ token: string; lane: string; raw: unknown }>;
  setSecret(provider: string, secret: string): Promise<{ status: number; body: any }>;
  admin(command: Record<string, unknown>): Promise<{ status: number; body: any }>;
  /** The tool's records once `ready` holds for them (records of proxied calls land after their answer streamed). */
  decisions(tool: string, ready?: (records: DecisionRecord[]) => boolean): Promise<DecisionRecord[]>;
  close(): Promise<void>;
}

async function harness(options: { timeoutMs?: number } = {}): Promise<Harness> {
  const upstream = await startFakeUpstream([KEY_A]);
  const logLines: string[] = [];
  const capture = (level: string) => (message: string, extra?: Record<string, unknown>) => void logLines.push(JSON.stringify({ level, message, ...extra }));
  const log: Log = { info: capture('info'), warn: capture('warn'), error: capture('error') };
  const issuer = await startTestIssuer({ policy: brokerPolicy(upstream.url, options.timeoutMs), log });
  const admin = (command: Record<string, unknown>) => issuer.post('/v1/admin', command, KEYS.admin);
  const setSecret = (provider: string, secret: string) => admin({ command: 'upstream.secret.set', provider, secret, reason: 'test rotation' });
  const set = await setSecret('payments', KEY_A);
  expect(set.status).toBe(200);
  expect((await setSecret('llm', KEY_A)).status).toBe(200);
  return {
    issuer,
    upstream,
    logLines,
    admin,
    setSecret,
    async credential(agentKey, tool, actions, tenant) {
      const issued = await issuer.post('/v1/credentials', { tool, actions, ...(tenant && { tenant }) }, agentKey);
      expect(issued.status, JSON.stringify(issued.body)).toBe(201);
      return { token: issued.body.token as string, lane: issued.body.lane as string, raw: issued.body };
    },
    async decisions(tool, ready = () => true) {
      for (let attempt = 0; ; attempt += 1) {
        const page = await issuer.runtime.store.queryDecisions({ by: 'tool', value: tool, limit: 1000 });
        const records = [...page.items];
        if (ready(records) || attempt === 40) return records;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async close() {
      await issuer.stop();
      await upstream.close();
    },
  };
}

/** A raw HTTP/1.1 request: the target, Host and headers go out exactly as written (fetch would normalize them). */
function raw(base: string, method: string, target: string, headers: Record<string, string | string[]> = {}, body?: Buffer | AsyncIterable<Buffer>): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path: target, headers, setHost: !('host' in headers) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      void (async () => {
        try {
          for await (const chunk of body) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
          req.end();
        } catch (error) {
          req.destroy(error as Error);
        }
      })();
    }
  });
}

/** Resolves once `ready` holds, looking again every 20 ms: for progress counted in events, not time. */
async function until(ready: () => boolean): Promise<void> {
  while (!ready()) await new Promise((resolve) => setTimeout(resolve, 20));
}

const errorOf = async (response: Response): Promise<any> => ((await response.json()) as { error: unknown }).error;
const code = (text: string) => (JSON.parse(text) as { error: { code: string; field?: string } }).error;

describe('the broker', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(async () => h.close());

  it('forwards an agent call with the real key, and the agent never holds it', async () => {
    const cred = await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme');
    expect(JSON.stringify(cred.raw)).not.toContain(KEY_A);
    const response = await fetch(`${h.issuer.url}/v1/proxy/payments/v1/charges?limit=3`, { headers: { authorization: `Bearer ${cred.token}` } });
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(JSON.parse(text)).toMatchObject({ ok: true, method: 'GET', path: '/v1/charges', query: '?limit=3' });
    const hit = h.upstream.hits.at(-1)!;
    expect(hit.key).toBe(KEY_A);
    expect(hit.headers.host).toBe(new URL(h.upstream.url).host);
    // The upstream never sees the agent's Lanyard credential either.
    expect(JSON.stringify(hit.headers)).not.toContain(cred.token);
    // What the agent received: no key, no upstream session cookie.
    const received = [text, JSON.stringify([...response.headers])].join('\n');
    expect(received).not.toContain(KEY_A);
    expect(response.headers.get('set-cookie')).toBeNull();
    expect(response.headers.get('x-lanyard-request-id')).toMatch(/./);

    const jti = (JSON.parse(Buffer.from(cred.token.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;
    const isCall = (r: DecisionRecord) => r.decision === 'proxied' && r.credentialId === jti;
    const call = (await h.decisions('payments', (records) => records.some(isCall))).find(isCall);
    expect(call).toMatchObject({
      identity: 'support-triage/prod',
      lane: cred.lane,
      tool: 'payments',
      tenant: 'acme',
      reason: 'forwarded',
      quotaBucket: 'payments-support',
      budgetOwner: 'team-support',
      proxy: { method: 'GET', pathPattern: '/v1/charges*', action: 'payments:charges.read', status: 200, units: 3, bytesIn: 0 },
    });
    expect(call?.proxy?.bytesOut).toBe(Buffer.byteLength(text));
    expect(call?.proxy?.secretVersion).toMatch(/./);
  });

  it('counts a forwarded call in /metrics under its provider', async () => {
    const forwarded = async () => {
      const res = await fetch(`${h.issuer.url}/metrics`, { headers: { authorization: `Bearer ${KEYS.verifier}` } });
      return sampleValue(parsePrometheusText(await res.text()), 'lanyard_broker_calls_total', { provider: 'payments', outcome: 'forwarded' });
    };
    const cred = await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme');
    const before = await forwarded();

    const response = await fetch(`${h.issuer.url}/v1/proxy/payments/v1/charges?limit=1`, { headers: { authorization: `Bearer ${cred.token}` } });
    await response.text();
    const after = await forwarded();
    // The call's audit record lands after its answer streamed: wait for it before the harness closes.
    const jti = (JSON.parse(Buffer.from(cred.token.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;
    await h.decisions('payments', (records) => records.some((r) => r.decision === 'proxied' && r.credentialId === jti));

    expect(response.status).toBe(200);
    expect(after - before).toBe(1);
  });

  it('refuses a token it accepted before once it has expired', async () => {
    const cred = await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme');
    const call = () => fetch(`${h.issuer.url}/v1/proxy/payments/v1/charges`, { headers: { authorization: `Bearer ${cred.token}` } });
    expect((await call()).status).toBe(200);
    const exp = (JSON.parse(Buffer.from(cred.token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
    const moved = vi.spyOn(Date, 'now').mockReturnValue(exp * 1000 + 6_000);
    let refused: Response;
    try {
      refused = await call();
    } finally {
      moved.mockRestore();
    }
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('lanyard_code="token_expired"');
  });

  it('injects a query-parameter key and reads units from the JSON answer', async () => {
    const cred = await h.credential(KEYS.agent, 'llm', ['llm:complete']);
    const response = await fetch(`${h.issuer.url}/v1/proxy/llm/v1/complete`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cred.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tokens: 7 }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ text: 'done', usage: { total_tokens: 7 } });
    expect(new URL(h.upstream.hits.at(-1)!.url, 'http://x').searchParams.get('api_key')).toBe(KEY_A);
    const call = (await h.decisions('llm', (records) => records.some((r) => r.decision === 'proxied'))).find((r) => r.decision === 'proxied');
    expect(call?.proxy).toMatchObject({ units: 7, status: 200, action: 'llm:complete', pathPattern: '/v1/complete' });
  });

  it('masks the key in an answer body that quotes it back, whichever way the key travels', async () => {
    const llm = await h.credential(KEYS.agent, 'llm', ['llm:complete']);
    const payments = await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme');
    for (const [provider, token] of [['llm', llm.token], ['payments', payments.token]] as const) {
      const response = await fetch(`${h.issuer.url}/v1/proxy/${provider}/v1/echo?q=1`, { headers: { authorization: `Bearer ${token}` } });
      const text = await response.text();
      expect(response.status).toBe(404);
      // The upstream did quote it: the broker masked it, keeping the declared length true.
      expect(Buffer.byteLength(text)).toBe(Number(response.headers.get('content-length')));
      expect(text).not.toContain(KEY_A);
      expect(text).toContain('*'.repeat(KEY_A.length));
    }
    // Both were asked for a body the broker can read, the header-keyed one too: it echoed its header.
    expect(h.upstream.hits.at(-2)?.headers['accept-encoding']).toBe('identity');
    expect(h.upstream.hits.at(-1)?.headers['accept-encoding']).toBe('identity');
  });

  it('streams bodies both ways and cuts an answer that outgrows the limit', async () => {
    const cred = await h.credential(KEYS.otherAgent, 'payments', ['payments:charges.create'], 'acme');
    const chunk = Buffer.alloc(64 * 1024, 1);
    const upload = () => Readable.from(Array.from({ length: 8 }, () => chunk));
    const sent = await raw(h.issuer.url, 'POST', '/v1/proxy/payments/v1/upload', { authorization: `Bearer ${cred.token}`, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' }, upload());
    expect(sent.status).toBe(200);
    expect(JSON.parse(sent.text)).toMatchObject({ bodyBytes: 512 * 1024 });
    expect(h.upstream.hits.at(-1)?.bodyBytes).toBe(512 * 1024);

    const reader = await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme');
    const big = await fetch(`${h.issuer.url}/v1/proxy/payments/v1/big`, { headers: { authorization: `Bearer ${reader.token}` } });
    expect(big.status).toBe(200);
    // 3 MiB against a 2 MiB limit: the stream is cut, never delivered whole.
    const received = await big.arrayBuffer().then((b) => b.byteLength, () => -1);
    expect(received).toBeLessThan(3 * 1024 * 1024);
    const isBig = (r: DecisionRecord) => r.proxy?.pathPattern === '/v1/big';
    const cut = (await h.decisions('payments', (records) => records.some(isBig))).find(isBig);
    expect(cut?.reason).toBe('upstream_failed');
  });

  describe('refuses hostile requests before anything reaches the upstream', () => {
    let token: string;
    let readToken: string;
    let before: number;
    beforeAll(async () => {
      token = (await h.credential(KEYS.otherAgent, 'payments', ['payments:charges.create'], 'acme')).token;
      readToken = (await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme')).token;
    });
    afterEach(() => {
      expect(h.upstream.hits.length).toBe(before);
    });
    const refuse = async (method: string, target: string, headers: Record<string, string | string[]>, status: number, errorCode: string, field?: string, body?: Buffer | AsyncIterable<Buffer>) => {
      before = h.upstream.hits.length;
      const response = await raw(h.issuer.url, method, target, headers, body);
      expect(response.status, response.text).toBe(status);
      const error = code(response.text);
      expect(error.code).toBe(errorCode);
      if (field) expect(error.field).toBe(field);
      expect(response.text).not.toContain(KEY_A);
    };

    it.each([
      ['/v1/proxy/payments/v1/../admin'],
      ['/v1/proxy/payments/v1/charges/../../admin'],
      ['/v1/proxy/payments/v1/%2e%2e/admin'],
      ['/v1/proxy/payments/v1/charges%2F..%2F..%2Fadmin'],
      ['/v1/proxy/payments/v1/charges%5c..%5cadmin'],
      ['/v1/proxy/payments//evil.example/v1/charges'],
    ])('path traversal %s', async (target) => {
      await refuse('GET', target, { authorization: `Bearer ${readToken}` }, 400, 'invalid_request', 'path');
    });

    it('an absolute URL as the request target', async () => {
      await refuse('GET', 'http://evil.example/v1/proxy/payments/v1/charges', { authorization: `Bearer ${readToken}` }, 400, 'invalid_request', 'target');
    });

    it('a method outside the declared patterns, and a declared route the scope lacks', async () => {
      await refuse('DELETE', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${token}` }, 403, 'route_not_allowed', 'path');
      await refuse('POST', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${readToken}`, 'content-type': 'application/json' }, 403, 'insufficient_scope', undefined, Buffer.from('{}'));
    });

    it('an Authorization meant for the upstream, a second Authorization, cookies and hop-by-hop headers', async () => {
      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: 'Bearer sk_live_agents_own_key' }, 400, 'invalid_request', 'header:authorization');
      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: 'Basic dXNlcjpwYXNz' }, 400, 'invalid_request', 'header:authorization');
      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: [`Bearer ${readToken}`, 'Bearer sk_live_x'] }, 400, 'invalid_request', 'header:authorization');
      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${readToken}`, cookie: 'session=1' }, 400, 'invalid_request', 'header:cookie');
      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${readToken}`, 'proxy-authorization': 'Basic x' }, 400, 'invalid_request', 'header:proxy-authorization');
      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${readToken}`, connection: 'upgrade', upgrade: 'websocket' }, 400, 'invalid_request');
    });

    it('the key parameter of a query-keyed provider', async () => {
      const llm = (await h.credential(KEYS.agent, 'llm', ['llm:complete'])).token;
      await refuse('POST', '/v1/proxy/llm/v1/complete?api_key=sk_live_mine', { authorization: `Bearer ${llm}`, 'content-type': 'application/json' }, 400, 'invalid_request', 'query:api_key', Buffer.from('{}'));
    });

    it('an oversized body, declared or streamed', async () => {
      await refuse('POST', '/v1/proxy/payments/v1/upload', { authorization: `Bearer ${token}`, 'content-length': String(2 * 1024 * 1024) }, 413, 'request_too_large', undefined, Buffer.alloc(2 * 1024 * 1024));
      const endless = () => Readable.from(Array.from({ length: 40 }, () => Buffer.alloc(64 * 1024, 2)));
      await refuse('POST', '/v1/proxy/payments/v1/upload', { authorization: `Bearer ${token}`, 'transfer-encoding': 'chunked' }, 413, 'request_too_large', undefined, endless());
    });

    it('another string for a token it already accepted: padded, with stray bits, or with the high-S signature', async () => {
      const accepted = await raw(h.issuer.url, 'GET', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${readToken}` });
      expect(accepted.status).toBe(200);

      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${padded(readToken)}` }, 400, 'invalid_request', 'header:authorization');
      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${strayBits(readToken)}` }, 401, 'token_malformed');
      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${highS(readToken)}` }, 401, 'signature_invalid');
    });

    it('no credential, a credential for another audience, and an unknown provider', async () => {
      await refuse('GET', '/v1/proxy/payments/v1/charges', {}, 401, 'unauthenticated');
      const tickets = (await h.credential(KEYS.agent, 'tickets', ['tickets:read'], 'acme')).token;
      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${tickets}` }, 401, 'wrong_audience');
      await refuse('GET', '/v1/proxy/nowhere/v1/charges', { authorization: `Bearer ${readToken}` }, 404, 'not_found');
      const forged = `${readToken.slice(0, readToken.lastIndexOf('.'))}.${Buffer.alloc(64, 1).toString('base64url')}`;
      await refuse('GET', '/v1/proxy/payments/v1/charges', { authorization: `Bearer ${forged}` }, 401, 'signature_invalid');
    });
  });

  it('sends the upstream its own Host whatever Host or forwarding headers the agent sets', async () => {
    const cred = await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme');
    const response = await raw(h.issuer.url, 'GET', '/v1/proxy/payments/v1/charges', {
      authorization: `Bearer ${cred.token}`,
      host: 'evil.example',
      'x-forwarded-host': 'evil.example',
      forwarded: 'host=evil.example',
    });
    expect(response.status).toBe(200);
    const hit = h.upstream.hits.at(-1)!;
    expect(hit.headers.host).toBe(new URL(h.upstream.url).host);
    expect(hit.headers['x-forwarded-host']).toBeUndefined();
    expect(hit.headers.forwarded).toBeUndefined();
  });

  it('records every refusal, and no key or token ever reaches a log line, event, audit record or file on disk', async () => {
    const records = await h.decisions('payments');
    expect(records.some((r) => r.decision === 'denied' && r.reason === 'route_not_allowed')).toBe(true);
    expect(records.some((r) => r.decision === 'denied' && r.reason === 'insufficient_scope')).toBe(true);
    const events = await h.issuer.runtime.events.readLog();
    const everything = [JSON.stringify(records), JSON.stringify(events), ...h.logLines].join('\n');
    expect(everything).not.toContain(KEY_A);
    expect(everything).not.toContain('sk_live_agents_own_key');
    expect(everything).not.toContain('sk_live_mine');
    const files = await readdir(h.issuer.dataDir, { recursive: true, withFileTypes: true });
    for (const file of files.filter((f) => f.isFile())) {
      const bytes = await readFile(join(file.parentPath, file.name));
      expect(bytes.includes(Buffer.from(KEY_A)), `${file.name} holds the key in clear`).toBe(false);
    }
  });
});

describe('the broker and a slow upstream', () => {
  let h: Harness;
  beforeAll(async () => {
    // The upstream's slow route answers after 2 s. The broker's deadline is set before the
    // request leaves, in the same process, so it fires first however loaded the machine is.
    h = await harness({ timeoutMs: 300 });
  });
  afterAll(async () => h.close());

  it('answers upstream_timeout when the upstream is slower than the provider allows', async () => {
    const cred = await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme');
    const response = await fetch(`${h.issuer.url}/v1/proxy/payments/v1/slow`, { headers: { authorization: `Bearer ${cred.token}` } });
    expect(response.status).toBe(504);
    expect((await errorOf(response))).toMatchObject({ code: 'upstream_timeout', retryable: true });
    // The call reached the upstream: it is on record as proxied (and counted), not as a refusal.
    const isSlow = (r: DecisionRecord) => r.reason === 'upstream_timeout';
    const record = (await h.decisions('payments', (records) => records.some(isSlow))).find(isSlow);
    expect(record).toMatchObject({ decision: 'proxied', proxy: { pathPattern: '/v1/slow', action: 'payments:charges.read' } });
  });
});

describe('the broker and the agent SDK', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(async () => h.close());

  it('lanyardFetch refreshes an expired credential once behind the broker, and stops the lane when it is revoked', async () => {
    let token = (await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme')).token;
    // The broker's clock (Date.now) moved past the credential's expiry, and back before the refresh.
    const expiredAt = Date.now() + 10 * 60_000;
    const moved = vi.spyOn(Date, 'now').mockReturnValue(expiredAt);
    let refreshed = 0;
    let lost: string | undefined;
    const source = {
      get: () => Promise.resolve({ kind: 'jwt', token } as never),
      refresh: async () => {
        refreshed += 1;
        moved.mockRestore();
        token = (await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme')).token;
        return { kind: 'jwt', token } as never;
      },
      reportAuthorityLost: (loss: { code: string }) => {
        lost = loss.code;
      },
    };
    const call = lanyardFetch(source, { origins: [h.issuer.url] }); // the local issuer hosts the broker
    let response: Response;
    try {
      response = await call(`${h.issuer.url}/v1/proxy/payments/v1/charges`);
    } finally {
      moved.mockRestore();
    }
    expect(response.status).toBe(200);
    expect(refreshed).toBe(1);

    const lane = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { lane: string }).lane;
    expect((await h.admin({ command: 'revoke', target: { lane }, reason: 'test' })).status).toBe(200);
    const revoked = await call(`${h.issuer.url}/v1/proxy/payments/v1/charges`);
    expect(revoked.status).toBe(401);
    expect(lost).toBe('credential_revoked');
  });
});

describe('the broker and revocation', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(async () => h.close());

  const call = (token: string) => fetch(`${h.issuer.url}/v1/proxy/payments/v1/charges`, { headers: { authorization: `Bearer ${token}` } });
  const complete = (token: string) =>
    fetch(`${h.issuer.url}/v1/proxy/llm/v1/complete`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"tokens":0}' });

  it('a revoked lane cuts its broker calls and no other lane', async () => {
    const support = await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme');
    const billing = await h.credential(KEYS.otherAgent, 'payments', ['payments:charges.read'], 'acme');
    const supportLlm = await h.credential(KEYS.agent, 'llm', ['llm:complete']);
    expect((await call(support.token)).status).toBe(200);
    const revoked = await h.admin({ command: 'revoke', target: { lane: support.lane }, reason: 'compromised worker' });
    expect(revoked.status).toBe(200);
    const refused = await call(support.token);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="lanyard", error="invalid_token", lanyard_code="credential_revoked"');
    expect((await errorOf(refused))).toMatchObject({ code: 'credential_revoked', revokedTarget: `lane:${support.lane}` });
    expect((await call(billing.token)).status).toBe(200);
    expect((await complete(supportLlm.token)).status).toBe(200);
  });

  it('a tool kill switch cuts that provider only, and a tool disabled in the policy is tool_disabled', async () => {
    const llm = await h.credential(KEYS.otherAgent, 'llm', ['llm:complete']);
    const payments = await h.credential(KEYS.otherAgent, 'payments', ['payments:charges.read'], 'acme');
    expect((await h.admin({ command: 'revoke', target: { tool: 'llm' }, reason: 'provider incident' })).status).toBe(200);
    const refused = await complete(llm.token);
    expect((await errorOf(refused))).toMatchObject({ code: 'credential_revoked', revokedTarget: 'tool:llm' });
    expect((await call(payments.token)).status).toBe(200);

    const policy = brokerPolicy(h.upstream.url);
    const disabled = { ...policy, tools: policy.tools.map((t) => (t.id === 'payments' ? { ...t, enabled: false } : t)) };
    expect((await h.admin({ command: 'policy.apply', policy: disabled })).status).toBe(200);
    const off = await call(payments.token);
    expect(off.status).toBe(403);
    expect((await errorOf(off)).code).toBe('tool_disabled');
  });
});

describe('the broker and quotas', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(async () => h.close());

  it('a spent request bucket refuses with quota_exhausted and when it resets, and only that bucket', async () => {
    const billing = await h.credential(KEYS.otherAgent, 'payments', ['payments:charges.read'], 'acme');
    const support = await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme');
    const call = (token: string) => fetch(`${h.issuer.url}/v1/proxy/payments/v1/charges`, { headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < 5; i += 1) expect((await call(billing.token)).status).toBe(200);
    const before = h.upstream.hits.length;
    const spent = await call(billing.token);
    expect(spent.status).toBe(429);
    const retryAfter = Number(spent.headers.get('retry-after'));
    const body = (await errorOf(spent));
    expect(body).toMatchObject({ code: 'quota_exhausted', quotaBucket: 'payments-billing', budgetOwner: 'team-billing', requestsUsed: 5, requestsLimit: 5, retryable: true });
    const resetsAt = Date.parse(body.resetsAt as string);
    expect(resetsAt % 3_600_000).toBe(0);
    expect(retryAfter).toBeGreaterThan(0);
    expect(Math.abs(Date.now() + retryAfter * 1000 - resetsAt)).toBeLessThan(2_000);
    expect(h.upstream.hits.length).toBe(before);
    // The other agent draws on its own bucket.
    expect((await call(support.token)).status).toBe(200);

    // No new credential is minted from a spent bucket: it could make no call (docs/domain.md#the-issuance-decision, the quota step).
    const issuance = await h.issuer.post('/v1/credentials', { tool: 'payments', actions: ['payments:charges.read'], tenant: 'acme' }, KEYS.otherAgent);
    expect(issuance.status).toBe(429);
    expect(issuance.body.error).toMatchObject({ code: 'quota_exhausted', quotaBucket: 'payments-billing', resetsAt: body.resetsAt });
    expect(Number(issuance.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await h.issuer.post('/v1/credentials', { tool: 'llm', actions: ['llm:complete'] }, KEYS.otherAgent)).status).toBe(201);
  });

  it('a shared unit bucket burns for every agent on it, and the audit says whose calls burned it', async () => {
    const support = await h.credential(KEYS.agent, 'llm', ['llm:complete']);
    const billing = await h.credential(KEYS.otherAgent, 'llm', ['llm:complete']);
    const complete = (token: string, tokens: number) =>
      fetch(`${h.issuer.url}/v1/proxy/llm/v1/complete`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ tokens }) });
    expect((await complete(support.token, 60)).status).toBe(200);
    expect((await complete(billing.token, 50)).status).toBe(200);
    // The units of a call are counted once its answer has streamed.
    await h.decisions('llm', (records) => records.filter((r) => r.decision === 'proxied').length >= 2);
    const spent = await complete(support.token, 1);
    expect(spent.status).toBe(429);
    expect((await errorOf(spent))).toMatchObject({ code: 'quota_exhausted', quotaBucket: 'llm-shared', unitsUsed: 110, unitsLimit: 100 });
    const calls = (await h.decisions('llm', (records) => records.filter((r) => r.decision === 'proxied').length >= 2)).filter((r) => r.decision === 'proxied');
    const byOwner = new Map<string, number>();
    for (const r of calls) byOwner.set(`${r.identity} ${r.budgetOwner}`, (byOwner.get(`${r.identity} ${r.budgetOwner}`) ?? 0) + (r.proxy?.units ?? 0));
    expect(Object.fromEntries(byOwner)).toEqual({ 'support-triage/prod team-support': 60, 'billing-bot/prod team-billing': 50 });

    // The admin's answer to the same question, from the same records.
    const report = await h.admin({ command: 'usage.report', provider: 'llm', by: 'budgetOwner' });
    expect(report.status).toBe(200);
    expect(report.body.result.lines).toEqual([
      expect.objectContaining({ key: 'team-support', calls: 1, refused: 1, units: 60 }),
      expect.objectContaining({ key: 'team-billing', calls: 1, refused: 0, units: 50 }),
    ]);
    const byTask = await h.admin({ command: 'usage.report', provider: 'llm', by: 'lane' });
    expect((byTask.body.result.lines as { key: string }[]).map((l) => l.key).sort()).toEqual([billing.lane, support.lane].sort());
  });

  it('shows a bucket\'s window: what it allows, what it used (refusals are not counted) and when it resets', async () => {
    const status = await h.admin({ command: 'quota.status', bucket: 'payments-billing' });
    expect(status.body.result).toMatchObject({ bucket: 'payments-billing', limits: { windowSeconds: 3600, requests: 5 }, usage: { requests: 5, units: 15 } });
    expect(Date.parse(status.body.result.resetsAt as string) % 3_600_000).toBe(0);
    expect((await h.admin({ command: 'quota.status', bucket: 'nobody' })).body.result).toEqual({ bucket: 'nobody' });
  });
});

describe('the broker and the upstream key', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(async () => h.close());

  // Counted in calls, not milliseconds, it takes what the machine needs: on a loaded one, several times the default timeout.
  it('rotates the key under load with zero failed calls, and stops presenting the old one within the stated bound', async () => {
    // The support agent's bucket is unmetered: the load must not run into a quota.
    const tokens = await Promise.all([1, 2].map(() => h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme')));
    h.upstream.validKeys.add(KEY_B);
    // Phases are counted in calls and ordered by causality, never in milliseconds: on a loaded
    // machine a call may take seconds, and that must not fail the test (issue 14).
    interface Call { readonly startedAt: number; status?: number; requestId?: string }
    const calls: Call[] = [];
    let stop = false;
    const agent = async (token: string) => {
      while (!stop) {
        const call: Call = { startedAt: Date.now() };
        calls.push(call);
        const response = await fetch(`${h.issuer.url}/v1/proxy/payments/v1/charges`, { headers: { authorization: `Bearer ${token}` } });
        await response.arrayBuffer();
        call.requestId = response.headers.get('x-lanyard-request-id') ?? '';
        call.status = response.status;
      }
    };
    const done = (from = 0) => calls.slice(from).filter((c) => c.status !== undefined).length;
    const agents = Array.from({ length: 16 }, (_, i) => agent(tokens[i % 2]!.token));
    await until(() => done() >= 32);
    const rotated = await h.setSecret('payments', KEY_B);
    const acknowledged = Date.now();
    expect(rotated.status).toBe(200);
    expect(JSON.stringify(rotated.body)).not.toContain(KEY_B);
    const bound = rotated.body.result.takesEffectWithinMs as number;
    expect(bound).toBe(h.issuer.runtime.policy.ttlMs);
    const cutoff = acknowledged + bound;
    // Past the bound, once every call that started before it has finished, no call can still
    // hold the old key: it is retired at the upstream, and the fleet must not notice.
    await until(() => Date.now() > cutoff && calls.every((c) => c.startedAt > cutoff || c.status !== undefined));
    h.upstream.validKeys.delete(KEY_A);
    const retired = calls.length;
    await until(() => done(retired) >= 32);
    stop = true;
    await Promise.all(agents);

    expect(calls.filter((c) => c.status !== 200)).toEqual([]);
    // Every call that reached the broker after acknowledgement + bound presented the new key.
    const keyOf = new Map(h.upstream.hits.map((hit) => [hit.headers['x-lanyard-request-id'], hit.key]));
    const late = calls.filter((c) => c.startedAt > cutoff);
    expect(late.length).toBeGreaterThanOrEqual(32);
    expect(late.filter((c) => keyOf.get(c.requestId) !== KEY_B)).toEqual([]);
    expect(calls.filter((c) => c.startedAt < acknowledged).some((c) => keyOf.get(c.requestId) === KEY_A)).toBe(true);

    const events = await h.issuer.runtime.events.readLog();
    const rotation = events.filter((e) => e.detailType === 'Upstream Secret Rotated' && (e.detail as { provider?: string }).provider === 'payments');
    expect(rotation.map((e) => (e.detail as { version?: string }).version)).toContain(rotated.body.result.version);
    expect(JSON.stringify(events)).not.toContain(KEY_B);
    expect(JSON.stringify(events)).not.toContain(KEY_A);
  }, 90_000);

  it('reports a refused key as upstream_auth_failed, opens the circuit instead of hammering the upstream, and a new key closes it', async () => {
    const cred = await h.credential(KEYS.agent, 'payments', ['payments:charges.read'], 'acme');
    const other = await h.credential(KEYS.otherAgent, 'payments', ['payments:charges.read'], 'acme');
    const call = (token = cred.token) => fetch(`${h.issuer.url}/v1/proxy/payments/v1/charges`, { headers: { authorization: `Bearer ${token}` } });
    h.upstream.validKeys.clear();
    for (let i = 0; i < 3; i += 1) {
      const refused = await call();
      const text = await refused.text();
      expect(refused.status).toBe(502);
      expect(JSON.parse(text).error).toMatchObject({ code: 'upstream_auth_failed', provider: 'payments', upstreamStatus: 401, retryable: false });
      // The upstream's refusal quoted the key: it is not passed on.
      expect(text).not.toContain('sk_live');
      expect(refused.headers.get('www-authenticate')).toBeNull();
    }
    // One lane's failures cut off that lane; another identity's calls still reach the upstream.
    const laneOpen = await call();
    expect(laneOpen.status).toBe(503);
    expect(await errorOf(laneOpen)).toMatchObject({ code: 'upstream_circuit_open', circuit: 'lane' });
    for (let i = 0; i < 3; i += 1) expect((await call(other.token)).status).toBe(502);
    // Now lanes of two identities saw the key refused: the circuit is open for every lane.
    const hitsWhenOpened = h.upstream.hits.length;
    const open = await call(other.token);
    expect(open.status).toBe(503);
    expect(await errorOf(open)).toMatchObject({ code: 'upstream_circuit_open', circuit: 'provider' });
    expect(Number(open.headers.get('retry-after'))).toBeGreaterThan(0);
    // A lane that has not failed at all is held back too.
    const writer = await h.credential(KEYS.otherAgent, 'payments', ['payments:charges.create'], 'acme');
    expect(writer.lane).not.toBe(other.lane);
    const create = await fetch(`${h.issuer.url}/v1/proxy/payments/v1/charges`, { method: 'POST', headers: { authorization: `Bearer ${writer.token}`, 'content-type': 'application/json' }, body: '{}' });
    expect(await errorOf(create)).toMatchObject({ code: 'upstream_circuit_open', circuit: 'provider' });
    expect(h.upstream.hits.length).toBe(hitsWhenOpened);

    const KEY_C = 'sk_live_upstream_key_CCCCCCCCCCCCCCCCCCCC';
    h.upstream.validKeys.add(KEY_C);
    expect((await h.setSecret('payments', KEY_C)).status).toBe(200);
    expect((await call()).status).toBe(200);
    expect(h.upstream.hits.at(-1)?.key).toBe(KEY_C);
  });
});
