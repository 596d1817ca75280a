/**
 * The domain of docs/domain.md: identities, tools, roles, grants, lanes, credentials,
 * revocations. Plain data only: no I/O and no AWS types, so every adapter and the core
 * agree on one shape.
 */

export const ACCESS_LEVELS = ['read', 'write', 'admin'] as const;
export type AccessLevel = (typeof ACCESS_LEVELS)[number];

export const CREDENTIAL_KINDS = ['jwt', 'sts'] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

/**
 * The longest `sts` credential. The issuer runs with role credentials (its Lambda execution
 * role), so its AssumeRole into a tool role is role chaining, and STS refuses a
 * `DurationSeconds` above one hour for that (STS API reference, AssumeRole, DurationSeconds).
 * JWTs are not bound by it: a `jwt`-only grant may still allow up to 12 h.
 */
export const STS_MAX_TTL_SECONDS = 3_600;

export const PRINCIPAL_KINDS = ['agent', 'orchestrator', 'verifier', 'admin'] as const;
export type PrincipalKind = (typeof PRINCIPAL_KINDS)[number];

/**
 * How a caller is looked up: the SHA-256 of a local API key, an exact IAM ARN, or an IAM role
 * binding (`<partition>:<account>:<role name>`, the key an assumed-role caller of the role maps to).
 */
export type PrincipalKeyKind = 'apiKey' | 'arn' | 'iamRole';

export type IdentityStatus = 'active' | 'suspended';

/** Every tenant; a grant for `*` covers any tenant, a lane for `*` is a tenant-less lane. */
export const ALL_TENANTS = '*';

