import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DerSignatureError, derToEs256Signature, derToJoseSignature, spkiToJwk, type DerErrorCode } from '../../../../shared/adapters/aws/der.ts';

const hex = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

/** Builds a DER ECDSA-Sig-Value from already-encoded INTEGER contents (hex). */
function derOf(rContent: string, sContent: string): Uint8Array {
  const r = hex(rContent);
  const s = hex(sContent);
  const body = [0x02, r.length, ...r, 0x02, s.length, ...s];
  return Uint8Array.from([0x30, body.length, ...body]);
}

const R32 = '11'.repeat(32);
const S32 = '22'.repeat(32);

function expectDerError(act: () => unknown, code: DerErrorCode): void {
  let caught: unknown;
  try {
    act();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(DerSignatureError);
  expect((caught as DerSignatureError).code).toBe(code);
}

describe('Function: derToJoseSignature', () => {
  describe('Method: valid DER', () => {
    it('copies 32-byte r and s whose high bit is clear', () => {
      // Prepare
      const der = derOf(R32, S32);

      // Act
      const jose = derToJoseSignature(der);

      // Assess
      expect(der.length).toBe(70);
      expect(toHex(jose)).toBe(R32 + S32);
    });

    it('strips the single 0x00 DER adds when the high bit of r or s is set', () => {
      // Prepare
      const r = 'ff' + '01'.repeat(31);
      const s = '80' + '02'.repeat(31);
      const der = derOf('00' + r, '00' + s);

      // Act
      const jose = derToJoseSignature(der);

      // Assess
      expect(der.length).toBe(72);
      expect(toHex(jose)).toBe(r + s);
    });

    it('left-pads r and s that are shorter than 32 bytes with zeros', () => {
      // Prepare: r is 31 bytes, s is 30 bytes (1 in 256 and 1 in 65,536 signatures)
      const r = '7f' + '03'.repeat(30);
      const s = '01' + '04'.repeat(29);

      // Act
      const jose = derToJoseSignature(derOf(r, s));

      // Assess
      expect(jose.length).toBe(64);
      expect(toHex(jose)).toBe('00' + r + '0000' + s);
    });

    it('pads a short integer that still needed its sign byte', () => {
      // Prepare: 31 value bytes with the high bit set → 32 content bytes starting 0x00
      const r = '80' + '05'.repeat(30);

      // Act
      const jose = derToJoseSignature(derOf('00' + r, S32));

      // Assess
      expect(toHex(jose)).toBe('00' + r + S32);
    });

    it('accepts the long-form length a P-521 signature needs, with size 66', () => {
      // Prepare: 66-byte r and s with the high bit set → 67-byte INTEGERs, 138-byte body
      const r = '80' + '06'.repeat(65);
      const s = '81' + '07'.repeat(65);
      const body = [0x02, 67, ...hex('00' + r), 0x02, 67, ...hex('00' + s)];
      const der = Uint8Array.from([0x30, 0x81, body.length, ...body]);

      // Act
      const jose = derToJoseSignature(der, 66);

      // Assess
      expect(toHex(jose)).toBe(r + s);
    });

    it('round-trips 500 real P-256 signatures into r‖s that node:crypto verifies', () => {
      // Prepare
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      let failures = 0;

      // Act
      for (let i = 0; i < 500; i++) {
        const message = Buffer.from(`message ${i}`);
        const der = sign('sha256', message, { key: privateKey, dsaEncoding: 'der' });
        const jose = derToJoseSignature(der);
        if (!verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, jose)) failures++;
      }

      // Assess
      expect(failures).toBe(0);
    });
  });

  describe('Method: malformed DER', () => {
    const cases: ReadonlyArray<readonly [string, () => Uint8Array, DerErrorCode]> = [
      ['empty input', () => new Uint8Array(0), 'not_sequence'],
      ['a SET instead of a SEQUENCE', () => Uint8Array.from([0x31, ...derOf(R32, S32).subarray(1)]), 'not_sequence'],
      ['a SEQUENCE length longer than the input', () => Uint8Array.from([0x30, 0x45, ...derOf(R32, S32).subarray(2)]), 'bad_length'],
      ['a SEQUENCE length shorter than the input', () => Uint8Array.from([0x30, 0x43, ...derOf(R32, S32).subarray(2)]), 'trailing_bytes'],
      ['bytes after the SEQUENCE', () => Uint8Array.from([...derOf(R32, S32), 0x00]), 'trailing_bytes'],
      ['bytes after s inside the SEQUENCE', () => {
        const der = derOf(R32, S32);
        return Uint8Array.from([0x30, der.length - 2 + 2, ...der.subarray(2), 0x05, 0x00]);
      }, 'trailing_bytes'],
      ['the indefinite length form', () => Uint8Array.from([0x30, 0x80, ...derOf(R32, S32).subarray(2), 0x00, 0x00]), 'bad_length'],
      ['a long-form length that fits the short form', () => Uint8Array.from([0x30, 0x81, 0x44, ...derOf(R32, S32).subarray(2)]), 'bad_length'],
      ['a two-byte long-form length', () => Uint8Array.from([0x30, 0x82, 0x00, 0x44, ...derOf(R32, S32).subarray(2)]), 'bad_length'],
      ['r that is not an INTEGER', () => {
        const der = derOf(R32, S32);
        der[2] = 0x04;
        return der;
      }, 'not_integer'],
      ['r with length 0', () => {
        const s = hex(S32);
        const body = [0x02, 0x00, 0x02, s.length, ...s];
        return Uint8Array.from([0x30, body.length, ...body]);
      }, 'bad_length'],
      ['s running past the end', () => {
        const der = derOf(R32, S32);
        der[2 + 2 + 32 + 1] = 0x21;
        return der;
      }, 'bad_length'],
      ['a negative r', () => derOf('80' + '01'.repeat(31), S32), 'negative_integer'],
      ['a negative s', () => derOf(R32, 'ff' + '01'.repeat(31)), 'negative_integer'],
      ['r with a superfluous leading zero', () => derOf('00' + '7f' + '01'.repeat(31), S32), 'non_minimal_integer'],
      ['s padded with two zero bytes', () => derOf(R32, '0000' + 'ff' + '01'.repeat(31)), 'non_minimal_integer'],
      ['r equal to zero', () => derOf('00', S32), 'zero_integer'],
      ['r of 33 bytes after the sign byte', () => derOf('00' + 'ff'.repeat(33), S32), 'integer_too_long'],
      ['s of 33 bytes without a sign byte', () => derOf(R32, '7f' + '01'.repeat(32)), 'integer_too_long'],
    ];

    for (const [name, build, code] of cases) {
      it(`rejects ${name} with ${code}`, () => {
        // Prepare
        const der = build();

        // Act + Assess
        expectDerError(() => derToJoseSignature(der), code);
      });
    }

    it('rejects a size no curve has', () => {
      // Act + Assess
      expectDerError(() => derToJoseSignature(derOf(R32, S32), 0), 'bad_size');
    });
  });
});

