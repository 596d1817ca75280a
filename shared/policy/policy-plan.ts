/**
 * The plan of a policy file: the document compared with the store, as the list of changes that
 * applying it makes. Computing it only reads; `applyPlan` (policy-apply.ts) writes it. A role
 * version that already exists with other actions is a `conflict`, found here, before anything
 * is written. Records are created or updated, never deleted by omission.
 */
import {
  BROKER_AUDIENCE,
  parseIdentityId,
  type Grant,
  type Identity,
  type Principal,
  type PrincipalKeyKind,
  type QuotaPolicy,
  type RoleVersion,
  type Tool,
  type UpstreamConfig,
} from '../domain/model.ts';
import { conflict } from '../domain/errors.ts';
import { hashApiKey, iamRoleKey } from '../domain/caller-keys.ts';
import type { PolicyStore, QuotaStore } from '../ports/index.ts';

/** What applying a policy reads and writes: the policy role port, and the quota limits of the broker's buckets. */
export type PolicyApplyStore = PolicyStore & Pick<QuotaStore, 'getQuota' | 'putQuota'>;
import type { PolicyDocument } from './policy-schema.ts';
import { checkReferences } from './policy-validation.ts';

/** Whether a record is new to the store or replaces one with other content. */
export type RecordChange = 'create' | 'update';

/** One change the apply makes. A key change carries the key's stored form (a hash), never a secret. */
export type PolicyChange =
  | { readonly type: 'tool'; readonly change: RecordChange; readonly record: Tool }
  | { readonly type: 'quota'; readonly change: RecordChange; readonly record: QuotaPolicy }
  | { readonly type: 'role'; readonly record: RoleVersion }
  | { readonly type: 'identity'; readonly change: RecordChange; readonly record: Identity }
  | { readonly type: 'grant'; readonly change: RecordChange; readonly record: Grant }
  | { readonly type: 'principal'; readonly change: RecordChange; readonly record: Principal; readonly previous?: Principal }
  | PrincipalKeyChange
  | { readonly type: 'generated-key'; readonly principal: string };

/** A caller key bound to a principal: an ARN, an IAM role (its account and name), or an API key's hash. */
export interface PrincipalKeyChange {
  readonly type: 'principal-key';
  readonly principal: string;
  readonly keyKind: PrincipalKeyKind;
  readonly keyValue: string;
  /** What the file wrote (the ARN or role ARN); absent for an API key, which is never repeated. */
  readonly shown?: string;
  /** The principal held a key of this kind before, which stops working. */
  readonly replaces?: string | true;
  /** Another principal held this key, and loses it. */
  readonly takenFrom?: string;
}

/** Who applies a policy: recorded on every grant it writes, so the change event names them. */
export interface ApplyActor {
  readonly actor: string;
  readonly reason: string;
  readonly requestId: string;
}

/** The changes applying `doc` makes to `store`, in the order they are written; empty when it already matches. */
export async function planChanges(store: PolicyApplyStore, doc: PolicyDocument, now: string, by?: ApplyActor): Promise<PolicyChange[]> {
  await checkReferences(store, doc);
  await checkRoleVersions(store, doc);
  const view = new PlannedStore(store);
  return [
    ...(await planTools(view, doc, now)),
    ...(await planQuotas(view, doc, now)),
    ...(await planRoles(view, doc, now)),
    ...(await planIdentities(view, doc, now)),
    ...(await planGrants(view, doc, now, by)),
    ...(await planPrincipals(view, doc, now)),
  ];
}

/**
 * The store as the plan has changed it so far. A record the file lists twice compares with its
 * first entry, and a key bound earlier in the plan is held, as when each change is written in
 * turn: the plan of a file is what applying it entry by entry does.
 */
class PlannedStore {
  readonly #store: PolicyApplyStore;
  readonly #records = new Map<string, unknown>();
  readonly #keyHolders = new Map<string, string>();
  readonly #keyKindsHeld = new Set<string>();

  constructor(store: PolicyApplyStore) {
    this.#store = store;
  }

  /** The record of this type and id: as planned, else as stored. */
  async record<T>(type: PolicyChange['type'], id: string, read: (store: PolicyApplyStore) => Promise<T | undefined>): Promise<T | undefined> {
    const key = `${type}\u0000${id}`;
    return this.#records.has(key) ? (this.#records.get(key) as T) : read(this.#store);
  }

  plan<T>(type: PolicyChange['type'], id: string, record: T): void {
    this.#records.set(`${type}\u0000${id}`, record);
  }

  /** Who holds the key: as bound by the plan, else as stored. */
  async keyHolder(keyKind: PrincipalKeyKind, keyValue: string): Promise<string | undefined> {
    return this.#keyHolders.get(`${keyKind}\u0000${keyValue}`) ?? (await this.#store.getPrincipalByKey(keyKind, keyValue))?.id;
  }

