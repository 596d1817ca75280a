/**
 * Compact JWS for access tokens (RFC 7515 §7.1, RFC 9068 profile). The signer returns the
 * 64-byte r‖s form JWS ES256 needs (RFC 7518 §3.4), whatever key store it fronts, with S in
 * its low form: the only one verifiers accept, so each token has exactly one string.
 */
import { isWellFormedP256Signature } from '@lanyard/sdk/ecdsa';
import type { Signer } from '../ports/index.ts';

export interface SignedToken {
  readonly token: string;
  readonly kid: string;
}

const encoder = new TextEncoder();

export function base64url(bytes: Uint8Array | string): string {
  return Buffer.from(typeof bytes === 'string' ? encoder.encode(bytes) : bytes).toString('base64url');
}

/** Signs `claims` as an `at+jwt` with the signer's active key; `kid` is always in the header. */
export async function signAccessToken(signer: Signer, claims: Readonly<Record<string, unknown>>): Promise<SignedToken> {
  const kid = await signer.activeKid();
  const header = base64url(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid }));
  const payload = base64url(JSON.stringify(claims));
  const signingInput = `${header}.${payload}`;
  const signature = await signer.sign(kid, encoder.encode(signingInput));
  if (signature.length !== 64) {
    throw new Error(`signer returned a ${signature.length}-byte signature; ES256 needs 64 (r‖s)`);
  }
  // A high S would mint a token every Lanyard verifier refuses: a signer bug, caught here.
  if (!isWellFormedP256Signature(signature)) throw new Error('signer returned a signature with r or s out of range, or a high s; ES256 tokens are signed low-S');
  return { token: `${signingInput}.${base64url(signature)}`, kid };
}
