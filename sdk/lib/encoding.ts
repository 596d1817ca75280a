/**
 * Strict decoding of the pieces of a JWS compact serialization.
 *
 * RFC 7515 §2 and Appendix C: base64url *without* padding, alphabet `A–Z a–z 0–9 - _` only.
 * Node's decoder is lenient (it skips illegal characters and accepts `+`, `/` and `=`), so
 * every part is checked against the alphabet first, and re-encoded to refuse non-canonical
 * encodings (stray bits in the last character), which would otherwise let two different
 * strings carry the same bytes.
 */

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Decodes strict, canonical, unpadded base64url, or returns `undefined`. */
export function decodeBase64url(input: string): Buffer | undefined {
  // A length of 1 mod 4 can never be produced by an encoder.
  if (!BASE64URL.test(input) || input.length % 4 === 1) return undefined;
  const bytes = Buffer.from(input, 'base64url');
  if (bytes.toString('base64url') !== input) return undefined;
  return bytes;
}

/**
 * Parses JSON that must be an object (not an array, not null), dropping every `__proto__`
 * key on the way so a parsed value can never be used to reach `Object.prototype` when it is
 * later spread or merged (the same guard as aws-jwt-verify's `safeJsonParse`).
 */
export function parseJsonObject(bytes: Buffer): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'), dropProto);
  } catch {
    return undefined;
  }
  return isPlainObject(value) ? value : undefined;
}

function dropProto(key: string, value: unknown): unknown {
  // Returning undefined from a reviver deletes the property.
  return key === '__proto__' ? undefined : value;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
