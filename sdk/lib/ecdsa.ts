/**
 * ES256 signature checks that must not be left to the crypto library.
 *
 * RFC 7518 §3.4: an ES256 signature is exactly 64 bytes, R ‖ S, each a 32-byte big-endian
 * integer. SEC 1 §4.1.4 step 1: a verifier refuses R or S outside [1, n−1]. WebCrypto does
 * refuse most of these, but this rule is cheap and keeps us independent of the backend
 * (CVE-2022-21449, "psychic signatures", was exactly a missing zero check).
 */

/** Order n of the P-256 group (FIPS 186-4 D.1.2.3), big-endian. */
const P256_ORDER = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex');

const SCALAR_BYTES = 32;

/** True when `signature` is 64 bytes and both halves are in [1, n−1]. */
export function isWellFormedP256Signature(signature: Uint8Array): boolean {
  if (signature.length !== 2 * SCALAR_BYTES) return false;
  return inRange(signature, 0) && inRange(signature, SCALAR_BYTES);
}

function inRange(bytes: Uint8Array, offset: number): boolean {
  let zero = true;
  let lessThanN: boolean | undefined;
  for (let i = 0; i < SCALAR_BYTES; i += 1) {
    const byte = bytes[offset + i] ?? 0;
    if (byte !== 0) zero = false;
    if (lessThanN === undefined) {
      const limit = P256_ORDER[i] ?? 0;
      if (byte < limit) lessThanN = true;
      else if (byte > limit) lessThanN = false;
    }
  }
  // lessThanN undefined means equal to n.
  return !zero && lessThanN === true;
}
