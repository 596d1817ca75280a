/**
 * Strict decoding of the pieces of a JWS compact serialization.
 *
 * RFC 7515 §2 and Appendix C: base64url *without* padding, alphabet `A–Z a–z 0–9 - _` only.
 * Decoders are lenient (Node's skips illegal characters and accepts `+`, `/` and `=`), so
 * every part is checked against the alphabet first, and re-encoded to refuse non-canonical
 * encodings (stray bits in the last character), which would otherwise let two different
 * strings carry the same bytes.
 */

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Unused low bits of the last character, by `length % 4` (RFC 4648 §3.5: they must be zero). */
const UNUSED_BITS: readonly number[] = [0, 0, 0x0f, 0x03];
/**
 * Decodes as `Buffer#toString('utf8')` did: not fatal (bad sequences become U+FFFD, then JSON
 * decides), and a leading BOM kept, so JSON refuses it.
 */
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** Decodes strict, canonical, unpadded base64url, or returns `undefined`. */
export function decodeBase64url(input: string): Uint8Array | undefined {
  const rest = input.length % 4;
  // A length of 1 mod 4 can never be produced by an encoder.
  if (rest === 1 || !BASE64URL.test(input)) return undefined;
  if (rest !== 0 && (ALPHABET.indexOf(input.charAt(input.length - 1)) & (UNUSED_BITS[rest] ?? 0)) !== 0) return undefined;
  // `atob` and `Uint8Array`, not `Buffer`: the SDK also runs outside Node (Deno, Bun, Workers).
  // The input is checked above, so the translation to base64 cannot make `atob` throw.
  const binary = atob(input.replaceAll('-', '+').replaceAll('_', '/'));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Parses JSON that must be an object (not an array, not null), dropping every `__proto__`
 * key on the way so a parsed value can never be used to reach `Object.prototype` when it is
 * later spread or merged (the same guard as aws-jwt-verify's `safeJsonParse`).
 */
export function parseJsonObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  const text = UTF8.decode(bytes);
  let value: unknown;
  try {
    // The reviver costs time on the hot path, so it only runs when a `__proto__` key is
    // possible: spelled out, or spelled with escapes (`"\u005f_proto__"` is the same key).
    value = text.includes('__proto__') || text.includes('\\') ? JSON.parse(text, dropProto) : JSON.parse(text);
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
