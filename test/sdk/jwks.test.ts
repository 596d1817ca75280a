import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createJwksCache, createVerifier } from '@lanyard/sdk';
import type { Verifier } from '@lanyard/sdk';
import { AUDIENCE, createSigningKey, NOW_MS, startFakeIssuer } from './fixtures/fake-issuer.ts';
import type { FakeIssuer } from './fixtures/fake-issuer.ts';
import { closedPort, refusal } from './fixtures/refusal.ts';
import { b64url, claims, header, sign, signParts } from './fixtures/tokens.ts';

describe('Function: createVerifier', () => {
  describe('the JWKS cache', () => {
    let issuer: FakeIssuer;
    let verifier: Verifier;
    let now: number;

    beforeEach(async () => {
      issuer = await startFakeIssuer();
      now = NOW_MS;
      verifier = createVerifier({ issuer: issuer.url, audience: AUDIENCE, revocations: { mode: 'off' }, clock: () => now });
    });

    afterEach(async () => {
      verifier.close();
      await issuer.close();
    });

    it('shares one JWKS fetch between concurrent callers', async () => {
      // Prepare
      const token = await sign(issuer.key, header(issuer.key), claims(issuer.url));

      // Act
      const results = await Promise.all(Array.from({ length: 20 }, () => verifier.verify(token)));

      // Assess
      expect(results).toHaveLength(20);
      expect(issuer.requests.jwks).toBe(1);
    });

    it('keeps keys for the TTL and refetches after it', async () => {
      // Prepare
      const token = await sign(issuer.key, header(issuer.key), claims(issuer.url, { exp: NOW_MS / 1000 + 3600 }));
      await verifier.verify(token);

      // Act
      now = NOW_MS + 9 * 60_000;
      await verifier.verify(token);
      const withinTtl = issuer.requests.jwks;
      now = NOW_MS + 10 * 60_000 + 1;
      await verifier.verify(token);

      // Assess
      expect(withinTtl).toBe(1);
      expect(issuer.requests.jwks).toBe(2);
    });

    it('refuses an unknown kid, refetching once per cool-down and not once per token', async () => {
      // Prepare
      await verifier.verify(await sign(issuer.key, header(issuer.key), claims(issuer.url)));
      const stranger = await createSigningKey();
      const forged = await Promise.all(
        Array.from({ length: 10 }, (_, i) => sign(stranger, header(stranger, { kid: `kid-${i % 3}` }), claims(issuer.url))),
      );

      now += 30_001; // past the cool-down of the first fetch

      // Act
      const concurrent = await Promise.all(forged.slice(0, 5).map((token) => refusal(verifier.verify(token))));
      const sequential = [];
      for (const token of forged.slice(5)) sequential.push(await refusal(verifier.verify(token)));

      // Assess
      expect([...concurrent, ...sequential].map((error) => error.code)).toEqual(Array(10).fill('unknown_key'));
      expect(concurrent[0]?.message).toBe('the token was signed with a key this verifier does not know');
      expect(issuer.requests.jwks).toBe(2);
    });

    it('picks up a newly published key once the cool-down has passed', async () => {
      // Prepare
      await verifier.verify(await sign(issuer.key, header(issuer.key), claims(issuer.url)));
      const next = await createSigningKey();
      const token = await sign(next, header(next), claims(issuer.url));
      now += 30_001;
      await refusal(verifier.verify(token)); // refetches, but the key is not published yet
      issuer.jwks.push(next.publicJwk);

      // Act
      const inCoolDown = await refusal(verifier.verify(token));
      now += 30_001;
      const result = await verifier.verify(token);

      // Assess
      expect(inCoolDown.code).toBe('unknown_key');
      expect(result.jti).toBe('cred_01');
      expect(issuer.requests.jwks).toBe(3);
    });

    it('ignores a P-384 key published under the token kid', async () => {
      // Prepare
      const p384 = await createSigningKey('ES384');
      issuer.jwks.push({ ...p384.publicJwk, alg: 'ES256' });
      const token = await signParts(p384, b64url(JSON.stringify(header(p384))), b64url(JSON.stringify(claims(issuer.url))));

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('unknown_key');
    });

    it.each([
      ['an RS256 alg', { alg: 'RS256' }],
      ['use enc', { use: 'enc' }],
      ['a short x coordinate', { x: 'AAAA' }],
    ])('ignores a key with %s', async (_name, change) => {
      // Prepare
      issuer.jwks[0] = { ...issuer.key.publicJwk, ...change };
      const token = await sign(issuer.key, header(issuer.key), claims(issuer.url));

      // Act
      const error = await refusal(verifier.verify(token));

      // Assess
      expect(error.code).toBe('unknown_key');
    });

    it('refuses tokens with verifier_unavailable when the JWKS cannot be fetched', async () => {
      // Prepare
      const port = await closedPort();
      const offline = createVerifier({
        issuer: issuer.url,
        jwksUri: `http://127.0.0.1:${port}/.well-known/jwks.json`,
        audience: AUDIENCE,
        revocations: { mode: 'off' },
        clock: () => now,
      });
      const token = await sign(issuer.key, header(issuer.key), claims(issuer.url));

      // Act
      const error = await refusal(offline.verify(token));

      // Assess
      expect(error.code).toBe('verifier_unavailable');
      expect(error.status).toBe(503);
      expect(error.cause).toBeInstanceOf(Error);
    });

    it('refuses tokens with verifier_unavailable when the JWKS is not JSON', async () => {
      // Prepare
      const cache = createJwksCache({
        jwksUri: `${issuer.url}/.well-known/jwks.json`,
        fetch: () => Promise.resolve(new Response('<html>', { status: 200 })),
        clock: () => now,
      });

      // Act
      const error = await refusal(cache.getKey(issuer.key.kid));

      // Assess
      expect(error.code).toBe('verifier_unavailable');
      expect(error.message).toBe('signing keys could not be fetched');
    });
  });
});
