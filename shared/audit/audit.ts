/**
 * Audit queries (docs/domain.md#audit): the decisions for an identity, lane, tenant, task or tool over a
 * time range, and "what could identity X do at T", answered from the records alone: the grant
 * records (each grant change stores the grant as it then stood), the immutable role versions,
 * the issuance records and the revoke / reinstate records.
 */
import { ALL_TENANTS, type DecisionRecord, type Grant, type RoleVersion } from '../domain/model.ts';
import type { DecisionQuery, DecisionStore, Page, PolicyStore } from '../ports/index.ts';

/** What "what could X do at T" reads: the decision records, and the role versions and tools they name. */
export type AuthorityAtStore = Pick<DecisionStore, 'queryDecisions'> & Pick<PolicyStore, 'getRoleVersion' | 'getTool'>;
import { candidateKeys } from '../revocation/revocation-index.ts';

export async function queryAudit(store: Pick<DecisionStore, 'queryDecisions'>, query: DecisionQuery): Promise<Page<DecisionRecord>> {
  return store.queryDecisions(query);
}

export interface AuthorityAt {
  readonly identity: string;
  readonly at: string;
  /** Grants in force at T, each with the actions of its role version. */
  readonly grants: readonly (Grant & { readonly actions: readonly string[] })[];
  /** Credentials issued at or before T, not yet expired at T, and not cut off by then. */
  readonly liveCredentials: readonly DecisionRecord[];
  /** Revocations recorded at or before T that touch this identity, its lanes, tenants or tools, with whether a block was standing at T. */
  readonly revocations: readonly (DecisionRecord & { readonly standingAt: boolean })[];
  /** `tool:verb@tenant` lanes the identity could have been issued at T (grants minus standing blocks). */
  readonly couldIssue: readonly string[];
}

async function all(store: Pick<DecisionStore, 'queryDecisions'>, query: DecisionQuery): Promise<DecisionRecord[]> {
  const out: DecisionRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.queryDecisions({ ...query, limit: 1000, ...(cursor && { cursor }) });
    out.push(...page.items);
    cursor = page.cursor;
  } while (cursor);
  return out;
}

export async function authorityAt(store: AuthorityAtStore, identity: string, at: string): Promise<AuthorityAt> {
  const t = Date.parse(at);
  const records = await all(store, { by: 'identity', value: identity, to: at });

  // Grants: the latest grant record per grant id at or before T.
  const latest = new Map<string, DecisionRecord>();
  for (const r of records) {
    if (r.decision !== 'grant_changed' || !r.grantSnapshot) continue;
    const seen = latest.get(r.grantSnapshot.id);
    if (!seen || Date.parse(seen.at) <= Date.parse(r.at)) latest.set(r.grantSnapshot.id, r);
  }
  const grants: (Grant & { actions: readonly string[] })[] = [];
  const roles = new Map<string, RoleVersion | undefined>();
  for (const r of latest.values()) {
    const g = r.grantSnapshot!;
    if (g.status !== 'active') continue;
    const key = `${g.role}@${g.roleVersion}`;
    if (!roles.has(key)) roles.set(key, await store.getRoleVersion(g.role, g.roleVersion));
    const role = roles.get(key);
    if (role && Date.parse(role.publishedAt) <= t) grants.push({ ...g, actions: role.actions });
  }

  // Revocations touching the identity directly, or its tenants and tools through a kill switch.
  const tenants = new Set(grants.flatMap((g) => g.tenants).filter((x) => x !== ALL_TENANTS));
  const tools = new Set(grants.flatMap((g) => g.actions.map((a) => a.split(':')[0]!)));
  const adminRecords = [
    ...records,
    ...(await Promise.all([...tenants].map((value) => all(store, { by: 'tenant', value, to: at })))).flat(),
    ...(await Promise.all([...tools].map((value) => all(store, { by: 'tool', value, to: at })))).flat(),
  ].filter((r) => r.decision === 'revoked' || r.decision === 'reinstated');
  const unique = [...new Map(adminRecords.map((r) => [r.id, r])).values()].filter((r) => appliesTo(r, identity));
  const reinstatedBy = new Map<string, number>();
  for (const r of unique) if (r.decision === 'reinstated' && r.revocationId) reinstatedBy.set(r.revocationId, Date.parse(r.at));
  const revocations = unique
    .filter((r) => r.decision === 'revoked')
    .map((r) => ({ ...r, standingAt: blocks(r) && !((reinstatedBy.get(r.revocationId ?? '') ?? Infinity) <= t) }));

  const cutoffs = revocations.map((r) => ({ key: r.targetKey ?? '', cutoff: Date.parse(r.cutoff ?? r.at) }));
  const liveCredentials = records.filter((r) => {
    if (r.decision !== 'issued' || !r.issuedAt || !r.expiresAt) return false;
    const issued = Date.parse(r.issuedAt);
    if (issued > t || Date.parse(r.expiresAt) <= t) return false;
    const keys = candidateKeys(r);
    return !cutoffs.some((c) => c.cutoff >= issued && keys.includes(c.key));
  });

  const standing = revocations.filter((r) => r.standingAt).map((r) => r.targetKey ?? '');
  // A lane block stops only its own access level: the level of each action comes from its tool.
  const levels = new Map<string, Readonly<Record<string, string>> | undefined>();
  for (const tool of tools) levels.set(tool, (await store.getTool(tool))?.actions);
  const couldIssue = new Set<string>();
  if (!standing.some((k) => k === `identity:${identity}` || k === `identity:${identity.split('#')[0]}`)) {
    for (const g of grants) {
      for (const action of g.actions) {
        const [tool, verb] = action.split(':') as [string, string];
        if (standing.some((k) => k === `tool:${tool}` || k === `tool:${tool}@${identity}`)) continue;
        const level = levels.get(tool)?.[verb];
        for (const tenant of g.tenants) {
          if (standing.includes(`tenant:${tenant}`)) continue;
          // Unknown level (tool since removed): any blocked lane of the tool and tenant counts, as before.
          const laneBlocked = level
            ? standing.includes(`lane:${identity}:${tool}:${level}:${tenant}`)
            : standing.some((k) => k.startsWith(`lane:${identity}:${tool}:`) && k.endsWith(`:${tenant}`));
          if (laneBlocked) continue;
          couldIssue.add(`${action}@${tenant}`);
        }
      }
    }
  }
  return { identity, at, grants, liveCredentials, revocations, couldIssue: [...couldIssue].sort() };
}

function blocks(r: DecisionRecord): boolean {
  const type = r.targetKey?.split(':')[0];
  return type === 'lane' || type === 'identity' || type === 'tenant' || type === 'tool';
}

/** A tenant or tool record found through its own index applies only if it is global or names this identity. */
function appliesTo(r: DecisionRecord, identity: string): boolean {
  const key = r.targetKey ?? '';
  if (key.startsWith('tool:')) return !key.includes('@') || key.endsWith(`@${identity}`) || key.endsWith(`@${identity.split('#')[0]}`);
  if (key.startsWith('tenant:')) return true;
  return r.identity === identity || key === `identity:${identity.split('#')[0]}`;
}

