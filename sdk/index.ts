/**
 * Lanyard verifier SDK: verify Lanyard access tokens in a resource server.
 *
 * Self-contained on purpose (imports nothing from the issuer's `shared/`): this is what other
 * programs import.
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
export { lanyardAuth } from './middy.ts';
export type { ErrorResult, HeaderEvent, LanyardAuthOptions, LanyardContext } from './middy.ts';
export type { Clock, Fetch } from './lib/fetch.ts';
