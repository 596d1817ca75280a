import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalServices, type LocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import { applyPolicy, parsePolicyDocument, planOnly, type PolicyDocument } from '../../../shared/policy/policy-file.ts';
import { parseAdminCommand } from '../../../shared/admin/admin.ts';
import { CredentialRequestSchema, parseWith } from '../../../shared/domain/schemas.ts';
import { BROKER_AUDIENCE } from '../../../shared/domain/model.ts';
import { LanyardError } from '../../../shared/domain/errors.ts';
import { testPolicy } from '../../helpers/issuer.ts';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NOW = '2026-11-22T10:00:00.000Z';

describe('Function: applyPolicy', () => {
  let runtime: LocalServices;

  beforeAll(async () => {
    runtime = await openLocalServices({ dataDir: await mkdtemp(join(tmpdir(), 'lanyard-policy-')), issuer: 'http://issuer.test', inMemory: true, log: silentLog });
  });
  afterAll(() => runtime.close());

  it('reports every change on the first apply and none on the second', async () => {
    // Act
    const first = await applyPolicy(runtime.store, testPolicy(), NOW);
    const second = await applyPolicy(runtime.store, testPolicy(), '2026-11-22T11:00:00.000Z');

    // Assess
    expect(first.changes).toContain('created tool tickets');
    expect(first.changes).toContain('published role support-triage@1 (approved by alice@example.com)');
    expect(first.changes).toContain('created grant support-triage@1 for support-triage/prod');
    expect(second.changes).toEqual([]);
    expect(second.generatedKeys).toEqual([]);
  });

  it('refuses a role version that exists with other actions, and writes nothing', async () => {
    // Prepare
    const doc = testPolicy();
    doc.roles[0] = { ...doc.roles[0]!, actions: ['tickets:read', 'tickets:purge'] };
    doc.tools[0] = { ...doc.tools[0]!, audience: 'https://changed.example.internal' };

    // Act
    const error = await applyPolicy(runtime.store, doc, NOW).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(LanyardError);
    expect((error as LanyardError).code).toBe('conflict');
    expect((error as LanyardError).context.field).toBe('roles[0]');
    expect((await runtime.store.getTool('tickets'))?.audience).toBe('https://tickets.example.internal');
  });

  it('publishes a new version beside the old one rather than changing it', async () => {
    const doc = testPolicy();
    doc.roles = [{ id: 'support-triage', version: 2, actions: ['tickets:read'], approvedBy: 'carol@example.com' }];

    const result = await applyPolicy(runtime.store, doc, NOW);

    expect(result.changes).toContain('published role support-triage@2 (approved by carol@example.com)');
    expect((await runtime.store.getRoleVersion('support-triage', 1))?.actions).toContain('tickets:reply');
  });

  it.each([
    ['a role action no tool declares', (d: ReturnType<typeof testPolicy>) => (d.roles[0] = { ...d.roles[0]!, version: 9, actions: ['tickets:fly'] }), 'roles[0].actions[0]'],
    ['a grant for an unknown identity', (d: ReturnType<typeof testPolicy>) => (d.grants[0] = { ...d.grants[0]!, identity: 'ghost/prod' }), 'grants[0].identity'],
    ['a grant of an unknown role version', (d: ReturnType<typeof testPolicy>) => (d.grants[0] = { ...d.grants[0]!, role: 'support-triage@99' }), 'grants[0].role'],
    ['an agent bound to no identity', (d: ReturnType<typeof testPolicy>) => (d.principals[0] = { id: 'x', kind: 'agent' }), 'principals[0].identity'],
  ])('refuses %s, naming the field', async (_case, mutate, field) => {
    const doc = testPolicy();
    mutate(doc);

    const error = (await applyPolicy(runtime.store, doc, NOW).catch((e: unknown) => e)) as LanyardError;

    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe(field);
  });

  it('generates a key once for a principal that has none, and never again', async () => {
    const doc = parsePolicyDocument({ principals: [{ id: 'new-verifier', kind: 'verifier' }] });

    const first = await applyPolicy(runtime.store, doc, NOW);
    const second = await applyPolicy(runtime.store, doc, NOW);

    expect(first.generatedKeys).toEqual([{ principal: 'new-verifier', apiKey: expect.stringMatching(/^lk_[A-Za-z0-9_-]{43}$/) }]);
    expect(second.generatedKeys).toEqual([]);
  });

  it('refuses unknown fields in the document', () => {
    const error = (() => {
      try {
        return parsePolicyDocument({ tools: [], rolez: [] });
      } catch (e) {
        return e;
      }
    })() as LanyardError;

    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe('rolez');
  });
});

