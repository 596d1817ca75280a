/**
 * DER ↔ JOSE for ECDSA signatures. KMS returns an ASN.1 DER `ECDSA-Sig-Value`
 * (RFC 3279 §2.2.3: `SEQUENCE { r INTEGER, s INTEGER }`); a JWS ES256 signature is the
 * fixed-size big-endian `r ‖ s` (RFC 7518 §3.4). The parser is strict (X.690 §10, DER):
 * anything a correct signer would never produce is refused rather than repaired, because a
 * lenient parser is how signature malleability gets in.
 */
import { createPublicKey } from 'node:crypto';
import { toLowS } from '@lanyard/sdk/ecdsa';

/** Stable reasons a DER signature is refused; tests and callers match on `code`, not on text. */
export type DerErrorCode =
  | 'not_sequence'
  | 'bad_length'
  | 'not_integer'
  | 'negative_integer'
  | 'non_minimal_integer'
  | 'zero_integer'
  | 'integer_too_long'
  | 'trailing_bytes'
  | 'bad_size';

export class DerSignatureError extends Error {
  override readonly name = 'DerSignatureError';
  readonly code: DerErrorCode;

  constructor(code: DerErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;

/**
 * Converts a DER `ECDSA-Sig-Value` into the JWS `r ‖ s` form: each integer left-padded with
 * zeros to `size` bytes (32 for P-256), so the result is `2 * size` bytes.
 *
 * @example
 * ```ts
 * const jose = derToJoseSignature(kmsResponse.Signature!); // 64 bytes for ES256
 * ```
 * @throws DerSignatureError with a stable `code` for any input that is not strict DER.
 */
export function derToJoseSignature(der: Uint8Array, size = 32): Uint8Array {
  if (!Number.isInteger(size) || size < 1 || size > 66) {
    throw new DerSignatureError('bad_size', `integer size must be 1..66 bytes, got ${size}`);
  }
  if (der.length < 2 || der[0] !== SEQUENCE) {
    throw new DerSignatureError('not_sequence', 'ECDSA signature is not a DER SEQUENCE');
  }
  const { length, offset } = readLength(der, 1);
  if (offset + length !== der.length) {
    throw new DerSignatureError(
      offset + length < der.length ? 'trailing_bytes' : 'bad_length',
      `SEQUENCE length ${length} does not match the ${der.length - offset} bytes that follow`,
    );
  }
  const r = readInteger(der, offset, size, 'r');
  const s = readInteger(der, r.next, size, 's');
  if (s.next !== der.length) {
    throw new DerSignatureError('trailing_bytes', 'bytes follow s inside the SEQUENCE');
  }
  const out = new Uint8Array(size * 2);
  out.set(r.value, size - r.value.length);
  out.set(s.value, size * 2 - s.value.length);
  return out;
}

/**
 * Converts a KMS `ECDSA_SHA_256` DER signature into the ES256 `r ‖ s` a Lanyard token carries:
 * 64 bytes, with S in its low form. KMS returns either S or n − S (both verify); verifiers
 * accept only the low one, so a token has exactly one signature string (packages/sdk/src/lib/ecdsa.ts).
 *
 * @throws DerSignatureError for input that is not strict DER; RangeError when r or s is not a P-256 scalar.
 */
export function derToEs256Signature(der: Uint8Array): Uint8Array {
  return toLowS(derToJoseSignature(der, 32));
}

/** X.690 §10.1: definite form, and the long form only when the short one cannot hold the length. */
function readLength(der: Uint8Array, at: number): { length: number; offset: number } {
  const first = der[at];
  if (first === undefined) throw new DerSignatureError('bad_length', 'length byte missing');
  if (first < 0x80) return { length: first, offset: at + 1 };
  // 0x80 is BER's indefinite form; more than one length byte is never needed for ECDSA (≤ 139 bytes).
  if (first !== 0x81) throw new DerSignatureError('bad_length', `unsupported length form 0x${first.toString(16)}`);
  const long = der[at + 1];
  if (long === undefined) throw new DerSignatureError('bad_length', 'long-form length byte missing');
  if (long < 0x80) throw new DerSignatureError('bad_length', `long-form length ${long} should use the short form`);
  return { length: long, offset: at + 2 };
}

function readInteger(der: Uint8Array, at: number, size: number, name: 'r' | 's'): { value: Uint8Array; next: number } {
  if (der[at] !== INTEGER) throw new DerSignatureError('not_integer', `${name} is not a DER INTEGER`);
  const { length, offset } = readLength(der, at + 1);
  if (length === 0) throw new DerSignatureError('bad_length', `${name} has length 0`);
  const end = offset + length;
  if (end > der.length) throw new DerSignatureError('bad_length', `${name} runs past the end of the signature`);
  let content = der.subarray(offset, end);
  const lead = content[0] ?? 0;
  if (lead & 0x80) throw new DerSignatureError('negative_integer', `${name} is negative`);
  if (lead === 0x00 && content.length > 1) {
    // DER adds exactly one 0x00, and only to keep a high first bit from reading as a sign.
    if (((content[1] ?? 0) & 0x80) === 0) {
      throw new DerSignatureError('non_minimal_integer', `${name} has a superfluous leading zero byte`);
    }
    content = content.subarray(1);
  }
  if (content.length === 1 && content[0] === 0) throw new DerSignatureError('zero_integer', `${name} is zero`);
  if (content.length > size) {
    throw new DerSignatureError('integer_too_long', `${name} is ${content.length} bytes; at most ${size} allowed`);
  }
  return { value: content, next: end };
}

/** A P-256 public key as the bare JWK members RFC 7638 thumbprints are computed over. */
export interface EcPublicJwk {
  readonly kty: 'EC';
  readonly crv: 'P-256';
  readonly x: string;
  readonly y: string;
}

/**
 * Converts a DER `SubjectPublicKeyInfo` (what KMS `GetPublicKey` returns) into a P-256 JWK.
 *
 * @example
 * ```ts
 * const jwk = spkiToJwk(getPublicKeyOutput.PublicKey!);
 * ```
 * @throws Error when the key is not an EC P-256 public key.
 */
export function spkiToJwk(spki: Uint8Array): EcPublicJwk {
  const jwk = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({ format: 'jwk' });
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new Error(`public key is ${jwk.kty ?? '?'}/${jwk.crv ?? '?'}, not EC P-256`);
  }
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
}