describe('Function: derToEs256Signature', () => {
  const N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
  const scalarHex = (value: bigint) => value.toString(16).padStart(64, '0');

  it('turns a high-S DER signature into r ‖ (n − s)', () => {
    // Prepare: s = n − 5, high (its top bit is set, so DER pads it with 0x00)
    const der = derOf(R32, '00' + scalarHex(N - 5n));

    // Act
    const jose = derToEs256Signature(der);

    // Assess
    expect(toHex(jose)).toBe(R32 + scalarHex(5n));
  });

  it('keeps a low-S DER signature as it is', () => {
    expect(toHex(derToEs256Signature(derOf(R32, S32)))).toBe(R32 + S32);
  });

  it('makes every one of 500 real P-256 signatures low-S, and each still verifies', () => {
    // Prepare
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let highIn = 0;
    let highOut = 0;
    let failures = 0;

    // Act
    for (let i = 0; i < 500; i++) {
      const message = Buffer.from(`message ${i}`);
      const der = sign('sha256', message, { key: privateKey, dsaEncoding: 'der' });
      if (BigInt(`0x${toHex(derToJoseSignature(der).subarray(32))}`) > (N - 1n) / 2n) highIn++;
      const jose = derToEs256Signature(der);
      if (BigInt(`0x${toHex(jose.subarray(32))}`) > (N - 1n) / 2n) highOut++;
      if (!verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, jose)) failures++;
    }

    // Assess
    expect(highIn).toBeGreaterThan(0);
    expect(highOut).toBe(0);
    expect(failures).toBe(0);
  });
});

describe('Function: spkiToJwk', () => {
  it('turns a P-256 SubjectPublicKeyInfo into the JWK node:crypto exports', () => {
    // Prepare
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = publicKey.export({ format: 'der', type: 'spki' });

    // Act
    const jwk = spkiToJwk(spki);

    // Assess
    const expected = publicKey.export({ format: 'jwk' });
    expect(jwk).toEqual({ kty: 'EC', crv: 'P-256', x: expected.x, y: expected.y });
  });

  it('refuses a key on another curve', () => {
    // Prepare
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });

    // Act + Assess
    expect(() => spkiToJwk(publicKey.export({ format: 'der', type: 'spki' }))).toThrow(/not EC P-256/);
  });
});
