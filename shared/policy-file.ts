/**
 * The policy file of DESIGN §8 and its idempotent apply. Applying twice changes nothing the
 * second time; every change is reported; a role version that already exists with other
 * actions is a `conflict`, checked before anything is written. Grants and principals are
 * added or updated, never deleted by omission: removal is an explicit admin command.
 */
import { z } from 'zod';
import {
  ACCESS_LEVELS,
  CREDENTIAL_KINDS,
  ENVIRONMENT_ID,
  IDENTITY_ID,
  PRINCIPAL_ID,
  PRINCIPAL_KINDS,
  ROLE_ID,
  TENANT_ID,
  TOOL_ID,
  VERB,
  parseIdentityId,
  type Grant,
  type Identity,
  type Principal,
  type RoleVersion,
  type Tool,
} from './domain.ts';
import { conflict, invalidRequest } from './errors.ts';
import { hashApiKey, isApiKey, newApiKey } from './authenticate.ts';
import type { Store } from './ports.ts';
import { parseWith } from './schemas.ts';

const ToolSpec = z
  .object({
    id: z.string().regex(TOOL_ID),
    audience: z.string().url().max(512),
    actions: z.record(z.string().regex(VERB), z.enum(ACCESS_LEVELS)).refine((a) => Object.keys(a).length > 0, 'a tool needs at least one action'),
    enabled: z.boolean().default(true),
    aws: z
      .object({
        roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/),
        permissions: z.record(z.string().regex(VERB), z.array(z.string().regex(/^[a-z0-9-]+:[A-Za-z0-9*]+$/)).min(1)),
        resources: z.array(z.string().min(1)).min(1).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const RoleSpec = z
  .object({
    id: z.string().regex(ROLE_ID),
    version: z.number().int().min(1),
    actions: z.array(z.string().regex(/^[a-z0-9][a-z0-9_.-]*:[a-z0-9][a-z0-9_.-]*$/)).min(1).max(256),
    approvedBy: z.string().min(1).max(256),
  })
  .strict();

const IdentitySpec = z
  .object({
    id: z.string().regex(IDENTITY_ID),
    environment: z.string().regex(ENVIRONMENT_ID).optional(),
    owner: z.string().min(1).max(256),
    purpose: z.string().min(1).max(1024),
    status: z.enum(['active', 'suspended']).default('active'),
  })
  .strict();

const GrantSpec = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_.@-]{1,128}$/).optional(),
    identity: z.string().regex(IDENTITY_ID),
    role: z.string().regex(/^[a-z0-9][a-z0-9_.-]*@\d+$/, 'role@version, e.g. support-triage@1'),
    tenants: z.array(z.string().regex(TENANT_ID)).min(1).max(1000),
    environment: z.string().regex(ENVIRONMENT_ID).optional(),
    maxTtlSeconds: z.number().int().min(30).max(43_200).default(900),
    kinds: z.array(z.enum(CREDENTIAL_KINDS)).min(1).default(['jwt']),
    quotaBucket: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/),
    budgetOwner: z.string().min(1).max(256).optional(),
  })
  .strict();

const PrincipalSpec = z
  .object({
    id: z.string().regex(PRINCIPAL_ID),
    kind: z.enum(PRINCIPAL_KINDS),
    identity: z.string().regex(IDENTITY_ID).optional(),
    spawns: z.array(z.string().regex(IDENTITY_ID)).optional(),
    apiKey: z.string().refine(isApiKey, 'an API key: lk_ followed by 16 to 128 URL-safe characters').optional(),
    arn: z.string().regex(/^arn:aws[a-z-]*:(iam|sts)::\d{12}:[\w+=,.@/-]+$/).optional(),
  })
  .strict();

export const PolicyDocumentSchema = z
  .object({
    tools: z.array(ToolSpec).default([]),
    roles: z.array(RoleSpec).default([]),
    identities: z.array(IdentitySpec).default([]),
    grants: z.array(GrantSpec).default([]),
    principals: z.array(PrincipalSpec).default([]),
  })
  .strict();

export type PolicyDocument = z.infer<typeof PolicyDocumentSchema>;

export interface ApplyResult {
  /** One line per change, e.g. `created tool tickets`. Empty when the store already matched. */
  readonly changes: string[];
  /** Keys generated for principals that had none: shown once, stored only hashed. */
  readonly generatedKeys: { principal: string; apiKey: string }[];
  /** Grants created or changed, as written (for their audit records). */
  readonly grantsWritten: Grant[];
}

export function parsePolicyDocument(input: unknown): PolicyDocument {
  const parsed = parseWith(PolicyDocumentSchema, input ?? {});
  if (!parsed.ok) throw parsed.failure.error;
  return parsed.value;
}

/** Who applies a policy: recorded on every grant it writes, so the change event names them. */
export interface ApplyActor {
  readonly actor: string;
  readonly reason: string;
  readonly requestId: string;
}

