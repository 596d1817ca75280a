/**
 * The policy file of docs/policy.md and its idempotent apply, in four parts along their seams:
 * - the document schema (`policy-schema.ts`, with the broker's `upstream` in `upstream-schema.ts`);
 * - validation (`policy-validation.ts`): the shape, with messages a person reads, then the
 *   references to identities, role versions and actions;
 * - the plan (`policy-plan.ts`): the document compared with the store, as typed changes, and
 *   their words (`plan-words.ts`), past tense once applied, conditional for a dry run;
 * - the apply (`policy-apply.ts`): the plan written, and the dry-run view of a store.
 *
 * Applying twice changes nothing the second time; every change is reported; a role version that
 * already exists with other actions is a `conflict`, checked before anything is written. Grants,
 * principals and quotas are added or updated, never deleted by omission: removal is an
 * explicit admin command. This module is the one the rest of the issuer imports.
 */
export { PolicyDocumentSchema, UPSTREAM_METHODS, stsTtlProblem, type PolicyDocument } from './policy-schema.ts';
export { checkReferences, parsePolicyDocument } from './policy-validation.ts';
export { planChanges, type ApplyActor, type PolicyChange, type PrincipalKeyChange, type RecordChange } from './policy-plan.ts';
export { describeChange, describeChanges, type Mood } from './plan-words.ts';
export { applyPlan, applyPolicy, planOnly, type ApplyResult } from './policy-apply.ts';
export type { PolicyApplyStore } from './policy-plan.ts';
