/**
 * The store, as role ports: one per aggregate, so a use case names the part of the table it
 * reads and writes (docs/architecture.md#the-stores-role-ports). `Store` is all of them at once: what an
 * adapter implements (`DynamoStore`, `SqliteStore`) and what a composition root hands out.
 *
 * Every write is a single-item (conditional) write or a batch of independent puts, never a
 * multi-item transaction (docs/architecture.md), so the DynamoDB store needs no
 * TransactWriteItems; the SQLite store runs each such write in one SQL transaction.
 */
import type {
  DecisionRecord,
  Grant,
  Identity,
  IssuanceBlock,
  Principal,
  PrincipalKeyKind,
  QuotaPolicy,
  QuotaUsage,
  Reinstatement,
  Revocation,
  RoleVersion,
  Tool,
  UpstreamSecretRef,
} from '../domain/model.ts';

export interface Page<T> {
  readonly items: readonly T[];
  /** Opaque; absent on the last page. */
  readonly cursor?: string;
}

/** What `getPolicyItems` is asked for: tools by id, role versions by id and version, quota policies by bucket. */
export interface PolicyItemKeys {
  readonly tools?: readonly string[];
  readonly roles?: readonly { readonly id: string; readonly version: number }[];
  readonly quotas?: readonly string[];
}

/** What `getPolicyItems` found; a key that names no item is absent. Roles are keyed `id@version`. */
export interface PolicyItems {
  readonly tools: ReadonlyMap<string, Tool>;
  readonly roles: ReadonlyMap<string, RoleVersion>;
  readonly quotas: ReadonlyMap<string, QuotaPolicy>;
}

/** The key of a role version in `PolicyItems.roles`. */
export const roleVersionKey = (id: string, version: number): string => `${id}@${version}`;

/**
 * The policy an issuance decision reads and `lanyard apply` writes: tools, role versions,
 * identities with their grants, and principals with the keys that authenticate them.
 */
export interface PolicyStore {
  // Tools
  putTool(tool: Tool): Promise<void>;
  getTool(id: string): Promise<Tool | undefined>;
  listTools(): Promise<Tool[]>;

  // Roles: versions are immutable.
  /** `created`, or `unchanged` when the same version exists with the same actions; a version that exists with other actions throws `conflict`. */
  publishRoleVersion(role: RoleVersion): Promise<'created' | 'unchanged'>;
  getRoleVersion(id: string, version: number): Promise<RoleVersion | undefined>;
  listRoleVersions(): Promise<RoleVersion[]>;

  // Identities and their grants share one partition, so one query reads both.
  putIdentity(identity: Identity): Promise<void>;
  getIdentity(id: string): Promise<Identity | undefined>;
  /** The identity and all its grants in one read. */
  getIdentityWithGrants(id: string): Promise<{ identity: Identity; grants: Grant[] } | undefined>;
  listIdentities(): Promise<Identity[]>;
  putGrant(grant: Grant): Promise<void>;
  deleteGrant(identity: string, grantId: string): Promise<void>;
  listGrants(identity: string): Promise<Grant[]>;

  // Principals (callers) and the keys that authenticate them.
  putPrincipal(principal: Principal): Promise<void>;
  getPrincipal(id: string): Promise<Principal | undefined>;
  listPrincipals(): Promise<Principal[]>;
  /** Binds a credential key (SHA-256 of a local API key, or an IAM ARN) to a principal, replacing the principal's previous key of that kind. */
  setPrincipalKey(principalId: string, keyKind: PrincipalKeyKind, keyValue: string): Promise<void>;
  /** The principal a key authenticates, in one read. */
  getPrincipalByKey(keyKind: PrincipalKeyKind, keyValue: string): Promise<Principal | undefined>;
  hasPrincipalKey(principalId: string, keyKind: PrincipalKeyKind): Promise<boolean>;

  /**
   * Tools, role versions and quota policies by key, in as few reads as the engine allows (on
   * DynamoDB one BatchGetItem per 100 keys, strongly consistent): what an issuance needs once
   * it knows the caller's grants. Each is what `getTool`, `getRoleVersion` and `getQuota` answer.
   */
  getPolicyItems(wanted: PolicyItemKeys): Promise<PolicyItems>;
}