  async holdsKey(principal: string, keyKind: PrincipalKeyKind): Promise<boolean> {
    return this.#keyKindsHeld.has(`${principal}\u0000${keyKind}`) || this.#store.hasPrincipalKey(principal, keyKind);
  }

  bindKey(principal: string, keyKind: PrincipalKeyKind, keyValue: string): void {
    this.#keyHolders.set(`${keyKind}\u0000${keyValue}`, principal);
    this.#keyKindsHeld.add(`${principal}\u0000${keyKind}`);
  }
}

/** Roles first: a conflicting version aborts before anything else is written. */
async function checkRoleVersions(store: PolicyApplyStore, doc: PolicyDocument): Promise<void> {
  for (const [index, spec] of doc.roles.entries()) {
    const existing = await store.getRoleVersion(spec.id, spec.version);
    if (existing && !sameActions(existing.actions, spec.actions)) {
      throw conflict(`role ${spec.id}@${spec.version} already exists with other actions; publish a new version`, { field: `roles[${index}]` });
    }
  }
}

async function planTools(store: PlannedStore, doc: PolicyDocument, now: string): Promise<PolicyChange[]> {
  const changes: PolicyChange[] = [];
  for (const spec of doc.tools) {
    const tool: Tool = {
      id: spec.id,
      audience: spec.audience ?? BROKER_AUDIENCE,
      actions: spec.actions,
      enabled: spec.enabled,
      ...(spec.aws && { aws: spec.aws }),
      ...(spec.upstream && { upstream: upstreamOf(spec.upstream) }),
      updatedAt: now,
    };
    const change = recordChange(await store.record('tool', spec.id, (s) => s.getTool(spec.id)), tool);
    store.plan('tool', spec.id, tool);
    if (change) changes.push({ type: 'tool', change, record: tool });
  }
  return changes;
}

async function planQuotas(store: PlannedStore, doc: PolicyDocument, now: string): Promise<PolicyChange[]> {
  const changes: PolicyChange[] = [];
  for (const spec of doc.quotas ?? []) {
    const quota: QuotaPolicy = {
      bucket: spec.bucket,
      windowSeconds: spec.windowSeconds,
      ...(spec.requests !== undefined && { requests: spec.requests }),
      ...(spec.units !== undefined && { units: spec.units }),
      updatedAt: now,
    };
    const change = recordChange(await store.record('quota', spec.bucket, (s) => s.getQuota(spec.bucket)), quota);
    store.plan('quota', spec.bucket, quota);
    if (change) changes.push({ type: 'quota', change, record: quota });
  }
  return changes;
}

/** A version that exists is no change (its actions were checked to match): published versions never change. */
async function planRoles(store: PlannedStore, doc: PolicyDocument, now: string): Promise<PolicyChange[]> {
  const changes: PolicyChange[] = [];
  for (const spec of doc.roles) {
    const id = `${spec.id}@${spec.version}`;
    if (await store.record('role', id, (s) => s.getRoleVersion(spec.id, spec.version))) continue;
    const role: RoleVersion = { id: spec.id, version: spec.version, actions: spec.actions, approvedBy: spec.approvedBy, publishedAt: now };
    store.plan('role', id, role);
    changes.push({ type: 'role', record: role });
  }
  return changes;
}

