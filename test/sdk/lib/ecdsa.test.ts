import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isWellFormedP256Signature, toLowS } from '@lanyard/sdk/ecdsa';

const N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
const HALF = (N - 1n) / 2n;
const scalar = (value: bigint): Buffer => Buffer.from(value.toString(16).padStart(64, '0'), 'hex');
const sOf = (signature: Uint8Array): bigint => BigInt(`0x${Buffer.from(signature.subarray(32)).toString('hex')}`);
const R = scalar(12345n);

describe('Function: isWellFormedP256Signature', () => {
  it.each([
    ['S = 1', 1n, true],
    ['S = (n − 1) / 2, the largest low S', HALF, true],
    ['S = (n + 1) / 2, the smallest high S', HALF + 1n, false],
    ['S = n − 1', N - 1n, false],
    ['S = 0', 0n, false],
  ])('with %s answers %s', (_name, s, expected) => {
    expect(isWellFormedP256Signature(Buffer.concat([R, scalar(s)]))).toBe(expected);
  });
});

describe('Function: toLowS', () => {
  it('replaces a high S by n − S and leaves a low S alone', () => {
    // Act
    const lowered = toLowS(Buffer.concat([R, scalar(N - 7n)]));
    const kept = toLowS(Buffer.concat([R, scalar(7n)]));

    // Assess
    expect(sOf(lowered)).toBe(7n);
    expect(Buffer.from(lowered.subarray(0, 32))).toEqual(R);
    expect(sOf(kept)).toBe(7n);
  });

  it('turns 200 real signatures into low-S ones that still verify and the verifier accepts', () => {
    // Prepare
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let high = 0;
    let failures = 0;

    // Act
    for (let i = 0; i < 200; i += 1) {
      const message = Buffer.from(`message ${i}`);
      const signature = sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      if (sOf(signature) > HALF) high += 1;
      const low = toLowS(signature);
      if (!isWellFormedP256Signature(low) || !verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, low)) failures += 1;
    }

    // Assess: about half of what OpenSSL signs is high-S
    expect(high).toBeGreaterThan(0);
    expect(failures).toBe(0);
  });

  it.each([
    ['S = 0', Buffer.concat([R, scalar(0n)])],
    ['S = n', Buffer.concat([R, scalar(N)])],
    ['63 bytes', Buffer.alloc(63, 1)],
  ])('refuses what is not a P-256 signature: %s', (_name, bytes) => {
    expect(() => toLowS(bytes)).toThrow(RangeError);
  });
});
