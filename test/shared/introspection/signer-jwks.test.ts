import { webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signerJwks } from '../../../shared/introspection/signer-jwks.ts';
import type { PublicJwk, Signer } from '../../../shared/ports/index.ts';

async function publicJwk(kid: string): Promise<PublicJwk> {
  const pair = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const { x, y } = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
  return { kty: 'EC', crv: 'P-256', x: x!, y: y!, kid, alg: 'ES256', use: 'sig' };
}

/** A signer whose published keys each test sets; it counts the reads. */
function fakeSigner(keys: PublicJwk[]) {
  const state = { keys, reads: 0, down: false };
  const signer = {
    publicJwks: () => {
      state.reads += 1;
      return state.down ? Promise.reject(new Error('kms down')) : Promise.resolve(state.keys);
    },
  } as unknown as Signer;
  return { signer, state };
}

describe('signerJwks', () => {
  it('reads the signer once for keys it holds, until the TTL has passed', async () => {
    const { signer, state } = fakeSigner([await publicJwk('k1')]);
    let now = 1_000_000;
    const jwks = signerJwks(signer, { now: () => now }, 60_000);

    await jwks.getKey('k1');
    await jwks.getKey('k1');
    expect(state.reads).toBe(1);

    now += 60_001;
    await jwks.getKey('k1');
    expect(state.reads).toBe(2);
  });

  it('finds a key staged since the last read, looking again at most once a second', async () => {
    const { signer, state } = fakeSigner([await publicJwk('k1')]);
    let now = 1_000_000;
    const jwks = signerJwks(signer, { now: () => now }, 60_000);
    await jwks.getKey('k1');
    state.keys = [...state.keys, await publicJwk('k2')];

    await expect(jwks.getKey('k2')).rejects.toMatchObject({ code: 'unknown_key' });
    expect(state.reads).toBe(1);

    now += 1_000;
    await expect(jwks.getKey('k2')).resolves.toBeDefined();
    expect(state.reads).toBe(2);
  });

  it('refuses a kid the signer does not publish with unknown_key', async () => {
    const { signer } = fakeSigner([await publicJwk('k1')]);
    const jwks = signerJwks(signer, { now: () => 1_000_000 }, 60_000);

    await expect(jwks.getKey('forged')).rejects.toMatchObject({ code: 'unknown_key' });
  });

  it('fails closed with verifier_unavailable when the signer cannot be read', async () => {
    const { signer, state } = fakeSigner([await publicJwk('k1')]);
    state.down = true;
    const jwks = signerJwks(signer, { now: () => 1_000_000 }, 60_000);

    await expect(jwks.getKey('k1')).rejects.toMatchObject({ code: 'verifier_unavailable' });
  });
});
