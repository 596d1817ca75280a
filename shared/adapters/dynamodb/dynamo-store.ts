/**
 * The `Store` port on one DynamoDB table (docs/architecture.md), on AWS and on the embedded engines alike.
 * The layout is documented in `table.ts` and its keys are built in `keys.ts`; each role port has
 * its own module (`policy-store.ts`, `decision-store.ts`, `revocation-store.ts`,
 * `refresh-token-store.ts`, `quota-store.ts`, `secret-pointer-store.ts`) over the shared item
 * access of `items.ts`, and this class composes them. Every write is a single-item
 * (conditional) write or a batch of independent writes: no transactions, which dynalite lacks.
 *
 * Foreign failures propagate as they are (the core wraps them with `failClosed`); the store's
 * own refusals are `LanyardError`s: `conflict` for a role version published twice with other
 * actions or a key changed concurrently, `invalid_request` for a bad query or cursor.
 *
 * Reads of the table are strongly consistent. Listings of tools, roles, identities and
 * principals and decision queries read global secondary indexes, which DynamoDB keeps
 * eventually consistent (typically well under a second behind a write).
 *
 * @example
 * ```ts
 * const store = new DynamoStore({ client: new DynamoDBClient({}), tableName: 'lanyard' });
 * await store.putTool(tool);
 * const page = await store.queryDecisions({ by: 'identity', value: 'support-triage/prod', limit: 50 });
 * ```
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
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
} from '../../domain/model.ts';
import type { DecisionQuery, Page, PolicyItemKeys, PolicyItems, QuotaTake, QuotaWindow, RefreshTokenRecord, RefreshTokenSpend, Store } from '../../ports/index.ts';
import { DynamoDecisionStore } from './decision-store.ts';
import { TableItems } from './items.ts';
import { DynamoPolicyStore } from './policy-store.ts';
import { DynamoQuotaStore } from './quota-store.ts';
import { DynamoRefreshTokenStore } from './refresh-token-store.ts';
import { DynamoRevocationStore } from './revocation-store.ts';
import { DynamoSecretPointerStore } from './secret-pointer-store.ts';
import { DEFAULT_TABLE_NAME } from './table.ts';

export interface DynamoStoreOptions {
  /** A plain client is wrapped in a document client; a document client is used as given. */
  readonly client: DynamoDBDocumentClient | DynamoDBClient;
  /** @default 'lanyard' */
  readonly tableName?: string;
  /** How long decision records are kept before DynamoDB TTL may delete them. @default 400 */
  readonly decisionRetentionDays?: number;
  /** Attempts of a BatchWriteItem chunk while items come back unprocessed. @default 8 */
  readonly maxBatchAttempts?: number;
}

/**
 * Every role port on one table. The methods delegate, one line each, so the class reads as the
 * port list; they live on the prototype, where a caller wrapping the store finds them.
 */
export class DynamoStore implements Store {
  readonly #policy: DynamoPolicyStore;
  readonly #decisions: DynamoDecisionStore;
  readonly #revocations: DynamoRevocationStore;
  readonly #refreshTokens: DynamoRefreshTokenStore;
  readonly #quotas: DynamoQuotaStore;
  readonly #secretPointers: DynamoSecretPointerStore;

