/**
 * The policy file of docs/policy.md and its idempotent apply. Applying twice changes nothing the
 * second time; every change is reported; a role version that already exists with other
 * actions is a `conflict`, checked before anything is written. Grants, principals and quotas
 * are added or updated, never deleted by omission: removal is an explicit admin command.
 *
 * A tool behind the broker (issue 6) declares its `upstream`: where it is, how its key is
 * presented, and which requests each action covers. Those declarations are the broker's
 * allow-list, so they are checked strictly here, where an admin reads the error, rather than
 * on an agent's request.
 */
import * as z from 'zod';
import {
  ACCESS_LEVELS,
  BROKER_AUDIENCE,
  CREDENTIAL_KINDS,
  ENVIRONMENT_ID,
  IDENTITY_ID,
  PRINCIPAL_ID,
  PRINCIPAL_KINDS,
  ROLE_ID,
  STS_MAX_TTL_SECONDS,
  TENANT_ID,
  TOOL_ID,
  VERB,
  parseIdentityId,
  type Grant,
  type Identity,
  type Principal,
  type QuotaPolicy,
  type RoleVersion,
  type Tool,
  type UpstreamConfig,
} from '../domain/model.ts';
import { conflict, invalidRequest } from '../domain/errors.ts';
import { hashApiKey, IAM_ROLE_ARN, iamRoleKey, isApiKey, newApiKey } from '../domain/caller-keys.ts';
import type { Store } from '../ports/index.ts';
import { parseWith } from '../domain/schemas.ts';

/** A quota bucket's name, as grants and quota policies write it. */
const QUOTA_BUCKET = /^[A-Za-z0-9_.-]{1,128}$/;
const QUOTA_BUCKET_RULE = 'a quota bucket: letters, digits, _, . and -, at most 128 characters';

/** An HTTP field name (RFC 9110 §5.1: a token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

/**
 * Headers the broker owns on the way upstream: framing, hop-by-hop (RFC 9110 §7.6.1) and the
 * host. Neither the key nor an agent may set them.
 */
const BROKER_OWNED_HEADERS: ReadonlySet<string> = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'te', 'upgrade', 'cookie', 'keep-alive', 'trailer']);

function isBrokerOwned(name: string): boolean {
  return BROKER_OWNED_HEADERS.has(name) || name.startsWith('proxy-');
}

/** Headers an agent may never pass through: the broker's own, credentials, and claims about where the request came from. */
function isUnforwardable(name: string): boolean {
  return isBrokerOwned(name) || name === 'authorization' || name === 'forwarded' || name.startsWith('x-forwarded-');
}

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', '[::1]', 'localhost']);

export const UPSTREAM_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * A path pattern: RFC 3986 `pchar`s and `/`, with `*` (any run of characters) the only
 * wildcard. No `%` (an encoded `/` or `.` would let one pattern mean two paths), no `\`, no
 * empty or dot segment: the broker compares patterns with normalised request paths.
 */
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;

function pathProblem(path: string, wildcard: boolean): string | undefined {
  if (!path.startsWith('/')) return 'a path starts with /';
  if (path.length > 512) return 'a path is at most 512 characters';
  if (path.includes('%')) return 'a path may not contain % (percent-encoding)';
  if (path.includes('\\')) return 'a path may not contain \\';
  if (!PATH_CHARS.test(path)) return 'a path is made of RFC 3986 path characters' + (wildcard ? ' and *' : '');
  if (!wildcard && path.includes('*')) return 'the base URL path may not contain *';
  if (path.includes('//')) return 'a path may not contain //';
  // A segment's name is the part before `;`: servers that strip path parameters read `..;x` as `..`, and `/;x/` as `//`.
  const names = path.split('/').slice(1).map((segment) => segment.split(';', 1)[0]);
  if (names.some((name) => name === '.' || name === '..')) return 'a path may not contain a . or .. segment (with or without ;parameters)';
  if (names.some((name, i) => name === '' && i !== names.length - 1)) return 'a path may not contain an empty segment (// or /;)';
  return undefined;
}

/**
 * An absolute https URL, or http on a loopback host; no credentials, query or fragment; an
 * optional path prefix. Normalised to `scheme://host[:port][/prefix]`, no trailing slash.
 */
