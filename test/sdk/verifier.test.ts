import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, VerificationError } from '@lanyard/sdk';
import type { Verifier } from '@lanyard/sdk';
import { AUDIENCE, createSigningKey, NOW, NOW_MS, startFakeIssuer } from './fixtures/fake-issuer.ts';
import type { FakeIssuer } from './fixtures/fake-issuer.ts';
import { refusal } from './fixtures/refusal.ts';
import { b64url, claims, header, highS, hs256WithPublicKey, P256_N, padded, sign, signParts, strayBits, withSignature } from './fixtures/tokens.ts';

describe('Function: createVerifier', () => {
  let issuer: FakeIssuer;
  let verifier: Verifier;

  beforeAll(async () => {
    issuer = await startFakeIssuer();
    verifier = createVerifier({
      issuer: issuer.url,
      audience: AUDIENCE,
      revocations: { mode: 'off' },
      clock: () => NOW_MS,
    });
  });

  afterAll(async () => {
    verifier.close();
    await issuer.close();
  });

  const valid = (payload: Record<string, unknown> = {}, headerOverrides: Record<string, unknown> = {}): Promise<string> =>
    sign(issuer.key, header(issuer.key, headerOverrides), claims(issuer.url, payload));

  describe('a valid token', () => {
    it('accepts it and returns its claims', async () => {
      // Prepare
      const token = await valid();

      // Act
      const result = await verifier.verify(token, { action: 'tickets:read' });

      // Assess
      expect(result).toMatchObject({
        iss: issuer.url,
        sub: 'support-triage/prod',
        aud: AUDIENCE,
        jti: 'cred_01',
        scope: 'tickets:read tickets:list',
        lane: 'support-triage/prod:tickets:read:acme',
        tenant: 'acme',
        role: 'support-triage@3',
        task: { id: 'task-1', purpose: 'triage' },
        client_id: 'triage-worker-1',
      });
    });

    it.each(['application/at+jwt', 'AT+JWT'])('accepts typ %s (media types compare case-insensitively)', async (typ) => {
      // Prepare
      const token = await valid({}, { typ });

      // Act
      const result = await verifier.verify(token);

      // Assess
      expect(result.jti).toBe('cred_01');
    });

    it('accepts a token whose aud array names one of our audiences', async () => {
      // Prepare
      const token = await valid({ aud: ['https://other.example', AUDIENCE] });

      // Act
      const result = await verifier.verify(token);

      // Assess
      expect(result.sub).toBe('support-triage/prod');
    });

    it('accepts a token expired by less than the clock tolerance', async () => {
      // Prepare
      const token = await valid({ exp: NOW - 4 });

      // Act
      const result = await verifier.verify(token);

      // Assess
      expect(result.exp).toBe(NOW - 4);
    });
  });

  describe('the algorithm', () => {
    it('refuses alg none', async () => {
      // Prepare
      const token = `${b64url(JSON.stringify(header(issuer.key, { alg: 'none' })))}.${b64url(JSON.stringify(claims(issuer.url)))}.`;

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('signature_invalid');
      expect(error.message).toBe('the token algorithm is not allowed');
      expect(error.context).toEqual({ expected: 'ES256', actual: 'none' });
    });

    it('refuses HS256 signed with the public key (algorithm confusion)', async () => {
      // Prepare
      const token = hs256WithPublicKey(issuer.key, claims(issuer.url));

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('signature_invalid');
      expect(error.context.actual).toBe('HS256');
    });

    it('refuses ES384 signed with a P-384 key', async () => {
      // Prepare
      const p384 = await createSigningKey('ES384');
      const token = await signParts(
        p384,
        b64url(JSON.stringify(header(p384, { alg: 'ES384' }))),
        b64url(JSON.stringify(claims(issuer.url))),
        'SHA-384',
      );

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('signature_invalid');
      expect(error.context.actual).toBe('ES384');
    });
  });

  describe('the signature', () => {
    const scalar = (fill: number): Buffer => Buffer.alloc(32, fill);
    const one = Buffer.concat([Buffer.alloc(31), Buffer.from([1])]);
    const nPlusOne = Buffer.from(P256_N);
    nPlusOne[31] = (nPlusOne[31] ?? 0) + 1;

    it.each([
      ['r = 0', Buffer.concat([scalar(0), one])],
      ['s = 0', Buffer.concat([one, scalar(0)])],
      ['r = s = 0 (psychic signature)', Buffer.alloc(64)],
      ['r = n', Buffer.concat([P256_N, one])],
      ['s = n', Buffer.concat([one, P256_N])],
      ['r = n + 1', Buffer.concat([nPlusOne, one])],
      ['s > n', Buffer.concat([one, scalar(0xff)])],
      ['63 bytes', Buffer.alloc(63, 1)],
      ['65 bytes', Buffer.alloc(65, 1)],
      ['a DER-encoded signature', Buffer.concat([Buffer.from([0x30, 0x44, 0x02, 0x20]), scalar(1), Buffer.from([0x02, 0x20]), scalar(1)])],
    ])('refuses a signature with %s', async (_name, bytes) => {
      // Prepare
      const token = withSignature(await valid(), bytes);

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('signature_invalid');
      expect(error.message).toBe('the token signature is invalid');
    });

    it('refuses the high-S twin (R, n − S) of a valid signature, which verifies mathematically', async () => {
      // Prepare
      const token = await valid();

      // Act
      const error = await refusal(verifier.verify(highS(token)));

      // Assess
      expect(error.code).toBe('signature_invalid');
      expect((await verifier.verify(token)).jti).toBe('cred_01');
    });

    it('refuses a well-formed signature made for another payload', async () => {
      // Prepare: a signature made for another payload
      const other = await valid({ jti: 'cred_02' });
      const token = withSignature(await valid(), Buffer.from(other.split('.')[2] ?? '', 'base64url'));

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('signature_invalid');
    });

    it('refuses a tampered payload', async () => {
      // Prepare
      const [encodedHeader, , signature] = (await valid()).split('.');
      const forged = b64url(JSON.stringify(claims(issuer.url, { scope: 'tickets:read tickets:purge' })));
      const token = `${encodedHeader}.${forged}.${signature}`;

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('signature_invalid');
    });
  });

  describe('the header', () => {
    it('refuses a token without kid', async () => {
      // Prepare
      const token = await sign(issuer.key, { alg: 'ES256', typ: 'at+jwt' }, claims(issuer.url));

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_malformed');
      expect(error.message).toBe('the token header has no kid');
    });

    it.each([
      ['jku', 'https://attacker.example/jwks.json'],
      ['x5u', 'https://attacker.example/cert.pem'],
      ['jwk', { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }],
      ['x5c', ['MIIB']],
      ['crit', ['exp']],
      ['b64', false],
    ])('refuses a %s header member', async (member, value) => {
      // Prepare
      const token = await valid({}, { [member]: value });

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_malformed');
      expect(error.context.actual).toBe(member);
    });

    it('refuses the embedded key of a jwk header even when it signed the token', async () => {
      // Prepare: attacker signs with their own key and embeds it
      const attacker = await createSigningKey();
      const token = await sign(attacker, header(issuer.key, { jwk: attacker.publicJwk }), claims(issuer.url));

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_malformed');
    });

    it.each([['JWT'], ['jwt'], ['at+jwt; charset=utf-8'], [undefined], [42]])('refuses typ %s', async (typ) => {
      // Prepare
      const token = await sign(issuer.key, { alg: 'ES256', kid: issuer.key.kid, ...(typ !== undefined && { typ }) }, claims(issuer.url));

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_malformed');
      expect(error.message).toBe('the token is not an access token (typ at+jwt)');
    });
  });

  describe('one string per token', () => {
    it.each([
      ['padded with ==', padded, 'token_malformed'],
      ['with stray bits in its last character', strayBits, 'token_malformed'],
      ['with its high-S signature', highS, 'signature_invalid'],
    ])('refuses a valid token %s', async (_name, twin, code) => {
      // Prepare
      const token = await valid();

      // Act
      const error = await refusal(verifier.verify(twin(token)));

      // Assess
      expect(error.code).toBe(code);
      expect(twin(token)).not.toBe(token);
    });
  });

  describe('the encoding', () => {
    it('refuses an oversized token before parsing it or fetching keys', async () => {
      // Prepare
      const before = issuer.requests.jwks;
      const token = await valid({ padding: 'x'.repeat(9000) });

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_malformed');
      expect(error.message).toBe('the token is too large');
      expect(issuer.requests.jwks).toBe(before);
    });

    it.each([
      ['padding', (token: string) => `${token}=`],
      ['padding in the header', (token: string) => token.replace('.', '=.')],
      ['a +', (token: string) => `${token.slice(0, -2)}+${token.slice(-1)}`],
      ['a /', (token: string) => `/${token.slice(1)}`],
      ['an illegal character', (token: string) => `*${token.slice(1)}`],
      ['whitespace', (token: string) => ` ${token}`],
      ['a non-canonical last character', (token: string) => nonCanonical(token)],
      ['two parts', (token: string) => token.slice(0, token.lastIndexOf('.'))],
      ['four parts', (token: string) => `${token}.e30`],
      ['an empty payload', (token: string) => token.replace(/\.[^.]+\./, '..')],
    ])('refuses a token with %s', async (_name, mangle) => {
      // Prepare
      const token = mangle(await valid());

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_malformed');
    });

    it.each([['an array', '[1,2]'], ['a string', '"claims"'], ['null', 'null'], ['not JSON', '{"iss":'], ['a number', '42']])(
      'refuses a signed payload that is %s',
      async (_name, json) => {
        // Prepare
        const token = await signParts(issuer.key, b64url(JSON.stringify(header(issuer.key))), b64url(json));

        // Act
        const error = await refusal(verifier.verify(token));

        // Assess
        expect(error.code).toBe('token_malformed');
        expect(error.message).toBe('the token payload is not a JSON object');
      },
    );

    it('refuses a header that is not a JSON object', async () => {
      // Prepare
      const token = await signParts(issuer.key, b64url('["ES256"]'), b64url(JSON.stringify(claims(issuer.url))));

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_malformed');
    });

    it('drops __proto__ so a token cannot pollute prototypes', async () => {
      // Prepare
      const json = JSON.stringify(claims(issuer.url)).replace(/^\{/, '{"__proto__":{"polluted":true,"scope":"tickets:purge"},');
      const token = await signParts(issuer.key, b64url(JSON.stringify(header(issuer.key))), b64url(json));

      // Act
      const result = await verifier.verify(token);

      // Assess
      expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
      expect(Object.hasOwn(result, '__proto__')).toBe(false);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect({ ...result }.polluted).toBeUndefined();
      expect(result.scope).toBe('tickets:read tickets:list');
    });
    it('drops a __proto__ key spelled with JSON escapes', async () => {
      // Prepare
      const json = JSON.stringify(claims(issuer.url)).replace(/^\{/, '{"\\u005f_proto__":{"polluted":true},');
      const token = await signParts(issuer.key, b64url(JSON.stringify(header(issuer.key))), b64url(json));

      // Act
      const result = await verifier.verify(token);

      // Assess
      expect(json).toContain('\\u005f_proto__');
      expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
      expect(Object.hasOwn(result, '__proto__')).toBe(false);
    });
  });

  describe('the claims', () => {
    it('refuses an expired token', async () => {
      // Prepare
      const token = await valid({ exp: NOW - 6 });

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_expired');
      expect(error.message).toBe('the token has expired');
    });

    it('refuses a token whose nbf is in the future', async () => {
      // Prepare
      const token = await valid({ nbf: NOW + 60 });

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_not_yet_valid');
      expect(error.message).toBe('the token is not valid yet');
    });

    it('refuses a token whose iat is in the future', async () => {
      // Prepare
      const token = await valid({ iat: NOW + 60, nbf: undefined });

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_not_yet_valid');
      expect(error.message).toBe('the token was issued in the future');
    });

    it('refuses a token from another issuer', async () => {
      // Prepare
      const token = await valid({ iss: 'https://evil.example' });

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('wrong_issuer');
      expect(error.context).toEqual({ expected: issuer.url, actual: 'https://evil.example' });
    });

    it('refuses an issuer that differs only by a trailing slash', async () => {
      // Prepare
      const token = await valid({ iss: `${issuer.url}/` });

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('wrong_issuer');
    });

    it.each([['another audience', 'https://billing.example.internal'], ['no audience', undefined], ['an array without ours', ['https://a.example']]])(
      'refuses a token for %s',
      async (_name, aud) => {
        // Prepare
        const token = await valid({ aud });

        // Act
        const error = await refusal(verifier.verify(token));

        // Assess
        expect(error.code).toBe('wrong_audience');
        expect(error.context.expected).toEqual([AUDIENCE]);
      },
    );

    it.each(['exp', 'iat', 'jti', 'sub', 'lane', 'scope', 'iss'])('refuses a token without %s', async (claim) => {
      // Prepare
      const token = await valid({ [claim]: undefined });

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_malformed');
      expect(error.message).toBe(`the token has no ${claim} claim`);
    });

    it('refuses a token whose exp is not a number', async () => {
      // Prepare
      const token = await valid({ exp: String(NOW + 60) });

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('token_malformed');
    });
  });

  describe('the action', () => {
    it('refuses an action the scope does not grant', async () => {
      // Prepare
      const token = await valid();

      // Act
      const error = await refusal(verifier.verify(token, { action: ['tickets:read', 'tickets:reply'] }));

      // Assess
      expect(error.code).toBe('insufficient_scope');
      expect(error.status).toBe(403);
      expect(error.context).toEqual({ expected: ['tickets:read', 'tickets:reply'], actual: ['tickets:read', 'tickets:list'] });
    });

    it('refuses a prefix of a granted action', async () => {
      // Prepare
      const token = await valid();

      // Act
      const error = await refusal(verifier.verify(token, { action: 'tickets:rea' }));

      // Assess
      expect(error.code).toBe('insufficient_scope');
    });

    it('accepts when every required action is granted', async () => {
      // Prepare
      const token = await valid();

      // Act
      const result = await verifier.verify(token, { action: ['tickets:list', 'tickets:read'] });

      // Assess
      expect(result.scope).toBe('tickets:read tickets:list');
    });
  });

  describe('the error', () => {
    it('never carries the token in its message', async () => {
      // Prepare
      const tokens = [await valid({ exp: NOW - 60 }), await valid({ iss: 'x' }), withSignature(await valid(), Buffer.alloc(64))];

      // Act
      const errors = await Promise.all(tokens.map((token) => refusal(verifier.verify(token))));

      // Assess
      errors.forEach((error, i) => {
        expect(error).toBeInstanceOf(VerificationError);
        expect(error.message).not.toContain(tokens[i]?.split('.')[1]);
        expect(error.status).toBe(401);
      });
    });
  });

  describe('the options', () => {
    it('refuses an unknown option at start-up', () => {
      // Act & Assess
      expect(() =>
        createVerifier({ issuer: issuer.url, audience: AUDIENCE, revocations: { mode: 'off' }, audiences: [] } as never),
      ).toThrow('createVerifier: unknown option "audiences"');
    });

    it('refuses a plain-http issuer that is not loopback', () => {
      // Act & Assess
      expect(() => createVerifier({ issuer: 'http://issuer.example', audience: AUDIENCE, revocations: { mode: 'off' } })).toThrow(
        'issuer must use https:',
      );
    });

    it('refuses to follow revocations without an api key', () => {
      // Act & Assess
      expect(() => createVerifier({ issuer: issuer.url, audience: AUDIENCE })).toThrow('revocations.apiKey is required');
    });
  });
});

/** The vectors shared with the Python SDK's suite (python/tests/test_vectors.py); see generate.ts there. */
interface VectorFile {
  readonly issuer: string;
  readonly audience: string;
  readonly now: number;
  readonly jwks: { readonly keys: Record<string, unknown>[] };
  readonly vectors: readonly {
    readonly name: string;
    readonly token: string;
    readonly action?: string[];
    readonly refuse?: { readonly code: string; readonly message?: string };
    readonly accept?: { readonly claims: Record<string, unknown>; readonly absent?: string[] };
  }[];
}
const VECTORS = JSON.parse(readFileSync(new URL('../vectors/verifier/vectors.json', import.meta.url), 'utf8')) as VectorFile;

describe('Function: createVerifier (the shared vectors, test/vectors/verifier)', () => {
  let issuer: FakeIssuer;
  let verifier: Verifier;

  beforeAll(async () => {
    // The fake issuer serves the vectors' JWKS; the tokens name the vectors' issuer.
    issuer = await startFakeIssuer();
    issuer.jwks.splice(0, issuer.jwks.length, ...VECTORS.jwks.keys);
    verifier = createVerifier({
      issuer: VECTORS.issuer,
      audience: VECTORS.audience,
      jwksUri: `${issuer.url}/.well-known/jwks.json`,
      revocations: { mode: 'off' },
      clock: () => VECTORS.now * 1000,
    });
  });

  afterAll(async () => {
    verifier.close();
    await issuer.close();
  });

  it('has refusals and acceptances to check', () => {
    // Assess
    expect(VECTORS.vectors.filter((v) => v.refuse).length).toBeGreaterThan(50);
    expect(VECTORS.vectors.filter((v) => v.accept).length).toBeGreaterThan(3);
  });

  it.each(VECTORS.vectors.filter((v) => v.refuse).map((v) => [v.name, v] as const))('refuses %s', async (_name, vector) => {
    // Act
    const error = await refusal(verifier.verify(vector.token, vector.action ? { action: vector.action } : {}));

    // Assess
    expect(error.code).toBe(vector.refuse?.code);
    if (vector.refuse?.message !== undefined) expect(error.message).toBe(vector.refuse.message);
  });

  it.each(VECTORS.vectors.filter((v) => v.accept).map((v) => [v.name, v] as const))('accepts %s', async (_name, vector) => {
    // Act
    const result = await verifier.verify(vector.token, vector.action ? { action: vector.action } : {});

    // Assess
    expect(result).toMatchObject(vector.accept?.claims ?? {});
    for (const claim of vector.accept?.absent ?? []) expect(Object.hasOwn(result, claim)).toBe(false);
  });
});

/** Changes the last character of the signature so its unused low bits are set. */
function nonCanonical(token: string): string {
  // A 64-byte signature is 86 base64url characters: the last one carries 4 unused bits.
  const last = token.at(-1) ?? 'A';
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const index = alphabet.indexOf(last);
  return `${token.slice(0, -1)}${alphabet[(index & ~0x0f) | ((index & 0x0f) ^ 0x01)]}`;
}
