/**
 * The issuer's own published keys as the verifier SDK's JWKS cache, for the verifiers the
 * issuer runs itself (the broker, introspection): no HTTP round trip to itself.
 *
 * It is the SDK's `createJwksCache` (its TTL, its one refetch per cool-down for an unknown
 * `kid`, its key allow-list and its `verifier_unavailable` on a failed read), fed by a fetch
 * that answers the JWKS document from the signer instead of the network, so the issuer keeps
 * no refetch logic of its own beside the SDK's.
 */
import { createJwksCache, type JwksCache } from '@lanyard/sdk/verifier';
import type { Clock, Signer } from '../ports/index.ts';

/** Never requested over the network: the fetch below answers it from the signer. */
const SIGNER_JWKS_URI = 'https://signer.lanyard.invalid/.well-known/jwks.json';
/** A `kid` not seen yet may be a key staged since the last read: it is looked for again at most once a second. */
const UNKNOWN_KID_COOL_DOWN_MS = 1_000;

/** Keys are re-read from the signer every `ttlMs`, and at once (at most once a second) for a `kid` not seen yet. */
export function signerJwks(signer: Signer, clock: Clock, ttlMs: number): JwksCache {
  return createJwksCache({
    jwksUri: SIGNER_JWKS_URI,
    fetch: () => signerDocument(signer),
    clock: () => clock.now(),
    ttlMs,
    coolDownMs: UNKNOWN_KID_COOL_DOWN_MS,
  });
}

/** The signer's public keys as the JWKS document `/.well-known/jwks.json` serves. */
async function signerDocument(signer: Signer): Promise<Response> {
  const keys = await signer.publicJwks();
  return new Response(JSON.stringify({ keys }), { status: 200, headers: { 'content-type': 'application/json' } });
}
