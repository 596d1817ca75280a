/**
 * Read-through view of the policy tables for the hot path. Issuing a credential needs the
 * caller, the identity with its grants, the tool, the role versions and the standing blocks;
 * read from the store on every request that is several round trips, so each is cached for
 * `ttlMs` (default 1 s). That TTL is the bound on how long a policy change made through
 * another issuer instance takes to apply here; changes made through this instance call
 * `invalidate()` and apply at once. Role versions are immutable and cached for longer.
 *
 * The broker (issue 6) reads a bucket's quota policy and a provider's secret pointer the same
 * way: a rotated secret is presented to new requests within `ttlMs` on every instance.
 */
import { TtlCache } from '../lib/cache.ts';
import type { Grant, Identity, IssuanceBlock, Principal, PrincipalKeyKind, QuotaPolicy, RoleVersion, Tool, UpstreamSecretRef } from '../domain/model.ts';
import { roleVersionKey, type Clock, type PolicyItemKeys, type PolicyStore, type QuotaStore, type RevocationStore, type SecretPointerStore } from '../ports/index.ts';

/** The reads the view caches, from four role ports of the store. */
export type PolicyViewStore = Pick<PolicyStore, 'getPrincipalByKey' | 'getIdentityWithGrants' | 'getTool' | 'getRoleVersion' | 'getPolicyItems'> &
  Pick<RevocationStore, 'listBlocks'> &
  Pick<QuotaStore, 'getQuota'> &
  Pick<SecretPointerStore, 'getUpstreamSecretRef'>;

export const DEFAULT_POLICY_TTL_MS = 1_000;

export class PolicyView {
  readonly store: PolicyViewStore;
  /** How long a cached read may be stale: the bound on a change made through another instance reaching this one. */
  readonly ttlMs: number;
  readonly #principals: TtlCache<string, Principal | undefined>;
  readonly #identities: TtlCache<string, { identity: Identity; grants: Grant[] } | undefined>;
  readonly #tools: TtlCache<string, Tool | undefined>;
  readonly #roles: TtlCache<string, RoleVersion | undefined>;
  readonly #blocks: TtlCache<'all', ReadonlyMap<string, IssuanceBlock>>;
  readonly #quotas: TtlCache<string, QuotaPolicy | undefined>;
  readonly #upstreamSecrets: TtlCache<string, UpstreamSecretRef | undefined>;

  constructor(options: { store: PolicyViewStore; clock: Clock; ttlMs?: number }) {
    const ttlMs = options.ttlMs ?? DEFAULT_POLICY_TTL_MS;
    const clock = options.clock;
    this.store = options.store;
    this.ttlMs = ttlMs;
    this.#principals = new TtlCache({ ttlMs, clock });
    this.#identities = new TtlCache({ ttlMs, clock });
    this.#tools = new TtlCache({ ttlMs, clock });
    this.#roles = new TtlCache({ ttlMs: Math.max(ttlMs, 60_000), clock });
    this.#blocks = new TtlCache({ ttlMs, clock });
    this.#quotas = new TtlCache({ ttlMs, clock });
    this.#upstreamSecrets = new TtlCache({ ttlMs, clock });
  }

  principalByKey(kind: PrincipalKeyKind, value: string): Promise<Principal | undefined> {
    return this.#principals.get(`${kind}#${value}`, () => this.store.getPrincipalByKey(kind, value));
  }

  identity(id: string): Promise<{ identity: Identity; grants: Grant[] } | undefined> {
    return this.#identities.get(id, () => this.store.getIdentityWithGrants(id));
  }

  tool(id: string): Promise<Tool | undefined> {
    return this.#tools.get(id, () => this.store.getTool(id));
  }

  role(id: string, version: number): Promise<RoleVersion | undefined> {
    return this.#roles.get(roleVersionKey(id, version), () => this.store.getRoleVersion(id, version));
  }

  /**
   * Reads in one store call (one BatchGetItem on DynamoDB) the tools, role versions and quota
   * policies that are not cached, and caches them, found or not, as `tool`, `role` and `quota`
   * would: an issuance asks for its tool and its grants' roles and buckets at once instead of
   * one read each. Nothing cached is read again.
   */
  async prefetch(wanted: PolicyItemKeys): Promise<void> {
    const tools = unique(wanted.tools ?? []).filter((id) => !this.#tools.has(id));
    const roles = uniqueBy(wanted.roles ?? [], (r) => roleVersionKey(r.id, r.version)).filter((r) => !this.#roles.has(roleVersionKey(r.id, r.version)));
    const quotas = unique(wanted.quotas ?? []).filter((bucket) => !this.#quotas.has(bucket));
    if (tools.length + roles.length + quotas.length === 0) return;
    const found = await this.store.getPolicyItems({ tools, roles, quotas });
    for (const id of tools) this.#tools.set(id, found.tools.get(id));
    for (const r of roles) this.#roles.set(roleVersionKey(r.id, r.version), found.roles.get(roleVersionKey(r.id, r.version)));
    for (const bucket of quotas) this.#quotas.set(bucket, found.quotas.get(bucket));
  }

  blocks(): Promise<ReadonlyMap<string, IssuanceBlock>> {
    return this.#blocks.get('all', async () => new Map((await this.store.listBlocks()).map((b) => [b.targetKey, b])));
  }

  /** A quota bucket's limits, or undefined for an unmetered bucket. */
  quota(bucket: string): Promise<QuotaPolicy | undefined> {
    return this.#quotas.get(bucket, () => this.store.getQuota(bucket));
  }

  /** The pointer to a provider's current secret version (never the secret). */
  upstreamSecret(provider: string): Promise<UpstreamSecretRef | undefined> {
    return this.#upstreamSecrets.get(provider, () => this.store.getUpstreamSecretRef(provider));
  }

  /** Forgets everything cached but the immutable role versions: called after this instance changes policy, blocks, quotas or secrets. */
  invalidate(): void {
    this.#principals.clear();
    this.#identities.clear();
    this.#tools.clear();
    this.#blocks.clear();
    this.#quotas.clear();
    this.#upstreamSecrets.clear();
  }
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function uniqueBy<T>(values: readonly T[], keyOf: (value: T) => string): T[] {
  return [...new Map(values.map((value) => [keyOf(value), value])).values()];
}