const BaseUrl = z
  .string()
  .max(2048)
  .transform((value, ctx) => {
    const fail = (message: string) => {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    };
    // Checked as written too: the URL parser forgives (`https:host`, `\` for `/`, dot segments) what an allow-list should not.
    const written = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\\\s]+(\/[^?#]*)?(?:[?#].*)?$/.exec(value);
    let url: URL;
    try {
      if (written === null) throw new TypeError('not scheme://host[/path]');
      url = new URL(value);
    } catch {
      return fail('an absolute URL, e.g. https://api.example.com');
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
      return fail('https, or http only on a loopback host (127.0.0.1, ::1, localhost)');
    }
    if (url.username !== '' || url.password !== '') return fail('a base URL may not carry credentials: the key is set as a secret');
    if (value.includes('?') || value.includes('#')) return fail('a base URL may not have a query or fragment');
    const prefix = (written?.[1] ?? '').replace(/\/+$/, '');
    if (prefix !== '') {
      const problem = pathProblem(prefix, false);
      if (problem !== undefined) return fail(problem);
    }
    return `${url.protocol}//${url.host}${prefix}`;
  });

const KeySpec = z
  .object({
    header: z.string().regex(HEADER_NAME, 'an HTTP header name').transform((h) => h.toLowerCase()).optional(),
    scheme: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/, 'an auth scheme such as Bearer, Basic or Token').optional(),
    query: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a query parameter name: letters, digits, _, . and -').optional(),
  })
  .strict()
  .superRefine((key, ctx) => {
    if ((key.header === undefined) === (key.query === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'the key is presented either in a header ({ header, scheme? }) or in a query parameter ({ query })', path: ['header'] });
    } else if (key.query !== undefined && key.scheme !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'a scheme goes with a header, not a query parameter', path: ['scheme'] });
    } else if (key.header !== undefined && isBrokerOwned(key.header)) {
      ctx.addIssue({ code: 'custom', message: `the key cannot be presented in ${key.header}: the broker owns that header`, path: ['header'] });
    }
  })
  .transform((key) => (key.query !== undefined ? { query: key.query } : { header: key.header!, ...(key.scheme !== undefined && { scheme: key.scheme }) }));

const RouteSpec = z
  .object({
    method: z
      .string()
      .transform((m) => m.toUpperCase())
      .pipe(z.enum(UPSTREAM_METHODS)),
    path: z.string().superRefine((path, ctx) => {
      const problem = pathProblem(path, true);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    }),
  })
  .strict();

const UnitsSpec = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,32}$/, 'what a unit is, e.g. tokens or cents'),
    header: z.string().regex(HEADER_NAME, 'an HTTP header name').transform((h) => h.toLowerCase()).optional(),
    json: z
      .string()
      .max(256)
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'a dot path into the JSON answer, e.g. usage.total_tokens')
      .optional(),
  })
  .strict()
  .superRefine((units, ctx) => {
    if ((units.header === undefined) === (units.json === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'units are read from either a response header or a JSON path', path: ['header'] });
    }
  });