  constructor(options: DynamoStoreOptions) {
    const retentionDays = options.decisionRetentionDays ?? 400;
    if (!(retentionDays > 0)) throw new RangeError('decisionRetentionDays must be positive');
    const maxBatchAttempts = options.maxBatchAttempts ?? 8;
    if (!Number.isInteger(maxBatchAttempts) || maxBatchAttempts < 1) throw new RangeError('maxBatchAttempts must be a positive integer');
    const doc =
      options.client instanceof DynamoDBDocumentClient
        ? options.client
        : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });
    const items = new TableItems({ doc, table: options.tableName ?? DEFAULT_TABLE_NAME, maxBatchAttempts });
    this.#policy = new DynamoPolicyStore(items);
    this.#decisions = new DynamoDecisionStore(items, Math.round(retentionDays * 86_400));
    this.#revocations = new DynamoRevocationStore(items);
    this.#refreshTokens = new DynamoRefreshTokenStore(items);
    this.#quotas = new DynamoQuotaStore(items);
    this.#secretPointers = new DynamoSecretPointerStore(items);
  }

  // PolicyStore

  putTool(tool: Tool): Promise<void> {
    return this.#policy.putTool(tool);
  }
  getTool(id: string): Promise<Tool | undefined> {
    return this.#policy.getTool(id);
  }
  listTools(): Promise<Tool[]> {
    return this.#policy.listTools();
  }
  publishRoleVersion(role: RoleVersion): Promise<'created' | 'unchanged'> {
    return this.#policy.publishRoleVersion(role);
  }
  getRoleVersion(id: string, version: number): Promise<RoleVersion | undefined> {
    return this.#policy.getRoleVersion(id, version);
  }

  getPolicyItems(wanted: PolicyItemKeys): Promise<PolicyItems> {
    return this.#policy.getPolicyItems(wanted);
  }
  listRoleVersions(): Promise<RoleVersion[]> {
    return this.#policy.listRoleVersions();
  }
  putIdentity(identity: Identity): Promise<void> {
    return this.#policy.putIdentity(identity);
  }
  getIdentity(id: string): Promise<Identity | undefined> {
    return this.#policy.getIdentity(id);
  }
  getIdentityWithGrants(id: string): Promise<{ identity: Identity; grants: Grant[] } | undefined> {
    return this.#policy.getIdentityWithGrants(id);
  }
  listIdentities(): Promise<Identity[]> {
    return this.#policy.listIdentities();
  }
  putGrant(grant: Grant): Promise<void> {
    return this.#policy.putGrant(grant);
  }
  deleteGrant(identity: string, grantId: string): Promise<void> {
    return this.#policy.deleteGrant(identity, grantId);
  }
  listGrants(identity: string): Promise<Grant[]> {
    return this.#policy.listGrants(identity);
  }
  putPrincipal(principal: Principal): Promise<void> {
    return this.#policy.putPrincipal(principal);
  }
  getPrincipal(id: string): Promise<Principal | undefined> {
    return this.#policy.getPrincipal(id);
  }
  listPrincipals(): Promise<Principal[]> {
    return this.#policy.listPrincipals();
  }
  setPrincipalKey(principalId: string, keyKind: PrincipalKeyKind, keyValue: string): Promise<void> {
    return this.#policy.setPrincipalKey(principalId, keyKind, keyValue);
  }
  getPrincipalByKey(keyKind: PrincipalKeyKind, keyValue: string): Promise<Principal | undefined> {
    return this.#policy.getPrincipalByKey(keyKind, keyValue);
  }
  hasPrincipalKey(principalId: string, keyKind: PrincipalKeyKind): Promise<boolean> {
    return this.#policy.hasPrincipalKey(principalId, keyKind);
  }

  // DecisionStore

  putDecisions(records: readonly DecisionRecord[]): Promise<void> {
    return this.#decisions.putDecisions(records);
  }
  getCredential(credentialId: string): Promise<DecisionRecord | undefined> {
    return this.#decisions.getCredential(credentialId);
  }
  queryDecisions(query: DecisionQuery): Promise<Page<DecisionRecord>> {
    return this.#decisions.queryDecisions(query);
  }

  // RevocationStore

  appendRevocation(revocation: Omit<Revocation, 'seq'>): Promise<Revocation> {
    return this.#revocations.appendRevocation(revocation);
  }
  listRevocations(afterSeq: number, limit: number): Promise<Revocation[]> {
    return this.#revocations.listRevocations(afterSeq, limit);
  }
  pruneRevocations(now: string): Promise<number> {
    return this.#revocations.pruneRevocations(now);
  }
  putBlock(block: IssuanceBlock): Promise<void> {
    return this.#revocations.putBlock(block);
  }
  reinstateBlock(targetKey: string, reinstatement: Reinstatement): Promise<IssuanceBlock | undefined> {
    return this.#revocations.reinstateBlock(targetKey, reinstatement);
  }
  listBlocks(): Promise<IssuanceBlock[]> {
    return this.#revocations.listBlocks();
  }

  // RefreshTokenStore

  putRefreshToken(token: RefreshTokenRecord): Promise<void> {
    return this.#refreshTokens.putRefreshToken(token);
  }
  getRefreshToken(hash: string): Promise<RefreshTokenRecord | undefined> {
    return this.#refreshTokens.getRefreshToken(hash);
  }
  spendRefreshToken(hash: string, nextHash: string, at: string): Promise<RefreshTokenSpend> {
    return this.#refreshTokens.spendRefreshToken(hash, nextHash, at);
  }
  supersedeRefreshToken(hash: string, nextHash: string, at: string): Promise<RefreshTokenSpend> {
    return this.#refreshTokens.supersedeRefreshToken(hash, nextHash, at);
  }

  // QuotaStore

  putQuota(policy: QuotaPolicy): Promise<void> {
    return this.#quotas.putQuota(policy);
  }
  getQuota(bucket: string): Promise<QuotaPolicy | undefined> {
    return this.#quotas.getQuota(bucket);
  }
  listQuotas(): Promise<QuotaPolicy[]> {
    return this.#quotas.listQuotas();
  }
  takeQuota(bucket: string, window: QuotaWindow, limits: { readonly requests?: number; readonly units?: number }, count?: number): Promise<QuotaTake> {
    return this.#quotas.takeQuota(bucket, window, limits, count);
  }
  addQuotaUnits(bucket: string, window: QuotaWindow, units: number): Promise<void> {
    return this.#quotas.addQuotaUnits(bucket, window, units);
  }
  getQuotaUsage(bucket: string, window: QuotaWindow): Promise<QuotaUsage | undefined> {
    return this.#quotas.getQuotaUsage(bucket, window);
  }

  // SecretPointerStore

  putUpstreamSecretRef(ref: UpstreamSecretRef, options?: { readonly expectVersion?: string | null }): Promise<void> {
    return this.#secretPointers.putUpstreamSecretRef(ref, options);
  }
  getUpstreamSecretRef(provider: string): Promise<UpstreamSecretRef | undefined> {
    return this.#secretPointers.getUpstreamSecretRef(provider);
  }
  listUpstreamSecretRefs(): Promise<UpstreamSecretRef[]> {
    return this.#secretPointers.listUpstreamSecretRefs();
  }
}