// Identifiers never contain `:` (the lane separator) and never need escaping in a key.
export const TOOL_ID = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const VERB = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const ROLE_ID = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const TENANT_ID = /^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,62})$/;
export const ENVIRONMENT_ID = /^[a-z0-9][a-z0-9_.-]{0,30}$/;
/** `agent-class/environment`, optionally `#instance`. */
export const IDENTITY_ID = /^([a-z0-9][a-z0-9_.-]{0,62})\/([a-z0-9][a-z0-9_.-]{0,30})(?:#([A-Za-z0-9_.-]{1,64}))?$/;
export const PRINCIPAL_ID = /^[A-Za-z0-9][A-Za-z0-9_.@+=,-]{0,127}$/;

export interface Tool {
  readonly id: string;
  /** JWT `aud` of credentials for this tool. */
  readonly audience: string;
  /** verb → access level, e.g. `{ read: 'read', reply: 'write', purge: 'admin' }`. */
  readonly actions: Readonly<Record<string, AccessLevel>>;
  readonly enabled: boolean;
  /** For the `sts` kind: the IAM role assumed, and each verb's IAM permissions. */
  readonly aws?: {
    readonly roleArn: string;
    readonly permissions: Readonly<Record<string, readonly string[]>>;
    readonly resources?: readonly string[];
  };
  /** For a third-party API behind the broker: where it is and how its key is presented. */
  readonly upstream?: UpstreamConfig;
  readonly updatedAt: string;
}

/** How the broker presents the upstream's key: a header (with an optional scheme) or a query parameter. */
export type UpstreamKeyPresentation =
  | { readonly header: string; readonly scheme?: string }
  | { readonly query: string };

/** One request shape an action covers: a method and a path pattern (`*` matches any run of characters). */
export interface UpstreamRoute {
  readonly method: string;
  readonly path: string;
}

/** How the broker reads usage units (tokens, cents…) from an upstream answer. */
export interface UpstreamUnits {
  /** What a unit is, for people: `tokens`, `cents`. */
  readonly name: string;
  /** A response header holding a non-negative number. */
  readonly header?: string;
  /** A dot path into a JSON response body (`usage.total_tokens`). */
  readonly json?: string;
}

/**
 * A third-party API behind the broker (issue 6). The agent never holds its key: the broker
 * injects it. Each action of the tool maps to the requests it covers.
 */
export interface UpstreamConfig {
  /** `https://api.stripe.com` (http only for loopback). Requests never leave this origin and path prefix. */
  readonly baseUrl: string;
  readonly key: UpstreamKeyPresentation;
  /** verb → the requests that action covers, e.g. `charges.read` → `[{ method: 'GET', path: '/v1/charges*' }]`. */
  readonly routes: Readonly<Record<string, readonly UpstreamRoute[]>>;
  readonly units?: UpstreamUnits;
  /** Request headers an agent may set besides the defaults (e.g. `stripe-version`), lower case. */
  readonly forwardHeaders?: readonly string[];
  /** @default 30_000 */
  readonly timeoutMs?: number;
  /** @default 1 MiB */
  readonly maxRequestBytes?: number;
  /** @default 10 MiB */
  readonly maxResponseBytes?: number;
  /** Whether request paths may carry `;` (path parameters, RFC 3986 §3.3, e.g. `;v=2`). @default false */
  readonly allowPathParameters?: boolean;
}

/** A quota bucket's limits per window, shared by every grant that names the bucket. */
export interface QuotaPolicy {
  readonly bucket: string;
  readonly windowSeconds: number;
  /** Broker requests per window; absent means not metered by count. */
  readonly requests?: number;
  /** Units per window (as the provider's `units` config reads them); absent means not metered by units. */
  readonly units?: number;
  readonly updatedAt: string;
}

/** What one window of a bucket has used so far. */
export interface QuotaUsage {
  readonly bucket: string;
  /** ISO instant the window began; it resets at `windowStart + windowSeconds`. */
  readonly windowStart: string;
  readonly windowSeconds: number;
  readonly requests: number;
  readonly units: number;
}

/**
 * The pointer to a provider's current secret version. The secret itself lives only in the
 * vault (Secrets Manager, or the encrypted local file); this record carries version ids, never
 * the secret. Writing it is what rotates the key for the broker, and its change is the
 * `Upstream Secret Rotated` event.
 */
export interface UpstreamSecretRef {
  readonly provider: string;
  readonly version: string;
  readonly previousVersion?: string;
  readonly rotatedAt: string;
  /** Until this instant requests that began before the rotation may still present the previous version. */
  readonly overlapUntil?: string;
  readonly actor: string;
  readonly reason: string;
  readonly requestId: string;
}

/** What the audit keeps of one proxied call: never the key, never the bodies. */
export interface ProxyCallSummary {
  readonly method: string;
  /** The declared pattern the path matched (`/v1/charges*`), not the raw path. */
  readonly pathPattern?: string;
  /** The `tool:verb` action the request was admitted under. */
  readonly action?: string;
  /** The upstream's status, when it answered. */
  readonly status?: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly units?: number;
  readonly durationMs: number;
  /** Which secret version was presented (a version id, never the secret). */
  readonly secretVersion?: string;
}

/** One immutable version of a role: a list of `tool:verb` actions. */
export interface RoleVersion {
  readonly id: string;
  readonly version: number;
  readonly actions: readonly string[];
  /** Who approved publishing this version (docs/domain.md#roles: promotion must name an approver). */
  readonly approvedBy: string;
  readonly publishedAt: string;
}

export interface Identity {
  /** `support-triage/prod` or `support-triage/prod#<instance>`. */
  readonly id: string;
  readonly agentClass: string;
  readonly environment: string;
  readonly instance?: string;
  readonly owner: string;
  readonly purpose: string;
  readonly status: IdentityStatus;
  /** Instances expire on their own at their maximum lifetime. */
  readonly expiresAt?: string;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface Grant {
  /** Stable id within the identity: `<role>@<version>` unless the policy names one. */
  readonly id: string;
  readonly identity: string;
  readonly role: string;
  readonly roleVersion: number;
  /** Tenant ids, or `['*']` for every tenant. */
  readonly tenants: readonly string[];
  readonly environment: string;
  readonly maxTtlSeconds: number;
  readonly kinds: readonly CredentialKind[];
  readonly quotaBucket: string;
  readonly budgetOwner?: string;
  readonly status: 'active' | 'demoted';
  readonly updatedAt: string;
  /** Who made the latest change, why, and who approved it when it widened the grant. */
  readonly changedBy?: string;
  readonly changeReason?: string;
  readonly approvedBy?: string;
  readonly requestId?: string;
}

export interface Principal {
  readonly id: string;
  readonly kind: PrincipalKind;
  /** For agents: the identity this principal acts as. */
  readonly identity?: string;
  /** For orchestrators: the agent classes (`class/env`) it may spawn instances of. */
  readonly spawns?: readonly string[];
  /** On AWS: the IAM principal ARN that authenticates as this principal. */
  readonly arn?: string;
  /** On AWS: the IAM role whose assumed-role sessions (ECS task, EKS pod, Lambda, EC2) authenticate as this principal. */
  readonly iamRole?: string;
  /**
   * With `iamRole`: each session acts as its own instance `class/env#<session name>` (an ECS
   * task, an EKS pod, an EC2 instance), with its class's grants and its own lanes (docs/deploy.md).
   */
  readonly instancePerSession?: true;
  readonly updatedAt: string;
}

/** Identity × tool × access level × tenant (or `*`): the unit of authority and revocation. */
export interface Lane {
  readonly identity: string;
  readonly tool: string;
  readonly level: AccessLevel;
  readonly tenant: string;
}

export function laneId(lane: Lane): string {
  return `${lane.identity}:${lane.tool}:${lane.level}:${lane.tenant}`;
}

export function parseLaneId(id: string): Lane | undefined {
  const parts = id.split(':');
  if (parts.length !== 4) return undefined;
  const [identity, tool, level, tenant] = parts as [string, string, string, string];
  if (!IDENTITY_ID.test(identity) || !TOOL_ID.test(tool) || !TENANT_ID.test(tenant)) return undefined;
  if (!(ACCESS_LEVELS as readonly string[]).includes(level)) return undefined;
  return { identity, tool, level: level as AccessLevel, tenant };
}

export interface ParsedIdentityId {
  readonly agentClass: string;
  readonly environment: string;
  readonly instance?: string;
}

export function parseIdentityId(id: string): ParsedIdentityId | undefined {
  const m = IDENTITY_ID.exec(id);
  if (!m) return undefined;
  return m[3] === undefined
    ? { agentClass: m[1]!, environment: m[2]! }
    : { agentClass: m[1]!, environment: m[2]!, instance: m[3] };
}

/** The agent class an identity belongs to: `support-triage/prod#abc` → `support-triage/prod`. */
export function classOf(identityId: string): string {
  const hash = identityId.indexOf('#');
  return hash === -1 ? identityId : identityId.slice(0, hash);
}

export interface TaskContext {
  readonly id: string;
  readonly purpose?: string;
}

/** Issuance decisions, and the admin decisions audited beside them (docs/domain.md#audit). */
export type DecisionOutcome = 'issued' | 'denied' | 'revoked' | 'reinstated' | 'grant_changed' | 'key_rotated' | 'proxied' | 'secret_rotated';

/**
 * One record per issuance decision (docs/domain.md#audit). An `issued` record is also the credential
 * record: introspection, revocation by id and "what could X do at T" read it.
 */
export interface DecisionRecord {
  /** The credential id for an issued credential, else `deny_<requestId>`. */
  readonly id: string;
  readonly requestId: string;
  readonly at: string;
  readonly decision: DecisionOutcome;
  /** `granted`, or the error code of the refusal. */
  readonly reason: string;
  readonly message?: string;
  readonly principal?: string;
  readonly identity?: string;
  readonly instance?: string;
  readonly tool?: string;
  readonly tenant?: string;
  readonly lane?: string;
  readonly level?: AccessLevel;
  readonly kind?: CredentialKind;
  readonly actionsRequested: readonly string[];
  readonly actionsGranted: readonly string[];
  readonly task?: TaskContext;
  /** RFC 8693 `act`: the user the agent acts for. */
  readonly onBehalfOf?: string;
  readonly credentialId?: string;
  readonly audience?: string;
  readonly issuedAt?: string;
  readonly expiresAt?: string;
  readonly role?: string;
  readonly grant?: string;
  readonly quotaBucket?: string;
  readonly budgetOwner?: string;
  readonly kid?: string;
  /** Admin decisions: who acted, on what, and the cut-off a revocation set. */
  readonly actor?: string;
  readonly target?: RevocationTarget;
  readonly targetKey?: string;
  readonly cutoff?: string;
  readonly revocationId?: string;
  /** `grant_changed`: the grant as it stands after the change (`status: 'removed'` when deleted). */
  readonly grantSnapshot?: Grant;
  /** Broker calls (`proxied`, or `denied` at the broker): what was forwarded and what came back. */
  readonly proxy?: ProxyCallSummary;
  /** `secret_rotated`: the new secret version id of the provider (`tool`). */
  readonly secretVersion?: string;
}

/** What a revocation cuts off. Exactly one key (a tool may be scoped to one identity). */
export type RevocationTarget =
  | { readonly credential: string }
  | { readonly lane: string }
  | { readonly identity: string }
  | { readonly tenant: string }
  | { readonly tool: string; readonly identity?: string }
  | { readonly key: string };

export type RevocationTargetType = 'credential' | 'lane' | 'identity' | 'tenant' | 'tool' | 'key';

export interface Revocation {
  readonly id: string;
  /** Monotonic position in the revocation feed (the cursor orders by it). */
  readonly seq: number;
  readonly target: RevocationTarget;
  readonly targetType: RevocationTargetType;
  /** Canonical key of the target: `lane:<lane id>`, `tool:<tool>`, `tool:<tool>@<identity>`, … */
  readonly targetKey: string;
  /** Every credential of the target issued at or before this instant is dead. */
  readonly cutoff: string;
  /** After this instant no credential the cut-off covers can still be alive. */
  readonly relevantUntil: string;
  readonly actor: string;
  readonly reason: string;
  readonly requestId: string;
}

export function revocationTargetKey(target: RevocationTarget): { type: RevocationTargetType; key: string } {
  if ('credential' in target) return { type: 'credential', key: `credential:${target.credential}` };
  if ('lane' in target) return { type: 'lane', key: `lane:${target.lane}` };
  if ('tenant' in target) return { type: 'tenant', key: `tenant:${target.tenant}` };
  if ('key' in target) return { type: 'key', key: `key:${target.key}` };
  if ('tool' in target) {
    return target.identity === undefined
      ? { type: 'tool', key: `tool:${target.tool}` }
      : { type: 'tool', key: `tool:${target.tool}@${target.identity}` };
  }
  return { type: 'identity', key: `identity:${target.identity}` };
}

/** A standing block on new issuance for a lane, identity, tenant or tool, until reinstated. */
export interface IssuanceBlock {
  readonly targetKey: string;
  readonly targetType: Exclude<RevocationTargetType, 'credential' | 'key'>;
  readonly revocationId: string;
  readonly since: string;
  readonly actor: string;
  readonly reason: string;
  readonly requestId?: string;
}

/** What reinstating a target records on its block (the block item stays, marked, so the change streams out). */
export interface Reinstatement {
  readonly at: string;
  readonly actor: string;
  readonly reason: string;
  readonly requestId: string;
}

/** The default `aud` of credentials for a tool behind the broker (a policy may name another). */
export const BROKER_AUDIENCE = 'urn:lanyard:broker';
