/**
 * The broker Lambda's wiring with the real broker core: `onAwsStreaming(createBroker)` exactly
 * as lambdas/broker.ts builds it, fed function URL events, answering through a fake response
 * stream. Behind it a real local issuer (in-memory store, file signer) and a real upstream on
 * loopback that accepts only the real key. The vault is a small in-memory one: this test is
 * about the function URL path, not about where secrets live.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onAwsStreaming, type FunctionUrlEvent } from '../../shared/adapters/aws/broker-stream.ts';
import { createBroker, type BrokerService } from '../../shared/broker/service.ts';
import type { SecretVault } from '../../shared/ports/index.ts';
import type { IssuerServices } from '../../shared/ports/services.ts';
import { setUpstreamSecret } from '../../shared/broker/upstream-secrets.ts';
import { KEYS, startTestIssuer, testPolicy, type TestIssuer } from '../helpers/issuer.ts';
import { Sink, from } from '../helpers/lambda-stream.ts';

const REAL_KEY = 'sk_live_function_url_test_key_0123456789';
const PAYMENTS_AUDIENCE = 'https://payments.example.internal';

/** An in-memory vault: versions are kept, never shown. */
function memoryVault(): SecretVault {
  const versions = new Map<string, string>();
  let next = 0;
  return {
    putSecret: (provider, secret) => {
      const version = `v${++next}`;
      versions.set(`${provider}@${version}`, secret);
      return Promise.resolve({ version });
    },
    getSecret: (provider, version) => {
      const secret = versions.get(`${provider}@${version}`);
      return secret === undefined ? Promise.reject(new Error(`no version ${version} of ${provider}`)) : Promise.resolve(secret);
    },
  };
}

