/**
 * `@lanyard/sdk/agent`: what an agent needs to hold a valid credential per lane (and to call
 * through the credential broker), and nothing of the verifier side.
 */
export { FleetFetchError, IssuanceError, isFleetFetchError, isIssuanceError } from './errors.ts';
export type { FleetFetchErrorCode, FleetFetchErrorContext, IssuanceErrorCode, IssuanceErrorContext } from './errors.ts';
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
export type { Clock, Fetch } from './lib/fetch.ts';
