import { describe, expect, it } from 'vitest';
import { signAccessToken } from '../../../shared/issuance/jws.ts';
import type { Signer } from '../../../shared/ports/index.ts';

const N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
const scalar = (value: bigint) => Buffer.from(value.toString(16).padStart(64, '0'), 'hex');

/** A signer that answers with the given bytes, whatever it is asked to sign. */
function signerAnswering(signature: Uint8Array): Signer {
  return {
    activeKid: () => Promise.resolve('kid-1'),
    sign: () => Promise.resolve(signature),
    publicJwks: () => Promise.resolve([]),
  };
}

describe('Function: signAccessToken', () => {
  it('refuses a signer that answers with a high S, rather than mint a token every verifier refuses', async () => {
    const signer = signerAnswering(Buffer.concat([scalar(7n), scalar(N - 7n)]));

    await expect(signAccessToken(signer, { sub: 'a/b' })).rejects.toThrow(/high s/);
  });

  it('takes a low-S signature as it is', async () => {
    const signer = signerAnswering(Buffer.concat([scalar(7n), scalar(7n)]));

    const { token } = await signAccessToken(signer, { sub: 'a/b' });

    expect(Buffer.from(token.split('.')[2]!, 'base64url')).toEqual(Buffer.concat([scalar(7n), scalar(7n)]));
  });
});
