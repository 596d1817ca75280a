/**
 * Ports (docs/architecture.md#ports-and-adapters): what the core needs from the world, listed
 * here in one place. Adapters under `shared/adapters/*` implement them; the core imports no AWS
 * SDK. A use case declares the ports it uses in its own deps interface; `IssuerServices`
 * (services.ts) is the bag a composition root fills.
 */

// The store, by aggregate (store.ts); `Store` is their intersection, what `DynamoStore` implements.
/** Tools, role versions, identities and grants, principals and their keys: the policy a decision reads. */
export type { PolicyStore, PolicyItemKeys, PolicyItems } from './store.ts';
export { roleVersionKey } from './store.ts';
/** Decision records (the audit, issued credentials among them) and their queries. */
export type { DecisionStore, DecisionQuery, Page } from './store.ts';
/** How every store reads a decision query's instants and page size (the same refusals on each). */
export { instantKey, queryLimit, DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT } from './decision-query.ts';
/** The revocation feed (ordered cut-offs) and the standing issuance blocks. */
export type { RevocationStore } from './store.ts';
/** Refresh tokens of agent instances, by hash, each spent once. */
export type { RefreshTokenStore, RefreshTokenRecord, RefreshTokenSpend } from './store.ts';
/** Quota buckets of the broker: their limits and the counter of each window. */
export type { QuotaStore, QuotaWindow, QuotaTake } from './store.ts';
/** The pointer to each broker provider's current secret version. */
export type { SecretPointerStore } from './store.ts';
/** Every role port of the store at once. */
export type { Store } from './store.ts';

/** ES256 signatures and the published JWKS. */
export type { Signer, PublicJwk } from './signer.ts';
/** STS sessions for the `sts` kind. */
export type { SessionIssuer, AssumeRoleRequest, AwsSessionCredentials } from './sessions.ts';
/** Denying STS sessions a revocation covers (they cannot be deleted). */
export type { SessionRevoker } from './sessions.ts';
/** The quota step of an issuance: take one from a bucket, or be refused. */
export type { IssuanceQuota } from './quota.ts';
/** Events out (EventBridge, the local bus) and the live stream the embedded default serves. */
export type { LanyardEvent, EventPublisher, EventStream } from './events.ts';
/** The broker's upstream secrets, write-only but for the broker's read path; `SecretVaultError` when a version cannot be had. */
export { SecretVaultError, type SecretVault } from './secret-vault.ts';
/** Time, injectable by tests. */
export { systemClock, type Clock } from './clock.ts';
/** Log lines, never carrying a secret. */
export { silentLog, jsonLinesLog, describeError, type Log } from './log.ts';
