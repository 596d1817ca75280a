/**
 * `@lanyard/sdk/verifier`: what a resource server needs to verify Lanyard access tokens and
 * follow revocations, and nothing of the agent side. WebCrypto and `Uint8Array` only, so it
 * also loads in Deno, Bun and Workers-style runtimes.
 */
export { VerificationError, isVerificationError } from './errors.ts';
export type { RevokedTarget, VerificationErrorCode, VerificationErrorContext } from './errors.ts';
export { createVerifier } from './verifier.ts';
export type { LanyardClaims, LanyardHeader, RevocationOptions, Verifier, VerifierOptions, VerifyOptions } from './verifier.ts';
export { createJwksCache } from './jwks.ts';
export type { JwksCache, JwksCacheOptions } from './jwks.ts';
export { createRevocationFollower } from './revocations.ts';
export type {
  Revocation,
  RevocationFollower,
  RevocationFollowerOptions,
  RevocationSubject,
  RevocationTargetType,
} from './revocations.ts';
export { authenticate, bearerToken, sendVerificationError } from './http.ts';
export type { Clock, Fetch } from './lib/fetch.ts';
