import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate, bearerToken, createVerifier, sendVerificationError, VerificationError } from '@lanyard/sdk';
import type { Verifier } from '@lanyard/sdk';
import { AUDIENCE, NOW, NOW_MS, startFakeIssuer } from './fixtures/fake-issuer.ts';
import type { FakeIssuer } from './fixtures/fake-issuer.ts';
import { claims, header, sign } from './fixtures/tokens.ts';

describe('Function: authenticate', () => {
  let issuer: FakeIssuer;
  let verifier: Verifier;
  let server: Server;
  let url: string;
  let failWith: Error | undefined;

  beforeAll(async () => {
    issuer = await startFakeIssuer();
    verifier = createVerifier({ issuer: issuer.url, audience: AUDIENCE, revocations: { mode: 'off' }, clock: () => NOW_MS });
    server = createServer((req, res) => {
      void (async () => {
        try {
          if (failWith !== undefined) throw failWith;
          const result = await authenticate(verifier, req, { action: 'tickets:read' });
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ sub: result.sub }));
        } catch (error) {
          sendVerificationError(res, error);
        }
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tickets`;
  });

  afterAll(async () => {
    verifier.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await issuer.close();
  });

  const call = (authorization?: string): Promise<Response> =>
    fetch(url, { headers: authorization === undefined ? {} : { authorization } });

  it('passes the claims of a valid token to the handler', async () => {
    // Prepare
    failWith = undefined;
    const token = await sign(issuer.key, header(issuer.key), claims(issuer.url));

    // Act
    const response = await call(`Bearer ${token}`);

    // Assess
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ sub: 'support-triage/prod' });
  });

  it('answers a request without a token with the bare challenge (RFC 6750 §3.1)', async () => {
    // Prepare
    failWith = undefined;

    // Act
    const response = await call();

    // Assess
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="lanyard"');
    expect(await response.json()).toEqual({ error: { code: 'token_malformed', message: 'the request carries no bearer token' } });
  });

  it('answers an expired token with 401 invalid_token and our code', async () => {
    // Prepare
    failWith = undefined;
    const token = await sign(issuer.key, header(issuer.key), claims(issuer.url, { exp: NOW - 60 }));

    // Act
    const response = await call(`bearer ${token}`);

    // Assess
    expect(response.status).toBe(401);
    const challenge = response.headers.get('www-authenticate') ?? '';
    expect(challenge).toBe(
      'Bearer realm="lanyard", error="invalid_token", error_description="the token has expired", lanyard_code="token_expired"',
    );
    expect(challenge).not.toContain(token.split('.')[1]);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toEqual({ error: { code: 'token_expired', message: 'the token has expired' } });
  });

  it('answers a missing action with 403 insufficient_scope and the scope needed', async () => {
    // Prepare
    failWith = undefined;
    const token = await sign(issuer.key, header(issuer.key), claims(issuer.url, { scope: 'tickets:list' }));

    // Act
    const response = await call(`Bearer ${token}`);

    // Assess
    expect(response.status).toBe(403);
    expect(response.headers.get('www-authenticate')).toBe(
      'Bearer realm="lanyard", error="insufficient_scope", error_description="the token does not grant the required action", lanyard_code="insufficient_scope", scope="tickets:read"',
    );
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('insufficient_scope');
  });

  it('answers a revoked credential with 401 invalid_token and lanyard_code credential_revoked', async () => {
    // Prepare
    failWith = new VerificationError('credential_revoked', 'the credential has been revoked', {
      revokedTarget: { type: 'lane', key: 'lane:x' },
    });

    // Act
    const response = await call('Bearer x');

    // Assess
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(response.headers.get('www-authenticate')).toContain('lanyard_code="credential_revoked"');
    expect(await response.json()).toEqual({ error: { code: 'credential_revoked', message: 'the credential has been revoked' } });
  });

  it('answers verifier_unavailable with 503 and Retry-After, without a challenge', async () => {
    // Prepare
    failWith = new VerificationError('verifier_unavailable', 'revocations could not be synchronised');

    // Act
    const response = await call('Bearer x');

    // Assess
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    expect(response.headers.get('www-authenticate')).toBeNull();
  });

  it('answers a foreign error as verifier_unavailable without its message', async () => {
    // Prepare
    failWith = new Error('ECONNRESET at secret.internal:5432');

    // Act
    const response = await call('Bearer x');
    const body = await response.text();

    // Assess
    expect(response.status).toBe(503);
    expect(body).toBe(JSON.stringify({ error: { code: 'verifier_unavailable', message: 'the token could not be checked' } }));
  });

  it('strips characters RFC 6750 does not allow from error_description', async () => {
    // Prepare
    failWith = new VerificationError('token_malformed', 'bad "quote" \\ and\nnewline');

    // Act
    const response = await call('Bearer x');

    // Assess
    expect(response.headers.get('www-authenticate')).toContain('error_description="bad quote  andnewline"');
  });
});

describe('Function: bearerToken', () => {
  it.each([
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer   abc.def.ghi', 'abc.def.ghi'],
    ['Basic dXNlcjpwYXNz', undefined],
    ['Bearer', undefined],
    [undefined, undefined],
  ])('reads %s as %s', (authorization, expected) => {
    // Act
    const token = bearerToken({ headers: authorization === undefined ? {} : { authorization } });

    // Assess
    expect(token).toBe(expected);
  });
});