const UpstreamSpec = z
  .object({
    baseUrl: BaseUrl,
    key: KeySpec,
    routes: z
      .record(z.string().regex(VERB), z.array(RouteSpec).min(1).max(64))
      .refine((routes) => Object.keys(routes).length > 0, 'an upstream needs the routes of at least one action'),
    units: UnitsSpec.optional(),
    forwardHeaders: z
      .array(
        z
          .string()
          .regex(HEADER_NAME, 'an HTTP header name')
          .transform((h) => h.toLowerCase())
          .refine((h) => !isUnforwardable(h), 'the broker owns this header, or it carries credentials or origin claims: an agent may not set it'),
      )
      .max(32)
      .superRefine((headers, ctx) => {
        for (const [i, header] of headers.entries()) {
          if (headers.indexOf(header) !== i) ctx.addIssue({ code: 'custom', message: `${header} is listed twice`, path: [i] });
        }
      })
      .optional(),
    timeoutMs: z.number().int().min(100).max(300_000).optional(),
    maxRequestBytes: z.number().int().min(1).max(6 * 1024 * 1024).optional(),
    maxResponseBytes: z.number().int().min(1).max(100 * 1024 * 1024).optional(),
    allowPathParameters: z.boolean().optional(),
  })
  .strict()
  .superRefine((upstream, ctx) => {
    // A `;` is refused in request paths unless the provider uses path parameters: a pattern
    // or base path with one would otherwise never match, or be the only `;` let through.
    if (upstream.allowPathParameters !== true) {
      if (String(upstream.baseUrl).split('/').slice(3).join('/').includes(';')) {
        ctx.addIssue({ code: 'custom', message: 'the base URL path has a ; (path parameters): set allowPathParameters: true if the API uses them', path: ['baseUrl'] });
      }
      for (const [verb, routes] of Object.entries(upstream.routes)) {
        for (const [i, route] of routes.entries()) {
          if (route.path.includes(';')) ctx.addIssue({ code: 'custom', message: 'the path has a ; (path parameters): set allowPathParameters: true if the API uses them', path: ['routes', verb, i, 'path'] });
        }
      }
    }
    // Letting an agent send the key header would let it choose the credential the upstream sees.
    const keyHeader = 'header' in upstream.key ? upstream.key.header : undefined;
    const index = keyHeader === undefined ? -1 : (upstream.forwardHeaders ?? []).indexOf(keyHeader);
    if (index !== -1) ctx.addIssue({ code: 'custom', message: `${keyHeader} carries the upstream key: an agent may not set it`, path: ['forwardHeaders', index] });
  });

const ToolSpec = z
  .object({
    id: z.string().regex(TOOL_ID),
    /** Required, unless the tool is behind the broker: then it defaults to `BROKER_AUDIENCE`. */
    audience: z.string().url().max(512).optional(),
    actions: z.record(z.string().regex(VERB), z.enum(ACCESS_LEVELS)).refine((a) => Object.keys(a).length > 0, 'a tool needs at least one action'),
    enabled: z.boolean().default(true),
    aws: z
      .object({
        roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/, 'an IAM role ARN: arn:aws:iam::<12-digit account>:role/<name>'),
        permissions: z.record(z.string().regex(VERB), z.array(z.string().regex(/^[a-z0-9-]+:[A-Za-z0-9*]+$/, 'an IAM action, service:Action, e.g. s3:GetObject or s3:Get*')).min(1)),
        resources: z.array(z.string().min(1)).min(1).optional(),
      })
      .strict()
      .optional(),
    upstream: UpstreamSpec.optional(),
  })
  .strict()
  .superRefine((tool, ctx) => {
    if (tool.audience === undefined && tool.upstream === undefined) {
      ctx.addIssue({ code: 'custom', message: 'a tool needs an audience (it may be left out only for a tool behind the broker)', path: ['audience'] });
    }
    for (const verb of Object.keys(tool.upstream?.routes ?? {})) {
      if (!Object.hasOwn(tool.actions, verb)) {
        ctx.addIssue({ code: 'custom', message: `routes name ${verb}, which is not one of the tool's actions`, path: ['upstream', 'routes', verb] });
      }
    }
  });

const RoleSpec = z
  .object({
    id: z.string().regex(ROLE_ID),
    version: z.number().int().min(1),
    actions: z.array(z.string().regex(/^[a-z0-9][a-z0-9_.-]*:[a-z0-9][a-z0-9_.-]*$/, 'an action is tool:verb, lower-case, e.g. tickets:read')).min(1).max(256),
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
    id: z.string().regex(/^[A-Za-z0-9_.@-]{1,128}$/, 'a grant id: letters, digits, _ . @ and -, at most 128 characters').optional(),
    identity: z.string().regex(IDENTITY_ID),
    role: z.string().regex(/^[a-z0-9][a-z0-9_.-]*@\d+$/, 'role@version, e.g. support-triage@1'),
    tenants: z.array(z.string().regex(TENANT_ID)).min(1).max(1000),
    environment: z.string().regex(ENVIRONMENT_ID).optional(),
    maxTtlSeconds: z.number().int().min(30).max(43_200).default(900),
    kinds: z.array(z.enum(CREDENTIAL_KINDS)).min(1).default(['jwt']),
    quotaBucket: z.string().regex(QUOTA_BUCKET, QUOTA_BUCKET_RULE),
    budgetOwner: z.string().min(1).max(256).optional(),
  })
  .strict()
  .superRefine((grant, ctx) => {
    // Refused here, where the admin reads it, rather than on every sts request (STS_MAX_TTL_SECONDS).
    if (grant.kinds.includes('sts') && grant.maxTtlSeconds > STS_MAX_TTL_SECONDS) {
      ctx.addIssue({ code: 'custom', message: stsTtlProblem(grant.maxTtlSeconds), path: ['maxTtlSeconds'] });
    }
  });

