import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, APIGatewayProxyResult, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier } from '@lanyard/sdk';
import type { Verifier } from '@lanyard/sdk';
import { lanyardAuth } from '@lanyard/sdk/middy';
import type { LanyardContext } from '@lanyard/sdk/middy';
import httpApiEvent from './events/http-api-v2.json' with { type: 'json' };
import restApiEvent from './events/rest-api.json' with { type: 'json' };
import { AUDIENCE, NOW_MS, startFakeIssuer } from './fixtures/fake-issuer.ts';
import type { FakeIssuer } from './fixtures/fake-issuer.ts';
import { claims, header, sign } from './fixtures/tokens.ts';

const context = { functionName: 'tickets', awsRequestId: 'req-1' } as Context;

describe('Function: lanyardAuth', () => {
  let issuer: FakeIssuer;
  let verifier: Verifier;

  beforeAll(async () => {
    issuer = await startFakeIssuer();
    verifier = createVerifier({ issuer: issuer.url, audience: AUDIENCE, revocations: { mode: 'off' }, clock: () => NOW_MS });
  });

  afterAll(async () => {
    verifier.close();
    await issuer.close();
  });

  function build(action = 'tickets:read') {
    const inner = vi.fn((_event: unknown, ctx: LanyardContext) => Promise.resolve({ statusCode: 200, body: ctx.lanyard.sub }));
    const handler = middy<APIGatewayProxyEventV2 | APIGatewayProxyEvent, APIGatewayProxyResult, Error, LanyardContext>()
      .use(lanyardAuth({ verifier, action }))
      .handler(inner);
    return { handler, inner };
  }

  const v2 = (authorization?: string): APIGatewayProxyEventV2 => ({
    ...httpApiEvent,
    headers: { ...httpApiEvent.headers, ...(authorization && { authorization }) },
  });

  it('passes the claims to the handler on context.lanyard (HTTP API payload 2.0)', async () => {
    // Prepare
    const { handler, inner } = build();
    const token = await sign(issuer.key, header(issuer.key), claims(issuer.url));

    // Act
    const response = await handler(v2(`Bearer ${token}`), context as LanyardContext);

    // Assess
    expect(response).toEqual({ statusCode: 200, body: 'support-triage/prod' });
    expect(inner.mock.calls[0]?.[1].lanyard).toMatchObject({ jti: 'cred_01', lane: 'support-triage/prod:tickets:read:acme' });
  });

  it('reads a REST API Authorization header whatever its case', async () => {
    // Prepare
    const { handler } = build();
    const token = await sign(issuer.key, header(issuer.key), claims(issuer.url));
    const event = { ...restApiEvent, headers: { ...restApiEvent.headers, Authorization: `Bearer ${token}` } } as unknown as APIGatewayProxyEvent;

    // Act
    const response = await handler(event, context as LanyardContext);

    // Assess
    expect(response.statusCode).toBe(200);
  });

  it('returns 401 with the challenge for a bad token and never runs the handler', async () => {
    // Prepare
    const { handler, inner } = build();

    // Act
    const response = await handler(v2('Bearer not.a.token'), context as LanyardContext);

    // Assess
    expect(inner).not.toHaveBeenCalled();
    expect(response.statusCode).toBe(401);
    expect(response.headers?.['www-authenticate']).toBe(
      'Bearer realm="lanyard", error="invalid_token", error_description="the token is not strict base64url", lanyard_code="token_malformed"',
    );
    expect(JSON.parse(response.body)).toEqual({ error: { code: 'token_malformed', message: 'the token is not strict base64url' } });
  });

  it('returns 401 with the bare challenge when there is no token', async () => {
    // Prepare
    const { handler, inner } = build();

    // Act
    const response = await handler(v2(), context as LanyardContext);

    // Assess
    expect(inner).not.toHaveBeenCalled();
    expect(response.statusCode).toBe(401);
    expect(response.headers?.['www-authenticate']).toBe('Bearer realm="lanyard"');
  });

  it('returns 403 insufficient_scope for an action the token lacks', async () => {
    // Prepare
    const { handler } = build('tickets:purge');
    const token = await sign(issuer.key, header(issuer.key), claims(issuer.url));

    // Act
    const response = await handler(v2(`Bearer ${token}`), context as LanyardContext);

    // Assess
    expect(response.statusCode).toBe(403);
    expect(response.headers?.['www-authenticate']).toContain('error="insufficient_scope"');
    expect(response.headers?.['www-authenticate']).toContain('scope="tickets:purge"');
  });

  it('refuses unknown options at start-up', () => {
    // Act & Assess
    expect(() => lanyardAuth({ verifier, action: 'tickets:read', actions: [] } as never)).toThrow('lanyardAuth: unknown option "actions"');
  });
});