async function planIdentities(store: PlannedStore, doc: PolicyDocument, now: string): Promise<PolicyChange[]> {
  const changes: PolicyChange[] = [];
  for (const spec of doc.identities) {
    const parts = parseIdentityId(spec.id)!;
    const existing = await store.record('identity', spec.id, (s) => s.getIdentity(spec.id));
    const identity: Identity = {
      id: spec.id,
      agentClass: parts.agentClass,
      environment: parts.environment,
      ...(parts.instance && { instance: parts.instance }),
      owner: spec.owner,
      purpose: spec.purpose,
      status: spec.status,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    const change = recordChange(existing, identity);
    store.plan('identity', spec.id, identity);
    if (change) changes.push({ type: 'identity', change, record: identity });
  }
  return changes;
}

async function planGrants(store: PlannedStore, doc: PolicyDocument, now: string, by: ApplyActor | undefined): Promise<PolicyChange[]> {
  const changes: PolicyChange[] = [];
  for (const spec of doc.grants) {
    const [role, version] = spec.role.split('@') as [string, string];
    const environment = spec.environment ?? parseIdentityId(spec.identity)!.environment;
    const grant: Grant = {
      id: spec.id ?? `${role}@${version}`,
      identity: spec.identity,
      role,
      roleVersion: Number(version),
      tenants: [...spec.tenants].sort(),
      environment,
      maxTtlSeconds: spec.maxTtlSeconds,
      kinds: [...spec.kinds].sort(),
      quotaBucket: spec.quotaBucket,
      ...(spec.budgetOwner && { budgetOwner: spec.budgetOwner }),
      status: 'active',
      updatedAt: now,
      ...(by && { changedBy: by.actor, changeReason: by.reason, requestId: by.requestId }),
    };
    const key = `${spec.identity}\u0000${grant.id}`;
    const change = recordChange(await store.record('grant', key, async (s) => (await s.listGrants(spec.identity)).find((g) => g.id === grant.id)), grant);
    store.plan('grant', key, grant);
    if (change) changes.push({ type: 'grant', change, record: grant });
  }
  return changes;
}

async function planPrincipals(store: PlannedStore, doc: PolicyDocument, now: string): Promise<PolicyChange[]> {
  const changes: PolicyChange[] = [];
  for (const spec of doc.principals) {
    const principal: Principal = {
      id: spec.id,
      kind: spec.kind,
      ...(spec.identity && { identity: spec.identity }),
      ...(spec.spawns && { spawns: [...spec.spawns].sort() }),
      ...(spec.arn && { arn: spec.arn }),
      ...(spec.iamRole && { iamRole: spec.iamRole }),
      ...(spec.instancePerSession && { instancePerSession: true as const }),
      updatedAt: now,
    };
    const previous = await store.record('principal', spec.id, (s) => s.getPrincipal(spec.id));
    const change = recordChange(previous, principal);
    store.plan('principal', spec.id, principal);
    if (change) changes.push({ type: 'principal', change, record: principal, ...(previous && { previous }) });
    changes.push(...(await planPrincipalKeys(store, spec, previous)));
  }
  return changes;
}

/** The caller keys of one principal: its ARN, its IAM role, and its API key (given, or generated when it has none). */
async function planPrincipalKeys(store: PlannedStore, spec: PolicyDocument['principals'][number], previous: Principal | undefined): Promise<PolicyChange[]> {
  const changes: PolicyChange[] = [];
  const bind = async (keyKind: PrincipalKeyKind, keyValue: string, shown: string | undefined, replaces: string | true | undefined) => {
    const holder = await store.keyHolder(keyKind, keyValue);
    if (holder === spec.id) return;
    store.bindKey(spec.id, keyKind, keyValue);
    changes.push({
      type: 'principal-key',
      principal: spec.id,
      keyKind,
      keyValue,
      ...(shown !== undefined && { shown }),
      ...(replaces !== undefined && { replaces }),
      ...(holder !== undefined && { takenFrom: holder }),
    });
  };
  if (spec.arn) await bind('arn', spec.arn, spec.arn, previous?.arn !== undefined && previous.arn !== spec.arn ? previous.arn : undefined);
  if (spec.iamRole) {
    await bind('iamRole', iamRoleKey(spec.iamRole)!, spec.iamRole, previous?.iamRole !== undefined && previous.iamRole !== spec.iamRole ? previous.iamRole : undefined);
  }
  if (spec.apiKey) {
    await bind('apiKey', hashApiKey(spec.apiKey), undefined, (await store.holdsKey(spec.id, 'apiKey')) || undefined);
  } else if (!spec.arn && !spec.iamRole && !(await store.holdsKey(spec.id, 'apiKey'))) {
    store.bindKey(spec.id, 'apiKey', `generated:${spec.id}`);
    changes.push({ type: 'generated-key', principal: spec.id });
  }
  return changes;
}

/** The upstream as stored: only the fields the document gives, so an unchanged declaration compares equal. */
function upstreamOf(spec: NonNullable<PolicyDocument['tools'][number]['upstream']>): UpstreamConfig {
  return {
    baseUrl: spec.baseUrl,
    key: spec.key,
    routes: spec.routes,
    ...(spec.units && { units: spec.units }),
    // Sorted: the order of a set of names is no change.
    ...(spec.forwardHeaders && { forwardHeaders: [...new Set(spec.forwardHeaders.map((h) => h.toLowerCase()))].sort() }),
    ...(spec.timeoutMs !== undefined && { timeoutMs: spec.timeoutMs }),
    ...(spec.maxRequestBytes !== undefined && { maxRequestBytes: spec.maxRequestBytes }),
    ...(spec.maxResponseBytes !== undefined && { maxResponseBytes: spec.maxResponseBytes }),
    ...(spec.allowPathParameters !== undefined && { allowPathParameters: spec.allowPathParameters }),
  };
}

/** `create` for a record the store lacks, `update` for one whose content differs, nothing when it matches. */
function recordChange<T extends object>(existing: T | undefined, next: T): RecordChange | undefined {
  if (!existing) return 'create';
  return same(withoutTime(existing), withoutTime(next)) ? undefined : 'update';
}

function sameActions(a: readonly string[], b: readonly string[]): boolean {
  return same([...a].sort(), [...b].sort());
}

/** The content of a record, without when and by whom it was last written. */
function withoutTime<T extends object>(value: T): Partial<T> {
  const { updatedAt: _u, createdAt: _c, publishedAt: _p, changedBy: _b, changeReason: _r, requestId: _q, approvedBy: _a, ...rest } = value as T & Record<string, unknown>;
  return rest as Partial<T>;
}

/** Structural equality of plain JSON data, independent of key order. */
function same(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