/** Why a grant that allows `sts` cannot have this TTL cap. */
export function stsTtlProblem(maxTtlSeconds: number): string {
  return `a grant that allows sts may last at most ${STS_MAX_TTL_SECONDS} s (STS caps a chained role session at one hour), not ${maxTtlSeconds}: lower it, or give sts its own grant`;
}

const PrincipalSpec = z
  .object({
    id: z.string().regex(PRINCIPAL_ID),
    kind: z.enum(PRINCIPAL_KINDS),
    identity: z.string().regex(IDENTITY_ID).optional(),
    spawns: z.array(z.string().regex(IDENTITY_ID)).optional(),
    apiKey: z.string().refine(isApiKey, 'an API key: lk_ followed by 16 to 128 URL-safe characters').optional(),
    arn: z.string().regex(/^arn:aws[a-z-]*:(iam|sts)::\d{12}:[\w+=,.@/-]+$/, 'an IAM or STS principal ARN: arn:aws:iam::<12-digit account>:…').optional(),
    /** Every assumed-role session of this role authenticates as the principal (docs/deploy.md). */
    iamRole: z.string().regex(IAM_ROLE_ARN, 'an IAM role ARN: arn:<partition>:iam::<account>:role/<path/><name>').optional(),
    /** Each assumed-role session of `iamRole` acts as the instance `<identity>#<session name>`. */
    instancePerSession: z.literal(true).optional(),
  })
  .strict()
  .superRefine((principal, ctx) => {
    if (principal.instancePerSession && (principal.kind !== 'agent' || principal.iamRole === undefined || principal.identity === undefined || principal.identity.includes('#'))) {
      ctx.addIssue({ code: 'custom', message: 'instancePerSession needs an agent principal with an iamRole and the identity of an agent class (class/env, no #instance)', path: ['instancePerSession'] });
    }
  });

const QuotaSpec = z
  .object({
    bucket: z.string().regex(QUOTA_BUCKET, QUOTA_BUCKET_RULE),
    /** 1 minute to 31 days. */
    windowSeconds: z.number().int().min(60).max(2_678_400),
    requests: z.number().int().positive().optional(),
    units: z.number().int().positive().optional(),
  })
  .strict()
  .superRefine((quota, ctx) => {
    if (quota.requests === undefined && quota.units === undefined) {
      ctx.addIssue({ code: 'custom', message: 'a quota limits requests, units or both', path: ['requests'] });
    }
  });

