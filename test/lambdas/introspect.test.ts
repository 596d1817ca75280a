import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier, type Verifier } from '@lanyard/sdk/verifier';
import { base64url, signAccessToken } from '../../shared/issuance/jws.ts';
import { KEYS, TICKETS_AUDIENCE, startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';
import { highS, padded, strayBits } from '../sdk/fixtures/tokens.ts';
import { refusal } from '../sdk/fixtures/refusal.ts';

const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme', task: { id: 'task-7', purpose: 'triage' }, onBehalfOf: 'user:bob' };
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

describe('Handler: POST /v1/introspect', () => {
  let issuer: TestIssuer;

  beforeAll(async () => {
    issuer = await startTestIssuer();
  });
  afterAll(() => issuer.stop());

  const mint = async (body: object = READ, key: string = KEYS.agent) => {
    const res = await issuer.post('/v1/credentials', body, key);
    expect(res.status).toBe(201);
    return res.body as { token: string; credentialId: string; lane: string };
  };
  const introspectForm = (token: string, key: string = KEYS.verifier) => issuer.post('/v1/introspect', `token=${encodeURIComponent(token)}`, key, FORM);

  describe('when the token is live', () => {
    it('answers active true with the claims, as form or as JSON', async () => {
      // Prepare
      const credential = await mint();
      const claims = decodeJwt(credential.token);

      // Act
      const form = await introspectForm(credential.token);
      const json = await issuer.post('/v1/introspect', { token: credential.token }, KEYS.admin);

      // Assess
      expect(form.status).toBe(200);
      expect(form.headers.get('cache-control')).toBe('no-store');
      expect(form.body).toEqual({
        active: true,
        token_type: 'Bearer',
        scope: 'tickets:read',
        client_id: 'triage-worker-1',
        sub: 'support-triage/prod',
        aud: TICKETS_AUDIENCE,
        iss: issuer.url,
        exp: claims.exp,
        iat: claims.iat,
        nbf: claims.nbf,
        jti: credential.credentialId,
        lane: 'support-triage/prod:tickets:read:acme',
        tenant: 'acme',
        role: 'support-triage@1',
        quota_bucket: 'support-llm',
        task: { id: 'task-7', purpose: 'triage' },
        act: { sub: 'user:bob' },
      });
      expect(json.status).toBe(200);
      expect(json.body).toEqual(form.body);
    });

    it('answers active true for a token of any of the issuer\'s tools: a verifier principal is bound to no audience', async () => {
      const credential = await mint({ tool: 'crm', actions: ['crm:read'] });

      const res = await introspectForm(credential.token);

      expect(res.body).toMatchObject({ active: true, aud: 'https://crm.example.internal', jti: credential.credentialId });
    });

    it('takes a charset parameter on the form content type', async () => {
      const credential = await mint();

      const res = await issuer.post('/v1/introspect', `token=${credential.token}`, KEYS.verifier, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' });

      expect(res.status).toBe(200);
      expect(res.body.active).toBe(true);
    });
  });

  describe('when the token is not active', () => {
    const cases: [string, (issuer: TestIssuer) => Promise<string>][] = [
      [
        'revoked by credential id',
        async (i) => {
          const credential = await mint();
          const res = await i.post('/v1/admin', { command: 'revoke', target: { credential: credential.credentialId }, reason: 'leaked in a log' }, KEYS.admin);
          expect(res.status).toBe(200);
          return credential.token;
        },
      ],
      [
        'revoked through its lane',
        async (i) => {
          const credential = await mint({ tool: 'tickets', actions: ['tickets:reply'], tenant: 'globex' });
          const res = await i.post('/v1/admin', { command: 'revoke', target: { lane: credential.lane }, reason: 'lane misuse' }, KEYS.admin);
          expect(res.status).toBe(200);
          return credential.token;
        },
      ],
      [
        'signed by another key under the same kid',
        async () => {
          const credential = await mint();
          const { privateKey } = await generateKeyPair('ES256');
          const header = decodeProtectedHeader(credential.token);
          return new SignJWT(decodeJwt(credential.token)).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: header.kid! }).sign(privateKey);
        },
      ],
      [
        'tampered (scope widened, signature kept)',
        async () => {
          const credential = await mint();
          const [header, payload, signature] = credential.token.split('.') as [string, string, string];
          const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
          const forged = Buffer.from(JSON.stringify({ ...claims, scope: 'tickets:read tickets:purge' })).toString('base64url');
          return `${header}.${forged}.${signature}`;
        },
      ],
      [
        'signed by the issuer but with a jti it never issued',
        async (i) => {
          const claims = decodeJwt((await mint()).token);
          return (await signAccessToken(i.runtime.signer, { ...claims, jti: 'crd_neverIssuedByThisIssuer0' })).token;
        },
      ],
      [
        'expired (signed by the issuer, exp an hour ago)',
        async (i) => {
          const claims = decodeJwt((await mint()).token);
          const past = Math.floor(Date.now() / 1000) - 3600;
          return (await signAccessToken(i.runtime.signer, { ...claims, iat: past - 300, nbf: past - 300, exp: past })).token;
        },
      ],
      ['not a JWT at all', () => Promise.resolve('not-a-token')],
    ];

    it.each(cases)('answers { active: false } and nothing else when %s', async (_name, tokenFor) => {
      // Prepare
      const token = await tokenFor(issuer);

      // Act
      const form = await introspectForm(token);
      const json = await issuer.post('/v1/introspect', { token }, KEYS.verifier);

      // Assess
      expect(form.status).toBe(200);
      expect(form.body).toEqual({ active: false });
      expect(json.status).toBe(200);
      expect(json.body).toEqual({ active: false });
    });

    it('keeps the other credentials of a lane active when one credential is revoked', async () => {
      // Prepare
      const [revoked, kept] = [await mint(), await mint()];

      // Act
      await issuer.post('/v1/admin', { command: 'revoke', target: { credential: revoked.credentialId }, reason: 'one leaked' }, KEYS.admin);

      // Assess
      expect((await introspectForm(revoked.token)).body).toEqual({ active: false });
      expect((await introspectForm(kept.token)).body).toMatchObject({ active: true, jti: kept.credentialId });
    });
  });

  describe('when the verifier SDK would refuse the token, signed by the issuer or not', () => {
    let verifier: Verifier;
    beforeAll(() => {
      verifier = createVerifier({ issuer: issuer.url, audience: TICKETS_AUDIENCE, revocations: { mode: 'off' } });
    });
    afterAll(() => verifier.close());

    /** Signs with the issuer's own key, with whatever header: what only a bug or a stolen key could produce. */
    const signedByIssuer = async (header: Record<string, unknown>, claims: Record<string, unknown>): Promise<string> => {
      const kid = await issuer.runtime.signer.activeKid();
      const input = `${base64url(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid, ...header }))}.${base64url(JSON.stringify(claims))}`;
      return `${input}.${base64url(await issuer.runtime.signer.sign(kid, new TextEncoder().encode(input)))}`;
    };

    const cases: [string, (live: string) => Promise<string>, string][] = [
      ['padded with ==', (live) => Promise.resolve(padded(live)), 'token_malformed'],
      ['with stray bits in its last character', (live) => Promise.resolve(strayBits(live)), 'token_malformed'],
      ['with the high-S twin of its signature', (live) => Promise.resolve(highS(live)), 'signature_invalid'],
      ['re-signed with a jku header', (live) => signedByIssuer({ jku: 'https://evil.example/jwks.json' }, decodeJwt(live)), 'token_malformed'],
      ['re-signed with an iat an hour ahead', (live) => signedByIssuer({}, { ...decodeJwt(live), iat: Math.floor(Date.now() / 1000) + 3600 }), 'token_not_yet_valid'],
      ['re-signed for a foreign audience', (live) => signedByIssuer({}, { ...decodeJwt(live), aud: 'https://evil.example' }), 'wrong_audience'],
    ];

    it.each(cases)('answers { active: false } to a live token %s, which the verifier refuses too', async (_name, variant, code) => {
      // Prepare: a live credential; the variant keeps its jti, so its issuance record exists
      const live = (await mint()).token;
      const token = await variant(live);

      // Act
      const answer = await introspectForm(token);
      const refused = await refusal(verifier.verify(token));

      // Assess
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ active: false });
      expect(refused.code).toBe(code);
      expect((await introspectForm(live)).body.active).toBe(true);
      expect((await verifier.verify(live)).jti).toBe(decodeJwt(live).jti);
    });
  });

  describe('when the request is malformed', () => {
    it.each([
      ['text/plain', 'token=abc'],
      ['multipart/form-data; boundary=x', '--x--'],
    ])('answers 415 unsupported_media_type to %s', async (type, body) => {
      const res = await issuer.post('/v1/introspect', body, KEYS.verifier, { 'content-type': type });

      expect(res.status).toBe(415);
      expect(res.body.error).toMatchObject({ code: 'unsupported_media_type', field: 'content-type' });
    });

    it.each([
      ['a form without token', 'application/x-www-form-urlencoded', 'foo=bar', 'token'],
      ['an empty token', 'application/x-www-form-urlencoded', 'token=', 'token'],
      ['JSON without token', 'application/json', '{"foo":"bar"}', 'token'],
      ['a token that is not a string', 'application/json', '{"token":42}', 'token'],
      ['JSON that does not parse', 'application/json', '{"token":', 'body'],
    ])('answers 400 invalid_request naming the field for %s', async (_name, type, body, field) => {
      const res = await issuer.post('/v1/introspect', body, KEYS.verifier, { 'content-type': type });

      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_request', field });
    });

    it('answers 413 request_too_large to a body over 16 KiB', async () => {
      const res = await issuer.post('/v1/introspect', `token=${'a'.repeat(17 * 1024)}`, KEYS.verifier, FORM);

      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe('request_too_large');
    });
  });

  describe('when the signing keys cannot be read', () => {
    it('fails closed with 503 issuer_unavailable instead of calling a live token inactive', async () => {
      // Prepare: a fresh issuer, so no key is cached yet
      const other = await startTestIssuer();
      try {
        const minted = await other.post('/v1/credentials', READ, KEYS.agent);
        vi.spyOn(other.runtime.signer, 'publicJwks').mockRejectedValue(new Error('KMS is down'));

        // Act
        const res = await other.post('/v1/introspect', `token=${minted.body.token as string}`, KEYS.verifier, FORM);

        // Assess
        expect(res.status).toBe(503);
        expect(res.body.error.code).toBe('issuer_unavailable');
        expect(res.body.active).toBeUndefined();
      } finally {
        vi.restoreAllMocks();
        await other.stop();
      }
    });
  });

  describe('when the caller may not introspect', () => {
    it('answers 403 forbidden to an agent key, without looking at the token', async () => {
      const credential = await mint();

      const res = await introspectForm(credential.token, KEYS.agent);

      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
      expect(res.body.active).toBeUndefined();
    });

    it('answers 401 unauthenticated with no key', async () => {
      const credential = await mint();

      const res = await issuer.post('/v1/introspect', `token=${credential.token}`, undefined, FORM);

      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthenticated');
      expect(res.body.active).toBeUndefined();
    });
  });
});
