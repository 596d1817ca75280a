/**
 * A plan's changes as a person reads them, one line each: in the past tense once applied
 * (`created tool tickets`), in the conditional for a dry run (`would create tool tickets`).
 * A principal's line says what about it changed: its kind, the identity it acts as, the
 * orchestrator's classes, the ARN or IAM role bound to it, a key replaced.
 */
import type { Principal } from '../domain/model.ts';
import type { PolicyChange, PrincipalKeyChange, RecordChange } from './policy-plan.ts';

/** `done`: the change was made; `planned`: a dry run, the change would be made. */
export type Mood = 'done' | 'planned';

const VERBS = {
  create: { done: 'created', planned: 'would create' },
  update: { done: 'updated', planned: 'would update' },
  publish: { done: 'published', planned: 'would publish' },
  bind: { done: 'bound', planned: 'would bind' },
  set: { done: 'set', planned: 'would set' },
  replace: { done: 'replaced', planned: 'would replace' },
  generate: { done: 'generated', planned: 'would generate' },
  stop: { done: 'stops', planned: 'would stop' },
  lose: { done: 'loses', planned: 'would lose' },
} as const satisfies Record<string, Record<Mood, string>>;

const verb = (word: keyof typeof VERBS | RecordChange, mood: Mood): string => VERBS[word][mood];

/** One line for one change. */
export function describeChange(change: PolicyChange, mood: Mood): string {
  switch (change.type) {
    case 'tool':
      return `${verb(change.change, mood)} tool ${change.record.id}`;
    case 'quota':
      return `${verb(change.change, mood)} quota ${change.record.bucket}`;
    case 'role':
      return `${verb('publish', mood)} role ${change.record.id}@${change.record.version} (approved by ${change.record.approvedBy})`;
    case 'identity':
      return `${verb(change.change, mood)} identity ${change.record.id}`;
    case 'grant':
      return `${verb(change.change, mood)} grant ${change.record.id} for ${change.record.identity}`;
    case 'principal':
      return `${verb(change.change, mood)} principal ${change.record.id}${principalDetail(change.record, change.previous)}`;
    case 'principal-key':
      return describeKeyChange(change, mood);
    case 'generated-key':
      return `${verb('generate', mood)} API key for principal ${change.principal}`;
  }
}

/** The lines of a plan, in order. */
export function describeChanges(changes: readonly PolicyChange[], mood: Mood): string[] {
  return changes.map((change) => describeChange(change, mood));
}

/** The fields of a principal a reader cares about, in the order the policy file lists them. */
const PRINCIPAL_FIELDS = ['kind', 'identity', 'spawns', 'arn', 'iamRole', 'instancePerSession'] as const;

function fieldText(principal: Principal | undefined, field: (typeof PRINCIPAL_FIELDS)[number]): string | undefined {
  const value = principal?.[field];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

/**
 * `: kind agent, identity support-triage/dev` for a new principal, `: identity a/dev → a/prod`
 * for a changed one (`none` where a field was or becomes absent).
 */
function principalDetail(next: Principal, previous: Principal | undefined): string {
  const parts: string[] = [];
  for (const field of PRINCIPAL_FIELDS) {
    const after = fieldText(next, field);
    if (previous === undefined) {
      if (after !== undefined) parts.push(`${field} ${after}`);
      continue;
    }
    const before = fieldText(previous, field);
    if (before !== after) parts.push(`${field} ${before ?? 'none'} → ${after ?? 'none'}`);
  }
  return parts.length === 0 ? '' : `: ${parts.join('; ')}`;
}

function describeKeyChange(change: PrincipalKeyChange, mood: Mood): string {
  const taken = change.takenFrom === undefined ? '' : `; principal ${change.takenFrom} ${verb('lose', mood)} it`;
  if (change.keyKind === 'apiKey') {
    if (change.replaces === undefined) return `${verb('set', mood)} API key of principal ${change.principal}${taken}`;
    return `${verb('replace', mood)} the API key of principal ${change.principal} with the file's (the old key ${verb('stop', mood)} working)${taken}`;
  }
  const what = change.keyKind === 'iamRole' ? `role ${change.shown}` : change.shown;
  const instead = typeof change.replaces === 'string' ? ` instead of ${change.replaces}` : '';
  return `${verb('bind', mood)} ${what} to principal ${change.principal}${instead}${taken}`;
}
