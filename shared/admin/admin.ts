/**
 * Admin commands (docs/http.md, `POST /v1/admin`): one JSON command per call, `{ "command": "…", … }`. The admin
 * Lambda takes the object as its event; the embedded default takes it at `POST /v1/admin`
 * from admin principals. Every command is parsed by a strict schema before anything runs.
 */
import * as z from 'zod';
import { IDENTITY_ID, TOOL_ID } from '../domain/model.ts';
import { invalidRequest } from '../domain/errors.ts';
import { applyPolicy, describeChanges, parsePolicyDocument, planChanges, planOnly, type ApplyResult, type PolicyApplyStore, type PolicyDocument } from '../policy/policy-file.ts';
import { authorityAt, queryAudit, type AuthorityAtStore } from '../audit/audit.ts';
import type { DecisionLog } from '../audit/decision-log.ts';
import { changeGrant, grantRecord, GrantChangeSchema, type GrantChangeDeps } from '../policy/grant-change.ts';
import type { PolicyView } from '../policy/policy-view.ts';
import { ReasonSchema, RevocationTargetSchema, reinstate, revoke, type AdminAction, type ReinstateDeps } from '../revocation/revoke.ts';
import type { Clock, QuotaStore } from '../ports/index.ts';
import { parseWith, type FieldHints } from '../domain/schemas.ts';
import { quotaStatus, usageReport, USAGE_GROUPS } from '../broker/usage.ts';
import { listUpstreams, OverlapSecondsSchema, setUpstreamSecret, UpstreamSecretSchema, type ListUpstreamsDeps, type UpstreamSecretDeps } from '../broker/upstream-secrets.ts';

const Actor = z.string().min(1).max(256);
const Instant = z.string().refine((v) => /^\d{4}-\d\d-\d\dT/.test(v) && !Number.isNaN(Date.parse(v)), 'an ISO-8601 instant');

export const AdminCommandSchema = z.discriminatedUnion('command', [
  z.object({ command: z.literal('policy.apply'), policy: z.record(z.string(), z.unknown()), dryRun: z.boolean().optional(), actor: Actor.optional() }).strict(),
  z.object({ command: z.literal('tool.list') }).strict(),
  z.object({ command: z.literal('role.list') }).strict(),
  z.object({ command: z.literal('identity.list') }).strict(),
  z.object({ command: z.literal('principal.list') }).strict(),
  z.object({ command: z.literal('grant.list'), identity: z.string().regex(IDENTITY_ID).optional() }).strict(),
  z.object({ command: z.literal('revoke'), target: RevocationTargetSchema, reason: ReasonSchema, actor: Actor.optional() }).strict(),
  z.object({ command: z.literal('reinstate'), target: RevocationTargetSchema, reason: ReasonSchema, actor: Actor.optional() }).strict(),
  z
    .object({
      command: z.literal('grant.change'),
      identity: z.string().regex(IDENTITY_ID),
      grant: z.string().min(1).max(128),
      set: GrantChangeSchema,
      reason: ReasonSchema,
      approvedBy: z.string().min(1).max(256).optional(),
      actor: Actor.optional(),
    })
    .strict(),
  z
    .object({
      command: z.literal('audit.query'),
      by: z.enum(['identity', 'lane', 'tenant', 'task', 'tool']),
      value: z.string().min(1).max(512),
      from: Instant.optional(),
      to: Instant.optional(),
      limit: z.number().int().min(1).max(1000).optional(),
      cursor: z.string().max(2048).optional(),
    })
    .strict(),
  z.object({ command: z.literal('audit.at'), identity: z.string().regex(IDENTITY_ID), at: Instant }).strict(),
  // Write-only: the secret goes to the vault, and no answer, record, event or error shows it again.
  z
    .object({
      command: z.literal('upstream.secret.set'),
      provider: z.string().regex(TOOL_ID, 'a provider is a tool id: lower-case letters, digits, ., _ and -'),
      secret: UpstreamSecretSchema,
      reason: ReasonSchema,
      overlapSeconds: OverlapSecondsSchema.optional(),
      actor: Actor.optional(),
    })
    .strict(),
  z.object({ command: z.literal('upstream.list') }).strict(),
  // Whose budget burns: the broker's calls summed from the audit, and a bucket's current window.
  z
    .object({
      command: z.literal('usage.report'),
      provider: z.string().regex(TOOL_ID),
      by: z.enum(USAGE_GROUPS).default('identity'),
      from: Instant.optional(),
      to: Instant.optional(),
    })
    .strict(),
  z.object({ command: z.literal('quota.status'), bucket: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'a quota bucket: letters, digits, _, . and -, at most 128 characters') }).strict(),
]);

export type AdminCommand = z.infer<typeof AdminCommandSchema>;

export interface AdminContext {
  /** Who asked: the admin principal, or the IAM caller of the admin Lambda. */
  readonly actor: string;
  readonly requestId: string;
}

/** What applying a policy uses: the policy and quota limits written, the view dropped, and the audit of each grant written. */
export interface PolicyApplyDeps {
  readonly store: PolicyApplyStore;
  readonly policy: Pick<PolicyView, 'invalidate'>;
  readonly decisions: Pick<DecisionLog, 'append'>;
  readonly clock: Clock;
}

/**
 * What the admin commands use, together: each command's own deps (policy apply, revoke and
 * reinstate, grant change, upstream secrets, audit queries) and the listings. `IssuerServices` is one.
 */
