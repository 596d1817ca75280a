/**
 * The policy file's document schema (docs/policy.md): every section and field, its pattern,
 * limits and default, and the rules across fields that one document can check alone.
 * References to the store (does this identity exist?) are checked by `checkReferences`
 * (policy-validation.ts); the JSON Schema editors use is generated from this one
 * (`npm run schema`, scripts/policy-schema.ts).
 */
import * as z from 'zod';
import {
  ACCESS_LEVELS,
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
} from '../domain/model.ts';
import { IAM_ROLE_ARN, iamRoleKey, isApiKey } from '../domain/caller-keys.ts';
import { UpstreamSpec } from './upstream-schema.ts';

export { UPSTREAM_METHODS } from './upstream-schema.ts';

/** A quota bucket's name, as grants and quota policies write it. */
const QUOTA_BUCKET = /^[A-Za-z0-9_.-]{1,128}$/;
const QUOTA_BUCKET_RULE = 'a quota bucket: letters, digits, _, . and -, at most 128 characters, e.g. support-llm';

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