export const PolicyDocumentSchema = z
  .object({
    tools: z.array(ToolSpec).default([]),
    roles: z.array(RoleSpec).default([]),
    identities: z.array(IdentitySpec).default([]),
    grants: z.array(GrantSpec).default([]),
    principals: z.array(PrincipalSpec).default([]),
    /** Optional in the type, so documents written before quotas existed still type-check. */
    quotas: z.array(QuotaSpec).optional(),
  })
  .strict()
  .superRefine((doc, ctx) => {
    const seen = new Set<string>();
    for (const [i, quota] of (doc.quotas ?? []).entries()) {
      if (seen.has(quota.bucket)) ctx.addIssue({ code: 'custom', message: `quota bucket ${quota.bucket} is declared twice`, path: ['quotas', i, 'bucket'] });
      seen.add(quota.bucket);
    }
    // Role names are unique in an account whatever the path, and an assumed-role ARN carries no path:
    // two bindings of one name would make the caller ambiguous.
    const roles = new Map<string, string>();
    for (const [i, principal] of doc.principals.entries()) {
      const key = principal.iamRole === undefined ? undefined : iamRoleKey(principal.iamRole);
      if (key === undefined) continue;
      const other = roles.get(key);
      if (other !== undefined) ctx.addIssue({ code: 'custom', message: `principal ${other} is already bound to a role of this name in this account`, path: ['principals', i, 'iamRole'] });
      else roles.set(key, principal.id);
    }
  });

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
    const tool: Tool = {
      id: spec.id,
      audience: spec.audience ?? BROKER_AUDIENCE,
      actions: spec.actions,
      enabled: spec.enabled,
      ...(spec.aws && { aws: spec.aws }),
      ...(spec.upstream && { upstream: upstreamOf(spec.upstream) }),
      updatedAt: now,
    };
    const existing = await store.getTool(spec.id);
    if (!existing || !same(withoutTime(existing), withoutTime(tool))) {
      await store.putTool(tool);
      changes.push(`${existing ? 'updated' : 'created'} tool ${spec.id}`);
    }
  }

  for (const spec of doc.quotas ?? []) {
    const quota: QuotaPolicy = {
      bucket: spec.bucket,
      windowSeconds: spec.windowSeconds,
      ...(spec.requests !== undefined && { requests: spec.requests }),
      ...(spec.units !== undefined && { units: spec.units }),
      updatedAt: now,
    };
    const existing = await store.getQuota(spec.bucket);
    if (!existing || !same(withoutTime(existing), withoutTime(quota))) {
      await store.putQuota(quota);
      changes.push(`${existing ? 'updated' : 'created'} quota ${spec.bucket}`);
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
      ...(spec.iamRole && { iamRole: spec.iamRole }),
      ...(spec.instancePerSession && { instancePerSession: true as const }),
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
    const roleKey = spec.iamRole === undefined ? undefined : iamRoleKey(spec.iamRole);
    if (roleKey !== undefined && (await store.getPrincipalByKey('iamRole', roleKey))?.id !== spec.id) {
      await store.setPrincipalKey(spec.id, 'iamRole', roleKey);
      changes.push(`bound role ${spec.iamRole} to principal ${spec.id}`);
    }
    if (spec.apiKey) {
      const hash = hashApiKey(spec.apiKey);
      if ((await store.getPrincipalByKey('apiKey', hash))?.id !== spec.id) {
        await store.setPrincipalKey(spec.id, 'apiKey', hash);
        changes.push(`set API key of principal ${spec.id}`);
      }
    } else if (!spec.arn && !spec.iamRole && !(await store.hasPrincipalKey(spec.id, 'apiKey'))) {
      const apiKey = newApiKey();
      await store.setPrincipalKey(spec.id, 'apiKey', hashApiKey(apiKey));
      generatedKeys.push({ principal: spec.id, apiKey });
      changes.push(`generated API key for principal ${spec.id}`);
    }
  }
  return { changes, generatedKeys, grantsWritten };
}

/** What `applyPolicy` reads from the store; a dry run lets these through unchanged. */
const PLAN_READS = ['getTool', 'getQuota', 'getRoleVersion', 'getIdentity', 'listGrants', 'getPrincipal', 'getPrincipalByKey', 'hasPrincipalKey'] as const;

/**
 * The store as a dry run of `applyPolicy` sees it: reads pass through, writes are dropped, so the
 * same code that applies a policy computes its plan. An allow-list: a store method `applyPolicy`
 * starts to call without being listed here fails the dry run rather than writing.
 */
export function planOnly(store: Store): Store {
  const dropped = async (): Promise<void> => {};
  const writes: Partial<Record<keyof Store, unknown>> = {
    putTool: dropped,
    putQuota: dropped,
    putIdentity: dropped,
    putGrant: dropped,
    putPrincipal: dropped,
    setPrincipalKey: dropped,
    // What publishing would answer: a new version is created, an existing one is left as it is.
    publishRoleVersion: async (role: RoleVersion) => ((await store.getRoleVersion(role.id, role.version)) ? 'unchanged' : 'created'),
  };
  const reads: ReadonlySet<PropertyKey> = new Set(PLAN_READS);
  return new Proxy(store, {
    get(target, name) {
      if (Object.hasOwn(writes, name)) return writes[name as keyof Store];
      if (!reads.has(name)) throw new Error(`a dry run of policy.apply does not call Store.${String(name)}`);
      const method = Reflect.get(target, name) as (...args: unknown[]) => unknown;
      return method.bind(target);
    },
  });
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
