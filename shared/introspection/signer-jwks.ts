/**
 * The issuer's own published keys as the verifier SDK's JWKS cache, for the verifiers the
 * issuer runs itself (the broker, introspection): no HTTP round trip to itself.
 */
import type { webcrypto } from 'node:crypto';
import { VerificationError, type JwksCache } from '@lanyard/sdk/verifier';
import type { Clock, Signer } from '../ports/index.ts';

/** Keys are re-read from the signer every `ttlMs`, and at once (at most once a second) for a `kid` not seen yet. */
export function signerJwks(signer: Signer, clock: Clock, ttlMs: number): JwksCache {
  let loaded: { at: number; keys: Promise<Map<string, webcrypto.CryptoKey>> } | undefined;
  let lastRefetch = 0;
  const load = async (): Promise<Map<string, webcrypto.CryptoKey>> => {
    const jwks = await signer.publicJwks();
    const entries = await Promise.all(
      jwks.map(async (jwk) => [jwk.kid, await crypto.subtle.importKey('jwk', { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify'])] as const),
    );
    return new Map(entries);
  };
  const current = async (now: number, force: boolean): Promise<Map<string, webcrypto.CryptoKey>> => {
    if (force || !loaded || now - loaded.at > ttlMs) loaded = { at: now, keys: load() };
    const pending = loaded;
    try {
      return await pending.keys;
    } catch (error) {
      if (loaded === pending) loaded = undefined;
      throw new VerificationError('verifier_unavailable', 'the signing keys could not be read', {}, { cause: error });
    }
  };
  return {
    async getKey(kid) {
      const now = clock.now();
      let key = (await current(now, false)).get(kid);
      // A kid we do not know yet may be a key staged since we last looked: look once more, at most once a second.
      if (!key && now - lastRefetch >= 1_000) {
        lastRefetch = now;
        key = (await current(now, true)).get(kid);
      }
      if (!key) throw new VerificationError('unknown_key', 'the token was signed by a key this issuer does not publish');
      return key;
    },
    invalidate() {
      loaded = undefined;
    },
  };
}
