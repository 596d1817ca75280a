/**
 * Change a grant (docs/domain.md): promotion must name who approved it; demotion takes effect at
 * once. "At once" means both halves: the next issuance sees the narrower grant (this
 * instance's cache is dropped; others within the policy TTL), and every live credential
 * minted under the grant that the narrower grant no longer covers is revoked by id, so the
 * other credentials of the identity keep working.
 */
import * as z from 'zod';
import { CREDENTIAL_KINDS, STS_MAX_TTL_SECONDS, TENANT_ID, ALL_TENANTS, classOf, type DecisionRecord, type Grant } from '../domain/model.ts';
import { invalidRequest, notFound } from '../domain/errors.ts';
import { stsTtlProblem } from './policy-file.ts';
import { revoke, type AdminAction, type RevokeDeps } from '../revocation/revoke.ts';
import type { DecisionStore, PolicyStore } from '../ports/index.ts';

/** What a grant change uses: the grant and role versions, the identity's live credentials, and a revocation for each one a narrower grant no longer covers. */
export interface GrantChangeDeps extends RevokeDeps {
  readonly store: RevokeDeps['store'] &
    Pick<PolicyStore, 'listGrants' | 'getRoleVersion' | 'putGrant' | 'listIdentities'> &
    Pick<DecisionStore, 'queryDecisions'>;
}

export const GrantChangeSchema = z
  .object({
    status: z.enum(['active', 'demoted']).optional(),
    roleVersion: z.number().int().min(1).optional(),
    tenants: z.array(z.string().regex(TENANT_ID)).min(1).max(1000).optional(),
    maxTtlSeconds: z.number().int().min(30).max(43_200).optional(),
    kinds: z.array(z.enum(CREDENTIAL_KINDS)).min(1).optional(),
  })
  .strict()
  .refine((set) => Object.keys(set).length > 0, 'name at least one field to change');

export type GrantChange = z.infer<typeof GrantChangeSchema>;

export interface GrantChangeResult {
  readonly before: Grant;
  readonly after: Grant;
  readonly widened: boolean;
  /** Live credentials the narrower grant no longer covers, now revoked. */
  readonly revokedCredentials: string[];
}

export async function changeGrant(
  runtime: GrantChangeDeps,
  identity: string,
  grantId: string,
  set: GrantChange,
  action: AdminAction & { approvedBy?: string },
): Promise<GrantChangeResult> {
  const before = (await runtime.store.listGrants(identity)).find((g) => g.id === grantId);
  if (!before) throw notFound(`grant ${grantId} of ${identity}`);
  const now = new Date(runtime.clock.now()).toISOString();
  const after: Grant = {
    ...before,
    ...set,
    ...(set.tenants && { tenants: [...set.tenants].sort() }),
    ...(set.kinds && { kinds: [...set.kinds].sort() }),
    updatedAt: now,
    changedBy: action.actor,
    changeReason: action.reason,
    requestId: action.requestId,
  };

  if (after.kinds.includes('sts') && after.maxTtlSeconds > STS_MAX_TTL_SECONDS) {
    throw invalidRequest(set.maxTtlSeconds !== undefined ? 'set.maxTtlSeconds' : 'set.kinds', stsTtlProblem(after.maxTtlSeconds), { maxTtlSeconds: STS_MAX_TTL_SECONDS });
  }

  const [oldRole, newRole] = await Promise.all([
    runtime.store.getRoleVersion(before.role, before.roleVersion),
    runtime.store.getRoleVersion(after.role, after.roleVersion),
  ]);
  if (!newRole) throw invalidRequest('set.roleVersion', `role ${after.role}@${after.roleVersion} is not published`);
  const oldActions = new Set(oldRole?.actions ?? []);
  const widened =
    newRole.actions.some((a) => !oldActions.has(a)) ||
    after.tenants.some((t) => !before.tenants.includes(t) && !before.tenants.includes(ALL_TENANTS)) ||
    after.kinds.some((k) => !before.kinds.includes(k)) ||
    after.maxTtlSeconds > before.maxTtlSeconds ||
    (before.status === 'demoted' && after.status === 'active');
  if (widened && !action.approvedBy) throw invalidRequest('approvedBy', 'widening a grant is a promotion: name who approved it');
  const stored: Grant = widened ? { ...after, approvedBy: action.approvedBy! } : after;

  await runtime.store.putGrant(stored);
  runtime.policy.invalidate();
  await runtime.decisions.append(grantRecord(stored, action, now));

  const revokedCredentials: string[] = [];
  for (const credential of await liveCredentialsOf(runtime, identity, grantId)) {
    if (covers(stored, new Set(newRole.actions), credential)) continue;
    await revoke(runtime, { credential: credential.id }, { ...action, requestId: `${action.requestId}.${revokedCredentials.length}` });
    revokedCredentials.push(credential.id);
  }
  return { before, after: stored, widened, revokedCredentials };
}

/** The audit record of a grant as it now stands: "what could X do at T" replays these. */
export function grantRecord(grant: Grant, action: AdminAction, at: string): DecisionRecord {
  return {
    id: `grant_changed_${action.requestId}_${grant.identity}_${grant.id}`,
    requestId: action.requestId,
    at,
    decision: 'grant_changed',
    reason: action.reason,
    actor: action.actor,
    principal: action.actor,
    identity: grant.identity,
    grant: grant.id,
    role: `${grant.role}@${grant.roleVersion}`,
    quotaBucket: grant.quotaBucket,
    actionsRequested: [],
    actionsGranted: [],
    grantSnapshot: grant,
  };
}

/**
 * Live credentials minted under the grant: the identity's own, and those of its live instances
 * (an instance holds its class's grants, and its credentials are recorded under the instance).
 */
async function liveCredentialsOf(runtime: GrantChangeDeps, identity: string, grantId: string): Promise<DecisionRecord[]> {
  const now = runtime.clock.now();
  const from = new Date(now - 43_200_000).toISOString();
  // An instance's credentials never outlive it, so an expired instance holds none that are live.
  const instances = (await runtime.store.listIdentities())
    .filter((i) => i.instance !== undefined && i.id !== identity && classOf(i.id) === identity && (!i.expiresAt || Date.parse(i.expiresAt) > now))
    .map((i) => i.id);
  const live: DecisionRecord[] = [];
  for (const holder of [identity, ...instances]) {
    let cursor: string | undefined;
    do {
      const page = await runtime.store.queryDecisions({ by: 'identity', value: holder, from, limit: 1000, ...(cursor && { cursor }) });
      for (const record of page.items) {
        if (record.decision === 'issued' && record.grant === grantId && record.expiresAt && Date.parse(record.expiresAt) > now) live.push(record);
      }
      cursor = page.cursor;
    } while (cursor);
  }
  return live;
}

function covers(grant: Grant, actions: ReadonlySet<string>, credential: DecisionRecord): boolean {
  return (
    grant.status === 'active' &&
    credential.actionsGranted.every((a) => actions.has(a)) &&
    (grant.tenants.includes(ALL_TENANTS) || grant.tenants.includes(credential.tenant ?? ALL_TENANTS)) &&
    grant.kinds.includes(credential.kind ?? 'jwt')
  );
}