export interface AdminDeps extends PolicyApplyDeps, GrantChangeDeps, ReinstateDeps, UpstreamSecretDeps, ListUpstreamsDeps {
  readonly store: PolicyApplyDeps['store'] &
    GrantChangeDeps['store'] &
    ReinstateDeps['store'] &
    UpstreamSecretDeps['store'] &
    ListUpstreamsDeps['store'] &
    AuthorityAtStore &
    Pick<QuotaStore, 'getQuota' | 'getQuotaUsage'>;
  /** Every command drops it after a write; a rotation also reads its TTL. */
  readonly policy: UpstreamSecretDeps['policy'];
}

export function parseAdminCommand(input: unknown): AdminCommand {
  if (typeof input !== 'object' || input === null || typeof (input as { command?: unknown }).command !== 'string') {
    throw invalidRequest('command', 'an admin command is a JSON object with a "command" string');
  }
  const parsed = parseWith(AdminCommandSchema, input, adminFieldHint);
  if (!parsed.ok) throw parsed.failure.error;
  return parsed.value;
}

/** What a field of an admin command holds, for a refusal's message; `policy` is what `lanyard apply` sends from the file. */
const adminFieldHint: FieldHints = {
  expects: (field) => (field === 'policy' ? 'the policy file: a map of tools, roles, identities, grants, principals and quotas (docs/policy.md)' : undefined),
};

export async function runAdminCommand(runtime: AdminDeps, command: AdminCommand, ctx: AdminContext): Promise<unknown> {
  const { store } = runtime;
  switch (command.command) {
    case 'policy.apply': {
      const doc = parsePolicyDocument(command.policy);
      if (command.dryRun === true) return planPolicy(runtime, doc);
      const result = await applyPolicyAudited(runtime, doc, { actor: command.actor ?? ctx.actor, reason: 'policy apply', requestId: ctx.requestId });
      return { changes: result.changes, generatedKeys: result.generatedKeys };
    }
    case 'revoke': {
      const { revocation, blocksIssuance } = await revoke(runtime, command.target, action(ctx, command));
      return { revocation, blocksIssuance };
    }
    case 'reinstate':
      return reinstate(runtime, command.target, action(ctx, command));
    case 'grant.change':
      return changeGrant(runtime, command.identity, command.grant, command.set, {
        ...action(ctx, command),
        ...(command.approvedBy && { approvedBy: command.approvedBy }),
      });
    case 'audit.query': {
      const { command: _c, ...query } = command;
      return queryAudit(store, query);
    }
    case 'audit.at':
      return authorityAt(store, command.identity, command.at);
    case 'tool.list':
      return { tools: await store.listTools() };
    case 'role.list':
      return { roles: await store.listRoleVersions() };
    case 'identity.list':
      return { identities: await store.listIdentities() };
    case 'principal.list':
      return { principals: await store.listPrincipals() };
    case 'upstream.secret.set':
      return setUpstreamSecret(runtime, {
        ...action(ctx, command),
        provider: command.provider,
        secret: command.secret,
        ...(command.overlapSeconds !== undefined && { overlapSeconds: command.overlapSeconds }),
      });
    case 'upstream.list':
      return { upstreams: await listUpstreams(runtime) };
    case 'usage.report':
      return usageReport(store, {
        provider: command.provider,
        by: command.by,
        ...(command.from !== undefined && { from: command.from }),
        ...(command.to !== undefined && { to: command.to }),
      });
    case 'quota.status':
      return { bucket: command.bucket, ...(await quotaStatus(store, command.bucket, runtime.clock.now())) };
    case 'grant.list': {
      const identities = command.identity ? [command.identity] : (await store.listIdentities()).map((i) => i.id);
      const grants = (await Promise.all(identities.map((id) => store.listGrants(id)))).flat();
      return { grants };
    }
  }
}

function action(ctx: AdminContext, command: { reason: string; actor?: string | undefined }): AdminAction {
  return { actor: command.actor ?? ctx.actor, reason: command.reason, requestId: ctx.requestId };
}

/** Applies a policy and audits every grant it wrote, so grant history can be replayed from the records. */
export async function applyPolicyAudited(runtime: PolicyApplyDeps, doc: PolicyDocument, act: AdminAction): Promise<ApplyResult> {
  const now = new Date(runtime.clock.now()).toISOString();
  const result = await applyPolicy(runtime.store, doc, now, act);
  runtime.policy.invalidate();
  for (const grant of result.grantsWritten) await runtime.decisions.append(grantRecord(grant, act, now));
  return result;
}

/**
 * What applying `doc` would change: the plan the apply writes, computed on a store that drops
 * writes, in the conditional (`would create tool tickets`). Nothing is written, so nothing is
 * audited and no cache is invalidated: an audit record is a decision that changed authority, and
 * a dry run changes none. No key is generated either (a key shown but never stored would
 * mislead); the plan says which principals would get one.
 */
export async function planPolicy(runtime: Pick<PolicyApplyDeps, 'store' | 'clock'>, doc: PolicyDocument): Promise<{ dryRun: true; changes: string[]; generatedKeys: [] }> {
  const now = new Date(runtime.clock.now()).toISOString();
  // Planned on the read-only view, so a plan step that ever tried to write fails instead.
  const plan = await planChanges(planOnly(runtime.store), doc, now);
  return { dryRun: true, changes: describeChanges(plan, 'planned'), generatedKeys: [] };
}
