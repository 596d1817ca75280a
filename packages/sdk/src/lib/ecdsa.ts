/**
 * ES256 signature checks that must not be left to the crypto library.
 *
 * RFC 7518 §3.4: an ES256 signature is exactly 64 bytes, R ‖ S, each a 32-byte big-endian
 * integer. SEC 1 §4.1.4 step 1: a verifier refuses R or S outside [1, n−1]. WebCrypto does
 * refuse most of these, but this rule is cheap and keeps us independent of the backend
 * (CVE-2022-21449, "psychic signatures", was exactly a missing zero check).
 *
 * ECDSA is malleable: if (R, S) verifies, so does (R, n − S), a second string for the same
 * token. Lanyard's signers always emit the low form, S ≤ (n − 1)/2 (as BIP 62 does for
 * secp256k1), and the verifier refuses the high one, so a token has exactly one signature and
 * anything keyed by the token string (a deny list, a verified-token cache) cannot be
 * sidestepped by re-encoding it.
 */

/** Order n of the P-256 group (FIPS 186-4 D.1.2.3), big-endian. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const SCALAR_BYTES = 32;

const P256_ORDER = scalarBytes(P256_N);
/** (n − 1) / 2, the largest S of a low-S signature, big-endian. */
const P256_HALF_ORDER = scalarBytes((P256_N - 1n) / 2n);

/** True when `signature` is 64 bytes, R is in [1, n−1] and S in [1, (n−1)/2] (low-S). */
export function isWellFormedP256Signature(signature: Uint8Array): boolean {
  if (signature.length !== 2 * SCALAR_BYTES) return false;
  return inRange(signature, 0, P256_ORDER, false) && inRange(signature, SCALAR_BYTES, P256_HALF_ORDER, true);
}

/**
 * The low-S form of a 64-byte P-256 `R ‖ S`: S is replaced by n − S when it is above
 * (n − 1)/2; a signature already low is returned as it is. Both forms verify; only the low one
 * is accepted by Lanyard verifiers.
 */
export function toLowS(signature: Uint8Array): Uint8Array {
  if (signature.length !== 2 * SCALAR_BYTES) throw new RangeError(`an ES256 signature is ${2 * SCALAR_BYTES} bytes, not ${signature.length}`);
  if (inRange(signature, SCALAR_BYTES, P256_HALF_ORDER, true)) return signature;
  const s = scalarValue(signature.subarray(SCALAR_BYTES));
  if (s === 0n || s >= P256_N) throw new RangeError('S is not in [1, n−1]: not a P-256 signature');
  const out = new Uint8Array(signature);
  out.set(scalarBytes(P256_N - s), SCALAR_BYTES);
  return out;
}

/** True when the 32-byte integer at `offset` is non-zero and below `limit` (or equal to it when `inclusive`). */
function inRange(bytes: Uint8Array, offset: number, limit: Uint8Array, inclusive: boolean): boolean {
  let zero = true;
  let below: boolean | undefined;
  for (let i = 0; i < SCALAR_BYTES; i += 1) {
    const byte = bytes[offset + i] ?? 0;
    if (byte !== 0) zero = false;
    if (below === undefined) {
      const bound = limit[i] ?? 0;
      if (byte < bound) below = true;
      else if (byte > bound) below = false;
    }
  }
  // below undefined means equal to the limit.
  return !zero && (below ?? inclusive);
}

// Plain `Uint8Array` and bigint, not `Buffer`: the SDK also runs outside Node (Deno, Bun, Workers).

/** A scalar as 32 big-endian bytes. */
function scalarBytes(value: bigint): Uint8Array {
  const out = new Uint8Array(SCALAR_BYTES);
  let rest = value;
  for (let i = SCALAR_BYTES - 1; i >= 0; i -= 1) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return out;
}

/** 32 big-endian bytes as a scalar. */
function scalarValue(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}