export async function applyPolicy(store: Store, doc: PolicyDocument, now: string, by?: ApplyActor): Promise<ApplyResult> {
  const changes: string[] = [];
  const generatedKeys: { principal: string; apiKey: string }[] = [];
  const grantsWritten: Grant[] = [];

  await checkReferences(store, doc);

  // Roles first: a conflicting version aborts before anything else is written.
  for (const [index, spec] of doc.roles.entries()) {
    const existing = await store.getRoleVersion(spec.id, spec.version);
    if (existing && !sameActions(existing.actions, spec.actions)) {
      throw conflict(`role ${spec.id}@${spec.version} already exists with other actions; publish a new version`, { field: `roles[${index}]` });
    }
  }

  for (const spec of doc.tools) {
    const tool: Tool = { id: spec.id, audience: spec.audience, actions: spec.actions, enabled: spec.enabled, ...(spec.aws && { aws: spec.aws }), updatedAt: now };
    const existing = await store.getTool(spec.id);
    if (!existing || !same(withoutTime(existing), withoutTime(tool))) {
      await store.putTool(tool);
      changes.push(`${existing ? 'updated' : 'created'} tool ${spec.id}`);
    }
  }

  for (const spec of doc.roles) {
    const role: RoleVersion = { id: spec.id, version: spec.version, actions: spec.actions, approvedBy: spec.approvedBy, publishedAt: now };
    if ((await store.publishRoleVersion(role)) === 'created') changes.push(`published role ${spec.id}@${spec.version} (approved by ${spec.approvedBy})`);
  }

  for (const spec of doc.identities) {
    const parts = parseIdentityId(spec.id)!;
    const existing = await store.getIdentity(spec.id);
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
    if (!existing || !same(withoutTime(existing), withoutTime(identity))) {
      await store.putIdentity(identity);
      changes.push(`${existing ? 'updated' : 'created'} identity ${spec.id}`);
    }
  }

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
    const existing = (await store.listGrants(spec.identity)).find((g) => g.id === grant.id);
    if (!existing || !same(withoutTime(existing), withoutTime(grant))) {
      await store.putGrant(grant);
      grantsWritten.push(grant);
      changes.push(`${existing ? 'updated' : 'created'} grant ${grant.id} for ${spec.identity}`);
    }
  }

  for (const spec of doc.principals) {
    const principal: Principal = {
      id: spec.id,
      kind: spec.kind,
      ...(spec.identity && { identity: spec.identity }),
      ...(spec.spawns && { spawns: [...spec.spawns].sort() }),
      ...(spec.arn && { arn: spec.arn }),
      updatedAt: now,
    };
    const existing = await store.getPrincipal(spec.id);
    if (!existing || !same(withoutTime(existing), withoutTime(principal))) {
      await store.putPrincipal(principal);
      changes.push(`${existing ? 'updated' : 'created'} principal ${spec.id}`);
    }
    if (spec.arn && (await store.getPrincipalByKey('arn', spec.arn))?.id !== spec.id) {
      await store.setPrincipalKey(spec.id, 'arn', spec.arn);
      changes.push(`bound ${spec.arn} to principal ${spec.id}`);
    }
    if (spec.apiKey) {
      const hash = hashApiKey(spec.apiKey);
      if ((await store.getPrincipalByKey('apiKey', hash))?.id !== spec.id) {
        await store.setPrincipalKey(spec.id, 'apiKey', hash);
        changes.push(`set API key of principal ${spec.id}`);
      }
    } else if (!spec.arn && !(await store.hasPrincipalKey(spec.id, 'apiKey'))) {
      const apiKey = newApiKey();
      await store.setPrincipalKey(spec.id, 'apiKey', hashApiKey(apiKey));
      generatedKeys.push({ principal: spec.id, apiKey });
      changes.push(`generated API key for principal ${spec.id}`);
    }
  }
  return { changes, generatedKeys, grantsWritten };
}

/** Every name the document uses must exist in it or in the store: typos fail before any write. */
async function checkReferences(store: Store, doc: PolicyDocument): Promise<void> {
  const toolActions = new Map<string, Set<string>>(doc.tools.map((t) => [t.id, new Set(Object.keys(t.actions))]));
  for (const [i, role] of doc.roles.entries()) {
    for (const [j, action] of role.actions.entries()) {
      const [toolId, verb] = action.split(':') as [string, string];
      if (!toolActions.has(toolId)) {
        const stored = await store.getTool(toolId);
        toolActions.set(toolId, new Set(stored ? Object.keys(stored.actions) : []));
      }
      if (!toolActions.get(toolId)!.has(verb)) throw invalidRequest(`roles[${i}].actions[${j}]`, `no tool declares the action ${action}`);
    }
  }
  const identities = new Set(doc.identities.map((i) => i.id));
  const roles = new Set(doc.roles.map((r) => `${r.id}@${r.version}`));
  const identityExists = async (id: string) => identities.has(id) || (await store.getIdentity(id)) !== undefined;
  for (const [i, spec] of doc.identities.entries()) {
    const env = parseIdentityId(spec.id)!.environment;
    if (spec.environment !== undefined && spec.environment !== env) {
      throw invalidRequest(`identities[${i}].environment`, `identity ${spec.id} is in environment ${env}, not ${spec.environment}`);
    }
  }
  for (const [i, grant] of doc.grants.entries()) {
    if (!(await identityExists(grant.identity))) throw invalidRequest(`grants[${i}].identity`, `unknown identity ${grant.identity}`);
    const [role, version] = grant.role.split('@') as [string, string];
    if (!roles.has(grant.role) && !(await store.getRoleVersion(role, Number(version)))) {
      throw invalidRequest(`grants[${i}].role`, `unknown role version ${grant.role}`);
    }
    const env = parseIdentityId(grant.identity)!.environment;
    if (grant.environment !== undefined && grant.environment !== env) {
      throw invalidRequest(`grants[${i}].environment`, `identity ${grant.identity} is in environment ${env}, not ${grant.environment}`);
    }
  }
  for (const [i, p] of doc.principals.entries()) {
    if (p.kind === 'agent' && !p.identity) throw invalidRequest(`principals[${i}].identity`, `agent principal ${p.id} must name the identity it acts as`);
    if (p.identity && !(await identityExists(p.identity))) throw invalidRequest(`principals[${i}].identity`, `unknown identity ${p.identity}`);
    if (p.kind !== 'orchestrator' && p.spawns) throw invalidRequest(`principals[${i}].spawns`, 'only orchestrators spawn instances');
  }
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
