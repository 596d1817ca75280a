import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createIssueCredentialHandler } from '../../lambdas/issue-credential.ts';
import type { DecisionRecord } from '../../shared/domain/model.ts';
import type { HttpEvent } from '../../shared/http/types.ts';
import { hashRefreshToken, REUSE_GRACE_SECONDS } from '../../shared/spawn/refresh-tokens.ts';
import { KEYS, TICKETS_AUDIENCE, startTestIssuer, testPolicy, type TestIssuer } from '../helpers/issuer.ts';

const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

describe('Handler: POST /v1/credentials', () => {
  let issuer: TestIssuer;
  let jwks: ReturnType<typeof createLocalJWKSet>;

  beforeAll(async () => {
    issuer = await startTestIssuer();
    jwks = createLocalJWKSet((await issuer.get('/.well-known/jwks.json')).body as JSONWebKeySet);
  });
  afterAll(() => issuer.stop());

  const decisionsFor = async (identity: string): Promise<DecisionRecord[]> =>
    [...(await issuer.runtime.store.queryDecisions({ by: 'identity', value: identity, limit: 1000 })).items];

  const decisionFor = async (requestId: string | null): Promise<DecisionRecord | undefined> => {
    const all = [
      ...(await decisionsFor('support-triage/prod')),
      ...(await decisionsFor('old-bot/prod')),
      ...(await decisionsFor('billing-bot/prod')),
    ];
    return all.find((d) => d.requestId === requestId);
  };

  describe('when a grant covers the lane', () => {
    it('answers 201 with an ES256 at+jwt that verifies against the served JWKS and carries the docs/domain.md#credentials claims', async () => {
      // Act
      const res = await issuer.post(
        '/v1/credentials',
        { ...READ, actions: ['tickets:read', 'list'], task: { id: 'task-42', purpose: 'triage' }, onBehalfOf: 'user:bob' },
        KEYS.agent,
      );

      // Assess
      expect(res.status).toBe(201);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const { payload, protectedHeader } = await jwtVerify(res.body.token, jwks, {
        issuer: issuer.url,
        audience: TICKETS_AUDIENCE,
        algorithms: ['ES256'],
        typ: 'at+jwt',
      });
      expect(protectedHeader.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(payload).toMatchObject({
        sub: 'support-triage/prod',
        jti: res.body.credentialId,
        scope: 'tickets:read tickets:list',
        lane: 'support-triage/prod:tickets:read:acme',
        tenant: 'acme',
        env: 'prod',
        role: 'support-triage@1',
        client_id: 'triage-worker-1',
        task: { id: 'task-42', purpose: 'triage' },
        act: { sub: 'user:bob' },
      });
      expect(payload.exp! - payload.iat!).toBe(300);
      expect(payload.nbf).toBe(payload.iat);
    });

    it('states expiry and the moment to refresh (75 % of the lifetime) in the answer', async () => {
      const res = await issuer.post('/v1/credentials', { ...READ, ttlSeconds: 120 }, KEYS.agent);

      expect(res.status).toBe(201);
      const issued = Date.parse(res.body.issuedAt);
      expect(Date.parse(res.body.expiresAt) - issued).toBe(120_000);
      expect(Date.parse(res.body.refreshAt) - issued).toBe(90_000);
      expect(res.body).toMatchObject({
        kind: 'jwt',
        tokenType: 'Bearer',
        identity: 'support-triage/prod',
        lane: 'support-triage/prod:tickets:read:acme',
        tool: 'tickets',
        tenant: 'acme',
        actions: ['tickets:read'],
        audience: TICKETS_AUDIENCE,
        quotaBucket: 'support-llm',
        ttlSeconds: 120,
      });
    });

    it('writes the issuance record, with the credential id, lane and quota bucket, before answering', async () => {
      const res = await issuer.post('/v1/credentials', { ...READ, task: { id: 'audit-me' } }, KEYS.agent);

      const record = await issuer.runtime.store.getCredential(res.body.credentialId);
      expect(record).toMatchObject({
        decision: 'issued',
        reason: 'granted',
        principal: 'triage-worker-1',
        identity: 'support-triage/prod',
        lane: 'support-triage/prod:tickets:read:acme',
        actionsRequested: ['tickets:read'],
        actionsGranted: ['tickets:read'],
        quotaBucket: 'support-llm',
        role: 'support-triage@1',
        task: { id: 'audit-me' },
        expiresAt: res.body.expiresAt,
      });
    });

    it('uses the grant that covers every action, with its own quota bucket', async () => {
      const res = await issuer.post('/v1/credentials', { tool: 'crm', actions: ['read'], tenant: 'initech' }, KEYS.agent);

      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ quotaBucket: 'crm', lane: 'support-triage/prod:crm:read:initech' });
    });

    it('keeps the same kid across calls', async () => {
      const a = await issuer.post('/v1/credentials', READ, KEYS.agent);
      const b = await issuer.post('/v1/credentials', READ, KEYS.agent);

      expect(decodeProtectedHeader(a.body.token).kid).toBe(decodeProtectedHeader(b.body.token).kid);
      expect(a.body.credentialId).not.toBe(b.body.credentialId);
    });
  });

  describe('when the decision refuses', () => {
    it.each([
      ['an action no grant covers', KEYS.agent, { ...READ, actions: ['tickets:escalate'] }, 403, 'not_granted'],
      ['a tenant no grant covers', KEYS.agent, { ...READ, tenant: 'umbrella' }, 403, 'not_granted'],
      ['a tool that is unknown', KEYS.agent, { ...READ, tool: 'payroll', actions: ['read'] }, 403, 'not_granted'],
      ['a verb the tool does not have', KEYS.agent, { ...READ, actions: ['tickets:frobnicate'] }, 403, 'not_granted'],
      ['a disabled tool', KEYS.agent, { ...READ, tool: 'legacy', actions: ['read'] }, 403, 'tool_disabled'],
      ['a suspended identity', KEYS.suspended, READ, 403, 'identity_revoked'],
      ['read and write actions in one request', KEYS.agent, { ...READ, actions: ['tickets:read', 'tickets:reply'] }, 400, 'invalid_request'],
      ['a kind the grant does not allow', KEYS.agent, { ...READ, kind: 'sts' }, 403, 'kind_not_allowed'],
      ['a TTL above the grant cap', KEYS.agent, { ...READ, ttlSeconds: 901 }, 400, 'invalid_request'],
      ['an unknown field', KEYS.agent, { ...READ, scopes: ['everything'] }, 400, 'invalid_request'],
    ])('refuses %s with the typed code and records the denial', async (_case, key, body, status, code) => {
      // Act
      const res = await issuer.post('/v1/credentials', body, key);

      // Assess
      expect(res.status).toBe(status);
      expect(res.body.error).toMatchObject({ code, retryable: false });
      expect(res.body.error.requestId).toEqual(expect.any(String));
      expect(res.body.token).toBeUndefined();
      const record = await decisionFor(res.headers.get('x-request-id'));
      expect(record).toMatchObject({ decision: 'denied', reason: code });
    });

    it('names the field at fault', async () => {
      const mixed = await issuer.post('/v1/credentials', { ...READ, actions: ['tickets:read', 'tickets:reply'] }, KEYS.agent);
      const unknown = await issuer.post('/v1/credentials', { ...READ, scopes: ['x'] }, KEYS.agent);
      const ttl = await issuer.post('/v1/credentials', { ...READ, ttlSeconds: 901 }, KEYS.agent);

      expect(mixed.body.error.field).toBe('actions');
      expect(unknown.body.error.field).toBe('scopes');
      expect(ttl.body.error).toMatchObject({ field: 'ttlSeconds', maxTtlSeconds: 900 });
    });

    it('tells an unknown caller nothing, with a Bearer challenge', async () => {
      const none = await issuer.post('/v1/credentials', READ);
      const wrong = await issuer.post('/v1/credentials', READ, 'lk_not_a_key_anyone_has_000000000');

      for (const res of [none, wrong]) {
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Bearer realm="lanyard"');
        expect(res.body.error).toMatchObject({ code: 'unauthenticated', message: 'authentication required' });
      }
    });

    it('refuses a verifier principal, which acts as no identity', async () => {
      const res = await issuer.post('/v1/credentials', READ, KEYS.verifier);

      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('not_granted');
    });
  });

  describe('when the input is malformed', () => {
    const countDecisions = async () => (await decisionsFor('support-triage/prod')).length;

    it.each([
      ['malformed JSON', '{"tool": "tickets",', {}, 400, 'invalid_request', 'body'],
      ['a JSON array', '[1,2]', {}, 400, 'invalid_request', 'body'],
      ['a wrong content type', JSON.stringify(READ), { 'content-type': 'text/plain' }, 415, 'unsupported_media_type', 'content-type'],
      ['a body over the size limit', JSON.stringify({ ...READ, task: { id: 'x', purpose: 'p'.repeat(20_000) } }), {}, 413, 'request_too_large', undefined],
      ['a huge actions list', JSON.stringify({ ...READ, actions: Array.from({ length: 500 }, (_, i) => `a${i}`) }), {}, 400, 'invalid_request', 'actions'],
      ['a non-string action', JSON.stringify({ ...READ, actions: [42] }), {}, 400, 'invalid_request', 'actions[0]'],
      ['a non-string tool', JSON.stringify({ ...READ, tool: { $ne: null } }), {}, 400, 'invalid_request', 'tool'],
      ['a fractional TTL', JSON.stringify({ ...READ, ttlSeconds: 60.5 }), {}, 400, 'invalid_request', 'ttlSeconds'],
      ['a TTL under 30 s', JSON.stringify({ ...READ, ttlSeconds: 10 }), {}, 400, 'invalid_request', 'ttlSeconds'],
    ])('answers %s with a typed 4xx and writes nothing', async (_case, body, headers, status, code, field) => {
      // Prepare
      const before = await countDecisions();

      // Act
      const res = await issuer.post('/v1/credentials', body, KEYS.agent, headers);

      // Assess
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      if (field) expect(res.body.error.field).toBe(field);
      expect(await countDecisions()).toBe(before);
    });

    it('refuses a body over the server cap before reading it all', async () => {
      const res = await issuer.post('/v1/credentials', 'x'.repeat(2 * 1024 * 1024), KEYS.agent);

      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe('request_too_large');
    });

    it('ignores __proto__ in the body rather than letting it reach an object', async () => {
      const res = await issuer.post('/v1/credentials', `{"tool":"tickets","actions":["tickets:read"],"tenant":"acme","__proto__":{"admin":true}}`, KEYS.agent);

      expect(res.status).toBe(201);
      expect(({} as Record<string, unknown>).admin).toBeUndefined();
    });

    it('answers unknown routes and methods with typed errors', async () => {
      const route = await issuer.get('/v1/nothing-here');
      const method = await issuer.get('/v1/credentials');

      expect(route.status).toBe(404);
      expect(route.body.error.code).toBe('not_found');
      expect(method.status).toBe(405);
      expect(method.body.error.code).toBe('method_not_allowed');
    });
  });
});