interface UpstreamCallSeen {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/** A loopback upstream that answers only the real key, in three writes, so the answer streams. */
async function startUpstream(): Promise<{ url: string; calls: UpstreamCallSeen[]; server: Server }> {
  const calls: UpstreamCallSeen[] = [];
  const server = createServer((req, res) => {
    calls.push({ url: req.url ?? '', headers: req.headers });
    if (req.headers.authorization !== `Bearer ${REAL_KEY}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"bad key"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream-request': 'up-42' });
    res.write('{"data":[');
    setTimeout(() => {
      res.write('{"id":"ch_1"}');
      res.end(']}');
    }, 5);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls, server };
}

function urlEvent(rawPath: string, token: string | undefined, extra: { rawQueryString?: string; cookies?: string[]; method?: string } = {}): FunctionUrlEvent {
  return {
    rawPath,
    rawQueryString: extra.rawQueryString ?? '',
    ...(extra.cookies && { cookies: extra.cookies }),
    headers: { host: 'abc.lambda-url.eu-west-1.on.aws', accept: 'application/json', ...(token !== undefined && { authorization: `Bearer ${token}` }) },
    isBase64Encoded: false,
    requestContext: { requestId: `req-${rawPath.length}-${Math.random().toString(36).slice(2)}`, http: { method: extra.method ?? 'GET', sourceIp: '198.51.100.7' } },
  };
}

describe('Handler: broker (function URL, response streaming)', () => {
  let issuer: TestIssuer;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let broker: BrokerService | undefined;
  let handler: ReturnType<typeof onAwsStreaming>;
  let token: string;
  let runtime: IssuerServices;

  beforeAll(async () => {
    upstream = await startUpstream();
    const policy = testPolicy();
    issuer = await startTestIssuer({
      policy: {
        ...policy,
        tools: [...policy.tools, { id: 'payments', audience: PAYMENTS_AUDIENCE, actions: { 'charges.read': 'read' }, enabled: true }],
        roles: [...policy.roles, { id: 'payments-reader', version: 1, actions: ['payments:charges.read'], approvedBy: 'alice@example.com' }],
        grants: [...policy.grants, { identity: 'support-triage/prod', role: 'payments-reader@1', tenants: ['acme'], maxTtlSeconds: 900, kinds: ['jwt'], quotaBucket: 'payments-support' }],
      },
    });
    runtime = { ...issuer.runtime, vault: memoryVault() };
    const tool = await runtime.store.getTool('payments');
    await runtime.store.putTool({
      ...tool!,
      upstream: { baseUrl: upstream.url, key: { header: 'authorization', scheme: 'Bearer' }, routes: { 'charges.read': [{ method: 'GET', path: '/v1/charges*' }] } },
    });
    await setUpstreamSecret(runtime, { provider: 'payments', secret: REAL_KEY, reason: 'test', actor: 'oncall', requestId: 'req-secret' });
    runtime.policy.invalidate();

    // Prepare: the handler exactly as lambdas/broker.ts builds it, on this runtime and a fake stream.
    handler = onAwsStreaming(
      (built) => {
        broker = createBroker(built);
        return broker;
      },
      { build: () => Promise.resolve(runtime), from },
    );
    const issued = await issuer.post('/v1/credentials', { tool: 'payments', actions: ['payments:charges.read'], tenant: 'acme' }, KEYS.agent);
    expect(issued.status, JSON.stringify(issued.body)).toBe(201);
    token = issued.body.token;
  });

  afterAll(async () => {
    broker?.close();
    await issuer?.stop();
    await new Promise((resolve) => upstream?.server.close(resolve));
  });

  it('proxies the call with the real key and streams the upstream answer back; the agent never sees the key', async () => {
    // Act
    const sink = new Sink();
    await handler(urlEvent('/v1/proxy/payments/v1/charges', token, { rawQueryString: 'limit=1&starting_after=ch_0' }), sink);

    // Assess
    expect(sink.prelude?.statusCode).toBe(200);
    expect(sink.prelude?.headers).toMatchObject({ 'content-type': 'application/json', 'x-upstream-request': 'up-42' });
    expect(JSON.parse(sink.body.toString())).toEqual({ data: [{ id: 'ch_1' }] });
    expect(sink.writableFinished).toBe(true);
    const call = upstream.calls.at(-1)!;
    expect(call.url).toBe('/v1/charges?limit=1&starting_after=ch_0');
    expect(call.headers.authorization).toBe(`Bearer ${REAL_KEY}`);
    // The agent's own credential does not travel on, and the key is in nothing the agent received.
    expect(JSON.stringify(call.headers)).not.toContain(token);
    expect(JSON.stringify(sink.events)).not.toContain(REAL_KEY);
    expect(sink.body.toString()).not.toContain(REAL_KEY);
  });

  it('has the proxied call on record when the handler resolves (Lambda may freeze the container right after)', async () => {
    const requestEvent = urlEvent('/v1/proxy/payments/v1/charges', token);
    const sink = new Sink();
    await handler(requestEvent, sink);

    // No waiting: whatever is still pending once the handler has resolved may never run.
    expect(sink.prelude?.statusCode).toBe(200);
    const page = await issuer.runtime.store.queryDecisions({ by: 'tool', value: 'payments', limit: 1000 });
    const record = page.items.find((r) => r.id === `call_${requestEvent.requestContext.requestId}`);
    expect(record).toMatchObject({ decision: 'proxied', reason: 'forwarded', proxy: { status: 200 } });
  });

  it('ends the upstream call and records it when the answer cannot be sent at all', async () => {
    const own = createBroker(runtime);
    const failing = onAwsStreaming(() => own, {
      build: () => Promise.resolve(runtime),
      from: () => {
        throw new Error('the prelude was refused');
      },
    });
    const requestEvent = urlEvent('/v1/proxy/payments/v1/charges', token);
    await failing(requestEvent, new Sink());

    const page = await issuer.runtime.store.queryDecisions({ by: 'tool', value: 'payments', limit: 1000 });
    const record = page.items.find((r) => r.id === `call_${requestEvent.requestContext.requestId}`);
    expect(record).toMatchObject({ decision: 'proxied', reason: 'client_closed', proxy: { status: 200 } });
    own.close();
  });

  it.each([
    ['an encoded slash', '/v1/proxy/payments/v1/charges%2F..%2Fadmin'],
    ['an encoded dot segment', '/v1/proxy/payments/v1/%2e%2e/admin'],
    ['a dot segment', '/v1/proxy/payments/v1/charges/../../admin'],
  ])('refuses %s in rawPath as sent, without calling the upstream', async (_name, rawPath) => {
    // Prepare
    const before = upstream.calls.length;

    // Act
    const sink = new Sink();
    await handler(urlEvent(rawPath, token), sink);

    // Assess
    expect(sink.prelude?.statusCode).toBe(400);
    expect(JSON.parse(sink.body.toString()).error).toMatchObject({ code: 'invalid_request', field: 'path' });
    expect(upstream.calls.length).toBe(before);
  });

  it('refuses the cookies a function URL passes beside the headers', async () => {
    const before = upstream.calls.length;

    const sink = new Sink();
    await handler(urlEvent('/v1/proxy/payments/v1/charges', token, { cookies: ['session=stolen'] }), sink);

    expect(sink.prelude?.statusCode).toBe(400);
    expect(JSON.parse(sink.body.toString()).error).toMatchObject({ code: 'invalid_request' });
    expect(sink.body.toString()).not.toContain('stolen');
    expect(upstream.calls.length).toBe(before);
  });

  it('answers a call without a credential 401 with a Bearer challenge, typed', async () => {
    const sink = new Sink();
    await handler(urlEvent('/v1/proxy/payments/v1/charges', undefined), sink);

    expect(sink.prelude?.statusCode).toBe(401);
    expect(sink.prelude?.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(JSON.parse(sink.body.toString()).error).toMatchObject({ code: 'unauthenticated', retryable: false });
  });
});