/** A policy document with one tool behind the broker, as a YAML file would give it. */
function brokerDoc(upstream: Record<string, unknown> = {}, tool: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    tools: [
      {
        id: 'payments',
        actions: { 'charges.read': 'read', 'charges.create': 'write' },
        upstream: {
          baseUrl: 'https://api.payments.example/',
          key: { header: 'Authorization', scheme: 'Bearer' },
          routes: {
            'charges.read': [{ method: 'get', path: '/v1/charges*' }],
            'charges.create': [{ method: 'POST', path: '/v1/charges' }],
          },
          ...upstream,
        },
        ...tool,
      },
    ],
  };
}

/** The typed error parsing `input` throws (or the value, if it did not throw). */
function parseError(input: unknown): LanyardError {
  try {
    return parsePolicyDocument(input) as never;
  } catch (error) {
    return error as LanyardError;
  }
}

describe('Function: parsePolicyDocument (grant lifetimes)', () => {
  const withGrants = (...grants: object[]) => {
    const doc = testPolicy();
    return { ...doc, grants: [...doc.grants, ...grants] };
  };
  const grant = { identity: 'support-triage/prod', role: 'support-triage@1', tenants: ['acme'], quotaBucket: 'aws' };

  it('refuses a grant that allows sts for longer than one hour, naming the field', () => {
    // Prepare
    const doc = withGrants({ ...grant, id: 'aws-long', kinds: ['jwt', 'sts'], maxTtlSeconds: 7_200 });
    const index = doc.grants.length - 1;

    // Act
    const error = (() => {
      try {
        parsePolicyDocument(doc);
      } catch (caught) {
        return caught as LanyardError;
      }
      return undefined;
    })();

    // Assess
    expect(error).toBeInstanceOf(LanyardError);
    expect(error?.code).toBe('invalid_request');
    expect(error?.context.field).toBe(`grants[${index}].maxTtlSeconds`);
    expect(error?.message).toContain('3600');
  });

  it('accepts an sts grant of exactly one hour and a jwt-only grant of 12 hours', () => {
    // Act
    const doc = parsePolicyDocument(withGrants({ ...grant, id: 'aws-hour', kinds: ['sts'], maxTtlSeconds: 3_600 }, { ...grant, id: 'jwt-day', kinds: ['jwt'], maxTtlSeconds: 43_200 }));

    // Assess
    expect(doc.grants.slice(-2).map((g) => [g.id, g.maxTtlSeconds])).toEqual([
      ['aws-hour', 3_600],
      ['jwt-day', 43_200],
    ]);
  });
});

