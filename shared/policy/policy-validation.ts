/**
 * Validating a policy file: first its shape (the document schema, with messages a person reads),
 * then its references (every identity, role version and action it names exists in the file or
 * the store), so a typo fails before anything is written.
 */
import { parseIdentityId } from '../domain/model.ts';
import { invalidRequest } from '../domain/errors.ts';
import { parseWith } from '../domain/schemas.ts';
import type { PolicyApplyStore } from './policy-plan.ts';
import { POLICY_HINTS } from './policy-hints.ts';
import { PolicyDocumentSchema, type PolicyDocument } from './policy-schema.ts';

/** The document, or the `invalid_request` naming the first field at fault and what it expects. */
export function parsePolicyDocument(input: unknown): PolicyDocument {
  const parsed = parseWith(PolicyDocumentSchema, input ?? {}, POLICY_HINTS);
  if (!parsed.ok) throw parsed.failure.error;
  return parsed.value;
}

/** Every name the document uses must exist in it or in the store: typos fail before any write. */
export async function checkReferences(store: PolicyApplyStore, doc: PolicyDocument): Promise<void> {
  await checkRoleActions(store, doc);
  checkIdentityEnvironments(doc);
  const identities = new Set(doc.identities.map((i) => i.id));
  const identityExists = async (id: string) => identities.has(id) || (await store.getIdentity(id)) !== undefined;
  await checkGrants(store, doc, identityExists);
  await checkPrincipals(doc, identityExists);
}

/** Each `tool:verb` of a role is declared by a tool of the file or of the store. */
async function checkRoleActions(store: PolicyApplyStore, doc: PolicyDocument): Promise<void> {
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
}

function checkIdentityEnvironments(doc: PolicyDocument): void {
  for (const [i, spec] of doc.identities.entries()) {
    const env = parseIdentityId(spec.id)!.environment;
    if (spec.environment !== undefined && spec.environment !== env) {
      throw invalidRequest(`identities[${i}].environment`, `identity ${spec.id} is in environment ${env}, not ${spec.environment}`);
    }
  }
}

/** What to do about a name the file uses but neither it nor the issuer declares. */
function unknownIdentity(id: string): string {
  return `unknown identity ${id}: declare it under identities, or name one the issuer has (lanyard identity list)`;
}

async function checkGrants(store: PolicyApplyStore, doc: PolicyDocument, identityExists: (id: string) => Promise<boolean>): Promise<void> {
  const roles = new Set(doc.roles.map((r) => `${r.id}@${r.version}`));
  for (const [i, grant] of doc.grants.entries()) {
    if (!(await identityExists(grant.identity))) throw invalidRequest(`grants[${i}].identity`, unknownIdentity(grant.identity));
    const [role, version] = grant.role.split('@') as [string, string];
    if (!roles.has(grant.role) && !(await store.getRoleVersion(role, Number(version)))) {
      throw invalidRequest(`grants[${i}].role`, `unknown role version ${grant.role}: publish it under roles (id ${role}, version ${version}), or name one the issuer has (lanyard role list)`);
    }
    const env = parseIdentityId(grant.identity)!.environment;
    if (grant.environment !== undefined && grant.environment !== env) {
      throw invalidRequest(`grants[${i}].environment`, `identity ${grant.identity} is in environment ${env}, not ${grant.environment}`);
    }
  }
}

async function checkPrincipals(doc: PolicyDocument, identityExists: (id: string) => Promise<boolean>): Promise<void> {
  for (const [i, p] of doc.principals.entries()) {
    if (p.kind === 'agent' && !p.identity) throw invalidRequest(`principals[${i}].identity`, `agent principal ${p.id} must name the identity it acts as`);
    if (p.identity && !(await identityExists(p.identity))) throw invalidRequest(`principals[${i}].identity`, unknownIdentity(p.identity));
    if (p.kind !== 'orchestrator' && p.spawns) throw invalidRequest(`principals[${i}].spawns`, 'only orchestrators spawn instances');
  }
}
