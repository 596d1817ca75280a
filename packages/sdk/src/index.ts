/**
 * Lanyard SDK: verify Lanyard access tokens in a resource server, and (the agent side) keep a
 * valid credential per lane without ever noticing a rotation.
 *
 * Self-contained on purpose (imports nothing from the issuer's `shared/`): this is what other
 * programs import. This root entry is the verifier and the agent side together; the middy
 * middleware and the AWS SDK credential provider are only under `@lanyard/sdk/middy` and
 * `@lanyard/sdk/aws`, so nothing here pulls in Lambda or AWS SDK types.
 */
export { FleetFetchError, IssuanceError, VerificationError, isFleetFetchError, isIssuanceError, isVerificationError } from './errors.ts';
export type {
  FleetFetchErrorCode,
  FleetFetchErrorContext,
  IssuanceErrorCode,
  IssuanceErrorContext,
  RevokedTarget,
  VerificationErrorCode,
  VerificationErrorContext,
} from './errors.ts';
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
export { createCredentialSource } from './credential-source.ts';
export type {
  AuthorityLoss,
  AwsSessionCredentials,
  Credential,
  CredentialRequest,
  CredentialSource,
  CredentialSourceOptions,
  SourceAuth,
  SourceState,
} from './credential-source.ts';
export { createRefreshTokenChain } from './refresh-tokens.ts';
export type { RefreshTokenChain } from './refresh-tokens.ts';
export { createFleetFetch, lanyardFetch } from './fleet-fetch.ts';
export type { FleetFetch, LanyardFetchOptions } from './fleet-fetch.ts';