describe('Function: parsePolicyDocument (tools behind the broker)', () => {
  it('normalises an upstream: trailing slash, host, header and method case; the audience defaults later', () => {
    // Act
    const doc = parsePolicyDocument(
      brokerDoc({
        baseUrl: 'https://API.Payments.example/api/v2/',
        key: { header: 'X-Api-Key' },
        units: { name: 'cents', header: 'X-Usage-Cents' },
        forwardHeaders: ['Stripe-Version', 'idempotency-key'],
        timeoutMs: 100,
        maxRequestBytes: 6_291_456,
        maxResponseBytes: 104_857_600,
      }),
    );

    // Assess
    const tool = doc.tools[0]!;
    expect(tool.audience).toBeUndefined();
    expect(tool.upstream).toStrictEqual({
      baseUrl: 'https://api.payments.example/api/v2',
      key: { header: 'x-api-key' },
      routes: {
        'charges.read': [{ method: 'GET', path: '/v1/charges*' }],
        'charges.create': [{ method: 'POST', path: '/v1/charges' }],
      },
      units: { name: 'cents', header: 'x-usage-cents' },
      forwardHeaders: ['stripe-version', 'idempotency-key'],
      timeoutMs: 100,
      maxRequestBytes: 6_291_456,
      maxResponseBytes: 104_857_600,
    });
  });

  it.each([
    ['https://api.payments.example/', 'https://api.payments.example'],
    ['https://api.payments.example:8443', 'https://api.payments.example:8443'],
    ['https://api.payments.example:443/v1', 'https://api.payments.example/v1'],
    ['http://127.0.0.1:8080/', 'http://127.0.0.1:8080'],
    ['http://[::1]:9000/mock', 'http://[::1]:9000/mock'],
    ['http://localhost:3000', 'http://localhost:3000'],
  ])('accepts the base URL %s as %s', (baseUrl, normalised) => {
    // Act
    const doc = parsePolicyDocument(brokerDoc({ baseUrl }));

    // Assess
    expect(doc.tools[0]!.upstream!.baseUrl).toBe(normalised);
  });

  it('accepts a key in a query parameter and units from a JSON path', () => {
    // Act
    const doc = parsePolicyDocument(brokerDoc({ key: { query: 'api_key' }, units: { name: 'tokens', json: 'usage.total_tokens' } }));

    // Assess
    expect(doc.tools[0]!.upstream!.key).toStrictEqual({ query: 'api_key' });
    expect(doc.tools[0]!.upstream!.units).toStrictEqual({ name: 'tokens', json: 'usage.total_tokens' });
  });

  it.each([
    '/v1/charges*',
    '/v1/customers/*/sources',
    "/v1/a-b.c_d~e!f$g&h'i(j)k+l,m=o:p@q",
    '/',
    `/${'a'.repeat(511)}`,
  ])('accepts the route path %s', (path) => {
    // Act
    const doc = parsePolicyDocument(brokerDoc({ routes: { 'charges.read': [{ method: 'HEAD', path }] } }));

    // Assess
    expect(doc.tools[0]!.upstream!.routes['charges.read']).toStrictEqual([{ method: 'HEAD', path }]);
  });

  it('accepts ; in a route path and the base path only from a provider that allows path parameters', () => {
    // Act
    const doc = parsePolicyDocument(
      brokerDoc({ baseUrl: 'https://api.payments.example/api;v=2', allowPathParameters: true, routes: { 'charges.read': [{ method: 'GET', path: '/v1/charges;expand=*' }] } }),
    );

    // Assess
    expect(doc.tools[0]!.upstream).toMatchObject({ baseUrl: 'https://api.payments.example/api;v=2', allowPathParameters: true });
    expect(doc.tools[0]!.upstream!.routes['charges.read']).toStrictEqual([{ method: 'GET', path: '/v1/charges;expand=*' }]);
  });

  it.each([
    // base URL
    ['plain http to a remote host', { baseUrl: 'http://api.payments.example' }, 'tools[0].upstream.baseUrl'],
    ['a relative base URL', { baseUrl: '/v1' }, 'tools[0].upstream.baseUrl'],
    ['another scheme', { baseUrl: 'ftp://api.payments.example' }, 'tools[0].upstream.baseUrl'],
    ['credentials in the base URL', { baseUrl: 'https://user:pw@api.payments.example' }, 'tools[0].upstream.baseUrl'],
    ['a query in the base URL', { baseUrl: 'https://api.payments.example/?key=1' }, 'tools[0].upstream.baseUrl'],
    ['an empty query in the base URL', { baseUrl: 'https://api.payments.example/v1?' }, 'tools[0].upstream.baseUrl'],
    ['a fragment in the base URL', { baseUrl: 'https://api.payments.example/#top' }, 'tools[0].upstream.baseUrl'],
    ['a dot segment in the base URL path', { baseUrl: 'https://api.payments.example/v1/../admin' }, 'tools[0].upstream.baseUrl'],
    ['percent-encoding in the base URL path', { baseUrl: 'https://api.payments.example/v1%2Fadmin' }, 'tools[0].upstream.baseUrl'],
    ['a wildcard in the base URL path', { baseUrl: 'https://api.payments.example/v*' }, 'tools[0].upstream.baseUrl'],
    ['a base URL without //', { baseUrl: 'https:api.payments.example' }, 'tools[0].upstream.baseUrl'],
    ['a backslash in the base URL', { baseUrl: 'https://api.payments.example\\v1' }, 'tools[0].upstream.baseUrl'],
    ['an empty segment in the base URL path', { baseUrl: 'https://api.payments.example//v1' }, 'tools[0].upstream.baseUrl'],
    ['http to a look-alike of localhost', { baseUrl: 'http://localhost.evil.example' }, 'tools[0].upstream.baseUrl'],
    // key
    ['a key in both a header and a query parameter', { key: { header: 'x-api-key', query: 'api_key' } }, 'tools[0].upstream.key.header'],
    ['a key presented nowhere', { key: {} }, 'tools[0].upstream.key.header'],
    ['a scheme with a query parameter', { key: { query: 'api_key', scheme: 'Bearer' } }, 'tools[0].upstream.key.scheme'],
    ['the key in Host', { key: { header: 'Host' } }, 'tools[0].upstream.key.header'],
    ['the key in Content-Length', { key: { header: 'Content-Length' } }, 'tools[0].upstream.key.header'],
    ['the key in Cookie', { key: { header: 'cookie' } }, 'tools[0].upstream.key.header'],
    ['the key in a proxy header', { key: { header: 'Proxy-Authorization' } }, 'tools[0].upstream.key.header'],
    ['the key in TE', { key: { header: 'te' } }, 'tools[0].upstream.key.header'],
    ['a header name that is no token', { key: { header: 'x api key' } }, 'tools[0].upstream.key.header'],
    ['a scheme that is no token', { key: { header: 'authorization', scheme: 'Bearer token' } }, 'tools[0].upstream.key.scheme'],
    ['a query parameter name with other characters', { key: { query: 'api key' } }, 'tools[0].upstream.key.query'],
    ['an unknown key field', { key: { header: 'authorization', prefix: 'x' } }, 'tools[0].upstream.key.prefix'],
    // routes
    ['routes for an action the tool does not declare', { routes: { 'charges.refund': [{ method: 'POST', path: '/v1/refunds' }] } }, 'tools[0].upstream.routes.charges.refund'],
    ['an action with no route', { routes: { 'charges.read': [] } }, 'tools[0].upstream.routes.charges.read'],
    ['no routes at all', { routes: {} }, 'tools[0].upstream.routes'],
    ['a method outside the list', { routes: { 'charges.read': [{ method: 'TRACE', path: '/v1/charges' }] } }, 'tools[0].upstream.routes.charges.read[0].method'],
    ['CONNECT', { routes: { 'charges.read': [{ method: 'connect', path: '/v1/charges' }] } }, 'tools[0].upstream.routes.charges.read[0].method'],
    ['a path without a leading slash', { routes: { 'charges.read': [{ method: 'GET', path: 'v1/charges' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a .. segment', { routes: { 'charges.read': [{ method: 'GET', path: '/v1/../admin' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a ..;x segment', { allowPathParameters: true, routes: { 'charges.read': [{ method: 'GET', path: '/v1/..;x/admin' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a .; segment', { allowPathParameters: true, routes: { 'charges.read': [{ method: 'GET', path: '/v1/.;/admin' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a segment that is only ;parameters', { allowPathParameters: true, routes: { 'charges.read': [{ method: 'GET', path: '/v1/;x/admin' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a ; without allowPathParameters', { routes: { 'charges.read': [{ method: 'GET', path: '/v1/charges;v=2' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a ; in the base path without allowPathParameters', { baseUrl: 'https://api.payments.example/api;v=2' }, 'tools[0].upstream.baseUrl'],
    ['a ..; segment in the base path', { baseUrl: 'https://api.payments.example/v1/..;/admin', allowPathParameters: true }, 'tools[0].upstream.baseUrl'],
    ['allowPathParameters that is no boolean', { allowPathParameters: 'yes' }, 'tools[0].upstream.allowPathParameters'],
    ['a trailing .. segment', { routes: { 'charges.read': [{ method: 'GET', path: '/v1/..' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a . segment', { routes: { 'charges.read': [{ method: 'GET', path: '/v1/./charges' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['an empty segment', { routes: { 'charges.read': [{ method: 'GET', path: '/v1//charges' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['percent-encoding', { routes: { 'charges.read': [{ method: 'GET', path: '/v1/%2e%2e/admin' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a backslash', { routes: { 'charges.read': [{ method: 'GET', path: '/v1\\admin' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a space', { routes: { 'charges.read': [{ method: 'GET', path: '/v1/char ges' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a query', { routes: { 'charges.read': [{ method: 'GET', path: '/v1/charges?limit=1' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a fragment', { routes: { 'charges.read': [{ method: 'GET', path: '/v1/charges#x' }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['a path over 512 characters', { routes: { 'charges.read': [{ method: 'GET', path: `/${'a'.repeat(512)}` }] } }, 'tools[0].upstream.routes.charges.read[0].path'],
    ['an unknown route field', { routes: { 'charges.read': [{ method: 'GET', path: '/v1/charges', host: 'evil.example' }] } }, 'tools[0].upstream.routes.charges.read[0].host'],
    // units
    ['units from both a header and a JSON path', { units: { name: 'tokens', header: 'x-tokens', json: 'usage.total' } }, 'tools[0].upstream.units.header'],
    ['units from nowhere', { units: { name: 'tokens' } }, 'tools[0].upstream.units.header'],
    ['a JSON path with an empty segment', { units: { name: 'tokens', json: 'usage..total' } }, 'tools[0].upstream.units.json'],
    ['a JSON path in JSONPath syntax', { units: { name: 'tokens', json: '$.usage.total' } }, 'tools[0].upstream.units.json'],
    // forwarded headers
    ['forwarding Authorization', { forwardHeaders: ['Authorization'] }, 'tools[0].upstream.forwardHeaders[0]'],
    ['forwarding X-Forwarded-For', { forwardHeaders: ['stripe-version', 'X-Forwarded-For'] }, 'tools[0].upstream.forwardHeaders[1]'],
    ['forwarding Forwarded', { forwardHeaders: ['forwarded'] }, 'tools[0].upstream.forwardHeaders[0]'],
    ['forwarding Host', { forwardHeaders: ['host'] }, 'tools[0].upstream.forwardHeaders[0]'],
    ['forwarding Transfer-Encoding', { forwardHeaders: ['transfer-encoding'] }, 'tools[0].upstream.forwardHeaders[0]'],
    ['forwarding a proxy header', { forwardHeaders: ['proxy-connection'] }, 'tools[0].upstream.forwardHeaders[0]'],
    ['forwarding the key header', { key: { header: 'x-api-key' }, forwardHeaders: ['stripe-version', 'X-Api-Key'] }, 'tools[0].upstream.forwardHeaders[1]'],
    ['a forwarded header that is no token', { forwardHeaders: ['bad header'] }, 'tools[0].upstream.forwardHeaders[0]'],
    ['a forwarded header listed twice', { forwardHeaders: ['Stripe-Version', 'idempotency-key', 'stripe-version'] }, 'tools[0].upstream.forwardHeaders[2]'],
    // limits
    ['a timeout under 100 ms', { timeoutMs: 99 }, 'tools[0].upstream.timeoutMs'],
    ['a timeout over 5 minutes', { timeoutMs: 300_001 }, 'tools[0].upstream.timeoutMs'],
    ['a request limit of 0 bytes', { maxRequestBytes: 0 }, 'tools[0].upstream.maxRequestBytes'],
    ['a request limit over 6 MiB', { maxRequestBytes: 6_291_457 }, 'tools[0].upstream.maxRequestBytes'],
    ['a response limit over 100 MiB', { maxResponseBytes: 104_857_601 }, 'tools[0].upstream.maxResponseBytes'],
    ['an unknown upstream field', { retries: 3 }, 'tools[0].upstream.retries'],
  ])('refuses %s with invalid_request naming the field', (_case, upstream, field) => {
    // Act
    const error = parseError(brokerDoc(upstream));

    // Assess
    expect(error).toBeInstanceOf(LanyardError);
    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe(field);
  });

  it('still requires an audience of a tool that is not behind the broker', () => {
    // Act
    const error = parseError({ tools: [{ id: 'tickets', actions: { read: 'read' } }] });

    // Assess
    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe('tools[0].audience');
  });

  it('keeps an audience a broker tool names', () => {
    // Act
    const doc = parsePolicyDocument(brokerDoc({}, { audience: 'https://broker.example.internal' }));

    // Assess
    expect(doc.tools[0]!.audience).toBe('https://broker.example.internal');
  });
});

describe('Function: parsePolicyDocument (quotas)', () => {
  it('parses quota policies with either limit or both', () => {
    // Act
    const doc = parsePolicyDocument({
      quotas: [
        { bucket: 'support-llm', windowSeconds: 60, requests: 100 },
        { bucket: 'llm.shared_1', windowSeconds: 2_678_400, units: 1_000_000 },
        { bucket: 'payments', windowSeconds: 3600, requests: 5, units: 500 },
      ],
    });

    // Assess
    expect(doc.quotas).toStrictEqual([
      { bucket: 'support-llm', windowSeconds: 60, requests: 100 },
      { bucket: 'llm.shared_1', windowSeconds: 2_678_400, units: 1_000_000 },
      { bucket: 'payments', windowSeconds: 3600, requests: 5, units: 500 },
    ]);
  });

  it.each([
    ['a quota that limits nothing', [{ bucket: 'b', windowSeconds: 60 }], 'quotas[0].requests'],
    ['a window under a minute', [{ bucket: 'b', windowSeconds: 59, requests: 1 }], 'quotas[0].windowSeconds'],
    ['a window over 31 days', [{ bucket: 'b', windowSeconds: 2_678_401, requests: 1 }], 'quotas[0].windowSeconds'],
    ['a request limit of 0', [{ bucket: 'b', windowSeconds: 60, requests: 0 }], 'quotas[0].requests'],
    ['a fractional unit limit', [{ bucket: 'b', windowSeconds: 60, units: 1.5 }], 'quotas[0].units'],
    ['a bucket name with a space', [{ bucket: 'my bucket', windowSeconds: 60, requests: 1 }], 'quotas[0].bucket'],
    ['a bucket declared twice', [{ bucket: 'b', windowSeconds: 60, requests: 1 }, { bucket: 'b', windowSeconds: 120, requests: 2 }], 'quotas[1].bucket'],
    ['an unknown quota field', [{ bucket: 'b', windowSeconds: 60, requests: 1, burst: 5 }], 'quotas[0].burst'],
  ])('refuses %s with invalid_request naming the field', (_case, quotas, field) => {
    // Act
    const error = parseError({ quotas });

    // Assess
    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe(field);
  });
});

describe('Function: applyPolicy (tools behind the broker and quotas)', () => {
  let runtime: LocalServices;

  beforeAll(async () => {
    runtime = await openLocalServices({ dataDir: await mkdtemp(join(tmpdir(), 'lanyard-policy-broker-')), issuer: 'http://issuer.test', inMemory: true, log: silentLog });
  });
  afterAll(() => runtime.close());

  it('stores a broker tool with the broker audience and its upstream, and reports an upstream change as an updated tool', async () => {
    // Prepare
    const doc = parsePolicyDocument(brokerDoc());
    const changed = parsePolicyDocument(brokerDoc({ routes: { 'charges.read': [{ method: 'GET', path: '/v1/charges/*' }] } }));

    // Act
    const first = await applyPolicy(runtime.store, doc, NOW);
    const again = await applyPolicy(runtime.store, doc, '2026-11-22T11:00:00.000Z');
    const stored = await runtime.store.getTool('payments');
    const updated = await applyPolicy(runtime.store, changed, '2026-11-22T12:00:00.000Z');

    // Assess
    expect(first.changes).toEqual(['created tool payments']);
    expect(again.changes).toEqual([]);
    expect(stored).toStrictEqual({
      id: 'payments',
      audience: BROKER_AUDIENCE,
      actions: { 'charges.read': 'read', 'charges.create': 'write' },
      enabled: true,
      upstream: {
        baseUrl: 'https://api.payments.example',
        key: { header: 'authorization', scheme: 'Bearer' },
        routes: {
          'charges.read': [{ method: 'GET', path: '/v1/charges*' }],
          'charges.create': [{ method: 'POST', path: '/v1/charges' }],
        },
      },
      updatedAt: NOW,
    });
    expect(updated.changes).toEqual(['updated tool payments']);
    expect((await runtime.store.getTool('payments'))?.upstream?.routes).toStrictEqual({ 'charges.read': [{ method: 'GET', path: '/v1/charges/*' }] });
  });

  it('gives a broker tool of a document built in code (not parsed) the broker audience too', async () => {
    // Prepare
    const doc: PolicyDocument = {
      ...parsePolicyDocument({}),
      tools: [{ id: 'llm-literal', actions: { complete: 'write' }, enabled: true, upstream: { baseUrl: 'http://127.0.0.1:9', key: { query: 'api_key' }, routes: { complete: [{ method: 'POST', path: '/v1/complete' }] } } }],
    };

    // Act
    const result = await applyPolicy(runtime.store, doc, NOW);

    // Assess
    expect(result.changes).toEqual(['created tool llm-literal']);
    expect(await runtime.store.getTool('llm-literal')).toMatchObject({ audience: BROKER_AUDIENCE, upstream: { key: { query: 'api_key' } } });
  });

  it('reports a change of only the forwarded headers or limits as an updated tool, and not their order', async () => {
    // Prepare
    const id = 'payments-limits';
    await applyPolicy(runtime.store, parsePolicyDocument(brokerDoc({}, { id })), NOW);

    // Act
    const headers = await applyPolicy(runtime.store, parsePolicyDocument(brokerDoc({ forwardHeaders: ['stripe-version', 'idempotency-key'] }, { id })), NOW);
    const reordered = await applyPolicy(runtime.store, parsePolicyDocument(brokerDoc({ forwardHeaders: ['Idempotency-Key', 'stripe-version'] }, { id })), NOW);
    const limits = await applyPolicy(runtime.store, parsePolicyDocument(brokerDoc({ forwardHeaders: ['stripe-version', 'idempotency-key'], timeoutMs: 5_000 }, { id })), NOW);

    // Assess
    expect(headers.changes).toEqual([`updated tool ${id}`]);
    expect(reordered.changes).toEqual([]);
    expect(limits.changes).toEqual([`updated tool ${id}`]);
    expect((await runtime.store.getTool(id))?.upstream).toMatchObject({ forwardHeaders: ['idempotency-key', 'stripe-version'], timeoutMs: 5_000 });
  });

  it('creates and updates quotas idempotently and never deletes one by omission', async () => {
    // Prepare
    const doc = parsePolicyDocument({
      quotas: [
        { bucket: 'llm-shared', windowSeconds: 3600, units: 100 },
        { bucket: 'payments-billing', windowSeconds: 3600, requests: 5 },
      ],
    });

    // Act
    const first = await applyPolicy(runtime.store, doc, NOW);
    const again = await applyPolicy(runtime.store, doc, '2026-11-22T11:00:00.000Z');
    const changed = await applyPolicy(runtime.store, parsePolicyDocument({ quotas: [{ bucket: 'llm-shared', windowSeconds: 3600, units: 100, requests: 50 }] }), '2026-11-22T12:00:00.000Z');
    const omitted = await applyPolicy(runtime.store, parsePolicyDocument({}), '2026-11-22T13:00:00.000Z');

    // Assess
    expect(first.changes).toEqual(['created quota llm-shared', 'created quota payments-billing']);
    expect(again.changes).toEqual([]);
    expect(changed.changes).toEqual(['updated quota llm-shared']);
    expect(omitted.changes).toEqual([]);
    expect(await runtime.store.getQuota('llm-shared')).toStrictEqual({ bucket: 'llm-shared', windowSeconds: 3600, requests: 50, units: 100, updatedAt: '2026-11-22T12:00:00.000Z' });
    expect(await runtime.store.getQuota('payments-billing')).toStrictEqual({ bucket: 'payments-billing', windowSeconds: 3600, requests: 5, updatedAt: NOW });
  });

  it('drops a limit the document no longer gives', async () => {
    // Prepare
    await applyPolicy(runtime.store, parsePolicyDocument({ quotas: [{ bucket: 'narrowing', windowSeconds: 60, requests: 10, units: 10 }] }), NOW);

    // Act
    const result = await applyPolicy(runtime.store, parsePolicyDocument({ quotas: [{ bucket: 'narrowing', windowSeconds: 60, units: 10 }] }), NOW);

    // Assess
    expect(result.changes).toEqual(['updated quota narrowing']);
    expect(await runtime.store.getQuota('narrowing')).toStrictEqual({ bucket: 'narrowing', windowSeconds: 60, units: 10, updatedAt: NOW });
  });
});

describe('Function: applyPolicy on planOnly(store) (a dry run)', () => {
  let runtime: LocalServices;

  beforeAll(async () => {
    runtime = await openLocalServices({ dataDir: await mkdtemp(join(tmpdir(), 'lanyard-plan-')), issuer: 'http://issuer.test', inMemory: true, log: silentLog });
  });
  afterAll(() => runtime.close());

  it('reports the changes the apply would make, writes none of them, and generates no stored key', async () => {
    // Prepare
    const doc = testPolicy();
    doc.principals.push({ id: 'keyless', kind: 'verifier' });

    // Act
    const plan = await applyPolicy(planOnly(runtime.store), doc, NOW);
    const toolsAfterPlan = await runtime.store.listTools();
    const applied = await applyPolicy(runtime.store, doc, NOW);

    // Assess
    expect(plan.changes).toContain('created tool tickets');
    expect(plan.changes).toContain('generated API key for principal keyless');
    expect(toolsAfterPlan).toEqual([]);
    expect(await runtime.store.hasPrincipalKey('keyless', 'apiKey')).toBe(true);
    expect(applied.changes).toEqual(plan.changes);
  });

  it('plans an update as an update, and refuses a conflicting role version as the apply does', async () => {
    // Prepare
    const changed = testPolicy();
    changed.tools[0] = { ...changed.tools[0]!, audience: 'https://tickets-v2.example.internal' };
    const conflicting = testPolicy();
    conflicting.roles[0] = { ...conflicting.roles[0]!, actions: ['tickets:read'] };

    // Act
    const plan = await applyPolicy(planOnly(runtime.store), changed, NOW);
    const refused = await applyPolicy(planOnly(runtime.store), conflicting, NOW).catch((e: unknown) => e);

    // Assess
    expect(plan.changes).toEqual(['updated tool tickets']);
    expect((await runtime.store.getTool('tickets'))?.audience).toBe('https://tickets.example.internal');
    expect((refused as LanyardError).code).toBe('conflict');
  });

  it('fails rather than writes when applyPolicy reaches a store method the plan does not know', () => {
    expect(() => (planOnly(runtime.store) as unknown as { putDecisions: unknown }).putDecisions).toThrow('a dry run of policy.apply does not call Store.putDecisions');
  });
});

describe('Validation messages', () => {
  const messageOf = (run: () => unknown): string => {
    try {
      run();
    } catch (error) {
      return (error as LanyardError).message;
    }
    throw new Error('expected a refusal');
  };
  /** A regex literal as zod would print it: `/^…$/`. */
  const RAW_REGEX = /\/\^|\$\//;

  it('describe an identity id in words, not as the regex it failed', () => {
    const message = messageOf(() => parsePolicyDocument({ identities: [{ id: 'Support Triage', owner: 'o', purpose: 'p' }] }));

    expect(message).toBe('identities[0].id: an identity id is class/env, lower-case letters, digits, ., _ and -, e.g. support-triage/prod (an instance adds #<id>)');
  });

  it('describe a bad action verb (a record key) and a bad tenant in words', () => {
    const verb = messageOf(() => parsePolicyDocument({ tools: [{ id: 'tickets', audience: 'https://t.example', actions: { Read: 'read' } }] }));
    const tenant = messageOf(() => parsePolicyDocument({ grants: [{ identity: 'a/prod', role: 'r@1', tenants: ['bad tenant'], quotaBucket: 'q' }] }));

    expect(verb).toMatch(/^tools\[0\]\.actions\.Read: this key is not allowed here: a name of lower-case letters/);
    expect(tenant).toMatch(/^grants\[0\]\.tenants\[0\]: a tenant id: letters, digits/);
  });

  it('never print a raw regex, for any pattern field of the policy file, the admin commands or a credential request', () => {
    const messages = [
      messageOf(() => parsePolicyDocument({ tools: [{ id: 'Bad Tool', audience: 'https://t.example', actions: { read: 'read' } }] })),
      messageOf(() => parsePolicyDocument({ tools: [{ id: 't', audience: 'https://t.example', actions: { read: 'read' }, aws: { roleArn: 'role', permissions: { read: ['x'] } } }] })),
      messageOf(() => parsePolicyDocument({ roles: [{ id: 'r', version: 1, actions: ['tickets'], approvedBy: 'a' }] })),
      messageOf(() => parsePolicyDocument({ grants: [{ id: 'bad id', identity: 'a/prod', role: 'r@1', tenants: ['*'], quotaBucket: 'q' }] })),
      messageOf(() => parsePolicyDocument({ grants: [{ identity: 'a/prod', role: 'r@1', tenants: ['*'], quotaBucket: 'bad bucket' }] })),
      messageOf(() => parsePolicyDocument({ principals: [{ id: '-bad', kind: 'admin' }] })),
      messageOf(() => parsePolicyDocument({ principals: [{ id: 'p', kind: 'admin', arn: 'arn:nope' }] })),
      messageOf(() => parsePolicyDocument({ identities: [{ id: 'a/prod', environment: 'Prod', owner: 'o', purpose: 'p' }] })),
      messageOf(() => parseAdminCommand({ command: 'grant.list', identity: 'nope' })),
      messageOf(() => parseAdminCommand({ command: 'quota.status', bucket: 'bad bucket' })),
      messageOf(() => parseAdminCommand({ command: 'revoke', target: { tool: 'Bad' }, reason: 'because' })),
    ];
    const request = parseWith(CredentialRequestSchema, { tool: 'Bad Tool', actions: ['x'] });

    for (const message of messages) expect(message).not.toMatch(RAW_REGEX);
    expect(request.ok ? '' : request.failure.error.message).toBe('tool: a tool id: lower-case letters, digits, ., _ and -');
  });
});