export interface DecisionQuery {
  /** Exactly one dimension is queried. */
  readonly by: 'identity' | 'lane' | 'tenant' | 'task' | 'tool';
  readonly value: string;
  /** ISO instants, inclusive. */
  readonly from?: string;
  readonly to?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

/** The audit: every decision record, issued credentials among them, queried by one dimension over time. */
export interface DecisionStore {
  /** Writes many decision records at once (BatchWriteItem, unprocessed items resent). Resolves only when all are durable. */
  putDecisions(records: readonly DecisionRecord[]): Promise<void>;
  /** An issued credential's record by credential id. */
  getCredential(credentialId: string): Promise<DecisionRecord | undefined>;
  queryDecisions(query: DecisionQuery): Promise<Page<DecisionRecord>>;
}

/** Revocations: the ordered feed of cut-offs, and the standing issuance blocks beside it. */
export interface RevocationStore {
  /** Appends a revocation with the next feed sequence number; returns it as stored. */
  appendRevocation(revocation: Omit<Revocation, 'seq'>): Promise<Revocation>;
  /** Revocations with `seq` greater than `afterSeq`, in order. */
  listRevocations(afterSeq: number, limit: number): Promise<Revocation[]>;
  /** Drops revocation records whose `relevantUntil` is before `now` (the feed stays small). */
  pruneRevocations(now: string): Promise<number>;
  putBlock(block: IssuanceBlock): Promise<void>;
  /**
   * Lifts a standing block: one conditional update that marks the block item reinstated (so a
   * change stream sees who lifted it and why). Returns the block as it stood, or undefined
   * when there was no standing block.
   */
  reinstateBlock(targetKey: string, reinstatement: Reinstatement): Promise<IssuanceBlock | undefined>;
  /** Standing (not reinstated) blocks. */
  listBlocks(): Promise<IssuanceBlock[]>;
}

/** A refresh token as stored: never the token itself, only its SHA-256. */
export interface RefreshTokenRecord {
  /** Hex SHA-256 of the opaque token. */
  readonly hash: string;
  /** The instance identity the token authenticates as (`class/env#instance`). */
  readonly instance: string;
  /** The principal of record: the orchestrator that spawned the instance. */
  readonly principal: string;
  readonly createdAt: string;
  /** Never later than the instance's own expiry. */
  readonly expiresAt: string;
  readonly spentAt?: string;
  /** Hash of the token that replaced this one. */
  readonly replacedBy?: string;
  /** Set when a grace use of the predecessor spent this token unpresented (shared/spawn/refresh-tokens.ts): it has no grace of its own. */
  readonly supersededAt?: string;
}

export type RefreshTokenSpend =
  | { readonly status: 'spent-now'; readonly token: RefreshTokenRecord }
  | { readonly status: 'already-spent'; readonly token: RefreshTokenRecord }
  | { readonly status: 'unknown'; readonly token?: undefined };

/** Refresh tokens of agent instances (shared/spawn/refresh-tokens.ts): stored only as SHA-256 hashes, each spent once. */
export interface RefreshTokenStore {
  /** Stores a new, unspent refresh token; refuses (`conflict`) a hash that is already stored. */
  putRefreshToken(token: RefreshTokenRecord): Promise<void>;
  getRefreshToken(hash: string): Promise<RefreshTokenRecord | undefined>;
  /**
   * Spends a token in ONE conditional write (exists and not yet spent → `spentAt`,
   * `replacedBy`): of two concurrent spends exactly one is `spent-now`. `already-spent`
   * carries the token as it stood (a reuse); `unknown` has no token.
   */
  spendRefreshToken(hash: string, nextHash: string, at: string): Promise<RefreshTokenSpend>;
  /**
   * Spends a token that was never presented, in place of its predecessor's grace use: the
   * same ONE conditional write as `spendRefreshToken`, which also sets `supersededAt`. A spend
   * and a supersede of one token race like two spends: exactly one is `spent-now`.
   */
  supersedeRefreshToken(hash: string, nextHash: string, at: string): Promise<RefreshTokenSpend>;
}

/** One fixed window of a quota bucket: it starts at `startMs` and lasts `seconds`. */
export interface QuotaWindow {
  readonly startMs: number;
  readonly seconds: number;
}

export type QuotaTake = { readonly status: 'taken' | 'exhausted'; readonly usage: QuotaUsage };

/** Quotas of the broker: the limits of each bucket, and one counter per bucket and window (docs/domain.md#quotas). */
export interface QuotaStore {
  putQuota(policy: QuotaPolicy): Promise<void>;
  getQuota(bucket: string): Promise<QuotaPolicy | undefined>;
  listQuotas(): Promise<QuotaPolicy[]>;
  /**
   * Counts `count` (default 1) requests into the window of `bucket` that began at
   * `window.startMs`, in ONE conditional update: refused (`exhausted`, nothing counted) when
   * they would take the window past `limits.requests`, or it already holds `limits.units`
   * units. Counter items expire (TTL) a day after their window ends.
   */
  takeQuota(bucket: string, window: QuotaWindow, limits: { readonly requests?: number; readonly units?: number }, count?: number): Promise<QuotaTake>;
  /** Adds units read from an upstream answer to the window (unconditionally: the call already happened). */
  addQuotaUnits(bucket: string, window: QuotaWindow, units: number): Promise<void>;
  getQuotaUsage(bucket: string, window: QuotaWindow): Promise<QuotaUsage | undefined>;
}

/** Upstream secrets: the pointer to each provider's current version (the secret itself lives in the `SecretVault`). */
export interface SecretPointerStore {
  /**
   * Writes a provider's pointer. With `expectVersion`, only if the current pointer names that
   * version (`null`: only if there is none); otherwise `conflict`, so two rotations that raced
   * cannot both claim the same previous version.
   */
  putUpstreamSecretRef(ref: UpstreamSecretRef, options?: { readonly expectVersion?: string | null }): Promise<void>;
  getUpstreamSecretRef(provider: string): Promise<UpstreamSecretRef | undefined>;
  listUpstreamSecretRefs(): Promise<UpstreamSecretRef[]>;
}

/** The single-table store: every role port at once. */
export interface Store extends PolicyStore, DecisionStore, RevocationStore, RefreshTokenStore, QuotaStore, SecretPointerStore {}
