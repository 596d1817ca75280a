/**
 * Applying a policy file: its plan (policy-plan.ts) written to the store, each change reported
 * once made. Applying twice changes nothing the second time. `planOnly` gives the view of a
 * store a dry run applies to: reads pass, writes are dropped.
 */
import type { Grant, RoleVersion } from '../domain/model.ts';
import { hashApiKey, newApiKey } from '../domain/caller-keys.ts';
import type { PolicyApplyStore } from './policy-plan.ts';
import type { PolicyDocument } from './policy-schema.ts';
import { planChanges, type ApplyActor, type PolicyChange } from './policy-plan.ts';
import { describeChange } from './plan-words.ts';

export interface ApplyResult {
  /** One line per change, e.g. `created tool tickets`. Empty when the store already matched. */
  readonly changes: string[];
  /** Keys generated for principals that had none: shown once, stored only hashed. */
  readonly generatedKeys: { principal: string; apiKey: string }[];
  /** Grants created or changed, as written (for their audit records). */
  readonly grantsWritten: Grant[];
}

export async function applyPolicy(store: PolicyApplyStore, doc: PolicyDocument, now: string, by?: ApplyActor): Promise<ApplyResult> {
  return applyPlan(store, await planChanges(store, doc, now, by));
}

/** Writes each change of the plan in order and reports the ones it made. */
export async function applyPlan(store: PolicyApplyStore, plan: readonly PolicyChange[]): Promise<ApplyResult> {
  const result: ApplyResult = { changes: [], generatedKeys: [], grantsWritten: [] };
  for (const change of plan) {
    if (await write(store, change, result)) result.changes.push(describeChange(change, 'done'));
  }
  return result;
}

/** Makes one change; false when there was nothing to do after all (a role version published meanwhile). */
async function write(store: PolicyApplyStore, change: PolicyChange, result: ApplyResult): Promise<boolean> {
  switch (change.type) {
    case 'tool':
      await store.putTool(change.record);
      return true;
    case 'quota':
      await store.putQuota(change.record);
      return true;
    case 'role':
      return (await store.publishRoleVersion(change.record)) === 'created';
    case 'identity':
      await store.putIdentity(change.record);
      return true;
    case 'grant':
      await store.putGrant(change.record);
      result.grantsWritten.push(change.record);
      return true;
    case 'principal':
      await store.putPrincipal(change.record);
      return true;
    case 'principal-key':
      await store.setPrincipalKey(change.principal, change.keyKind, change.keyValue);
      return true;
    case 'generated-key': {
      const apiKey = newApiKey();
      await store.setPrincipalKey(change.principal, 'apiKey', hashApiKey(apiKey));
      result.generatedKeys.push({ principal: change.principal, apiKey });
      return true;
    }
  }
}

/** What `applyPolicy` reads from the store; a dry run lets these through unchanged. */
const PLAN_READS = ['getTool', 'getQuota', 'getRoleVersion', 'getIdentity', 'listGrants', 'getPrincipal', 'getPrincipalByKey', 'hasPrincipalKey'] as const;

/**
 * The store as a dry run of `applyPolicy` sees it: reads pass through, writes are dropped, so the
 * same code that applies a policy computes its plan. An allow-list: a store method `applyPolicy`
 * starts to call without being listed here fails the dry run rather than writing.
 */
export function planOnly(store: PolicyApplyStore): PolicyApplyStore {
  const dropped = async (): Promise<void> => {};
  const writes: Partial<Record<keyof PolicyApplyStore, unknown>> = {
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
      if (Object.hasOwn(writes, name)) return writes[name as keyof PolicyApplyStore];
      if (!reads.has(name)) throw new Error(`a dry run of policy.apply does not call Store.${String(name)}`);
      const method = Reflect.get(target, name) as (...args: unknown[]) => unknown;
      return method.bind(target);
    },
  });
}