describe('Handler: POST /v1/instance/credentials', () => {
  const AGENT_ARN = 'arn:aws:iam::123456789012:role/triage-worker';
  const SPAWN = { identity: 'support-triage/prod', maxLifetimeSeconds: 600, credentials: [READ] };
  let issuer: TestIssuer;

  beforeAll(async () => {
    // The agent principal also has an IAM ARN, so the IAM path has a caller it would accept.
    const policy = testPolicy();
    issuer = await startTestIssuer({
      policy: { ...policy, principals: policy.principals.map((p) => (p.id === 'triage-worker-1' ? { ...p, arn: AGENT_ARN } : p)) },
    });
  });
  afterAll(() => issuer.stop());
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const spawn = async (): Promise<{ identity: string; refreshToken: string }> => {
    const res = await issuer.post('/v1/spawn', SPAWN, KEYS.orchestrator);
    expect(res.status).toBe(201);
    return { identity: res.body.instance.identity, refreshToken: res.body.refreshToken };
  };

  /** The payload 2.0 event API Gateway builds for a route, with the IAM caller when one signed. */
  const gatewayEvent = (path: string, options: { bearer?: string; userArn?: string; requestId: string }): HttpEvent => ({
    version: '2.0',
    routeKey: `POST ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: { 'content-type': 'application/json', ...(options.bearer && { authorization: `Bearer ${options.bearer}` }) },
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example',
      domainPrefix: 'api',
      http: { method: 'POST', path, protocol: 'HTTP/1.1', sourceIp: '10.0.0.1', userAgent: 'test' },
      requestId: options.requestId,
      routeKey: `POST ${path}`,
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
      ...(options.userArn && { authorizer: { iam: { userArn: options.userArn } } }),
    },
    body: JSON.stringify(READ),
    isBase64Encoded: false,
  });

  describe('on the local server', () => {
    it('issues to an instance presenting its refresh token, and answers the next one', async () => {
      // Prepare
      const { identity, refreshToken } = await spawn();

      // Act
      const res = await issuer.post('/v1/instance/credentials', READ, refreshToken);

      // Assess
      expect(res.status).toBe(201);
      expect(res.body.identity).toBe(identity);
      expect(res.body.refreshToken).toMatch(/^lr_[A-Za-z0-9_-]{43}$/);
      expect(res.body.refreshToken).not.toBe(refreshToken);
    });

    it('refuses an API key with 401 unauthenticated, though the same key is accepted on /v1/credentials', async () => {
      // Act
      const instanceRoute = await issuer.post('/v1/instance/credentials', READ, KEYS.agent);
      const callerRoute = await issuer.post('/v1/credentials', READ, KEYS.agent);

      // Assess
      expect(instanceRoute.status).toBe(401);
      expect(instanceRoute.body.error).toMatchObject({ code: 'unauthenticated', message: 'authentication required' });
      expect(instanceRoute.headers.get('www-authenticate')).toBe('Bearer realm="lanyard"');
      expect(callerRoute.status).toBe(201);
    });

    it('refuses a request without a token, and records the refusal as a denied decision', async () => {
      // Prepare
      const append = vi.spyOn(issuer.runtime.decisions, 'append');

      // Act
      const res = await issuer.post('/v1/instance/credentials', READ);

      // Assess
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthenticated');
      expect(append).toHaveBeenCalledWith(expect.objectContaining({ decision: 'denied', reason: 'unauthenticated', requestId: res.body.error.requestId }));
    });

    it('records a request naming an unknown field as a denied decision of the instance, as the caller path does, and spends nothing', async () => {
      // Prepare
      const { identity, refreshToken } = await spawn();

      // Act
      const res = await issuer.post('/v1/instance/credentials', { ...READ, scopes: ['everything'] }, refreshToken);
      const retried = await issuer.post('/v1/instance/credentials', READ, refreshToken);

      // Assess
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_request', field: 'scopes' });
      const records = (await issuer.runtime.store.queryDecisions({ by: 'identity', value: identity, limit: 100 })).items;
      expect(records.find((r) => r.requestId === res.body.error.requestId)).toMatchObject({
        decision: 'denied',
        reason: 'invalid_request',
        principal: 'fleet-scheduler',
        instance: identity.split('#')[1],
      });
      expect(retried.status).toBe(201);
    });
  });

  describe('as on AWS (IAM caller identity, no authorizer on this route)', () => {
    const iamHandler = () => createIssueCredentialHandler({ ...issuer.runtime, config: { ...issuer.runtime.config, authMode: 'iam' } });

    it('never takes the IAM path: a caller identity the IAM route accepts is refused here with 401', async () => {
      // Prepare
      const handler = iamHandler();

      // Act
      const viaIamRoute = await handler(gatewayEvent('/v1/credentials', { userArn: AGENT_ARN, requestId: 'req-iam-route' }));
      const viaInstanceRoute = await handler(gatewayEvent('/v1/instance/credentials', { userArn: AGENT_ARN, requestId: 'req-instance-route' }));

      // Assess
      expect(viaIamRoute.statusCode).toBe(201);
      expect(viaInstanceRoute.statusCode).toBe(401);
      expect(JSON.parse(viaInstanceRoute.body).error.code).toBe('unauthenticated');
    });

    it('issues to a refresh token on this route, spending it', async () => {
      // Prepare
      const handler = iamHandler();
      const { identity, refreshToken } = await spawn();

      // Act
      const first = await handler(gatewayEvent('/v1/instance/credentials', { bearer: refreshToken, requestId: 'req-refresh-1' }));
      // Past the reuse grace (only Date is faked), presenting it again is a reuse.
      vi.useFakeTimers({ toFake: ['Date'] });
      let again;
      try {
        vi.setSystemTime(Date.now() + (REUSE_GRACE_SECONDS + 1) * 1000);
        again = await handler(gatewayEvent('/v1/instance/credentials', { bearer: refreshToken, requestId: 'req-refresh-2' }));
      } finally {
        vi.useRealTimers();
      }

      // Assess
      expect(first.statusCode).toBe(201);
      const answer = JSON.parse(first.body) as { refreshToken: string };
      expect(answer).toMatchObject({ identity, refreshToken: expect.stringMatching(/^lr_/) });
      expect(await issuer.runtime.store.getRefreshToken(hashRefreshToken(refreshToken))).toMatchObject({ spentAt: expect.any(String), replacedBy: hashRefreshToken(answer.refreshToken) });
      expect(again.statusCode).toBe(401);
      expect(JSON.parse(again.body).error.code).toBe('unauthenticated');
    });
  });
});
