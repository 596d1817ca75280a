/**
 * What each field of the policy file expects, in words, with an example value: the second half
 * of a refusal (`grants[0].maxTtlSeconds: at most 43200 (seconds, 30 to 43200, e.g. 900)`).
 * The first half, what is wrong, comes from the issue (shared/domain/schemas.ts). The values
 * and limits here are the schema's (policy-schema.ts) and docs/policy.md's.
 */
import * as z from 'zod';
import type { FieldHints } from '../domain/schemas.ts';
import { PolicyDocumentSchema } from './policy-schema.ts';

const HINTS: ReadonlyMap<string, string> = new Map([
  ['body', 'a policy file: a map of tools, roles, identities, grants, principals and quotas'],
  ['tools', 'a list of tools'],
  ['tools[]', 'a tool: { id, audience, actions }'],
  ['tools[].id', 'a tool id, e.g. tickets'],
  ['tools[].audience', 'the URL credentials for the tool carry as their audience, e.g. https://tickets.example.internal'],
  ['tools[].actions', 'a map of verb to access level, e.g. { read: read, reply: write }'],
  ['tools[].actions.*', 'the access level: read, write or admin'],
  ['tools[].enabled', 'true or false'],
  ['tools[].aws', 'a map { roleArn, permissions, resources }'],
  ['tools[].aws.roleArn', 'an IAM role ARN, e.g. arn:aws:iam::123456789012:role/lanyard-reports'],
  ['tools[].aws.permissions', 'a map of verb to IAM actions, e.g. { read: [s3:GetObject] }'],
  ['tools[].aws.permissions.*', 'a list of IAM actions, e.g. [s3:GetObject, s3:ListBucket]'],
  ['tools[].aws.resources', 'a list of resource ARNs, e.g. [arn:aws:s3:::example-reports/*]'],
  ['tools[].upstream', 'a map { baseUrl, key, routes }'],
  ['tools[].upstream.baseUrl', "the provider's base URL, e.g. https://api.llm.example.com"],
  ['tools[].upstream.key', 'how the broker presents the key: { header: authorization, scheme: Bearer } or { query: api_key }'],
  ['tools[].upstream.routes', 'a map of verb to routes, e.g. { complete: [{ method: POST, path: /v1/chat/completions }] }'],
  ['tools[].upstream.routes.*', 'a list of { method, path }, e.g. [{ method: GET, path: /v1/models* }]'],
  ['tools[].upstream.routes.*[].path', 'a path starting with /, * for any run of characters, e.g. /v1/models*'],
  ['tools[].upstream.units', 'where usage units are read: { name: tokens, json: usage.total_tokens } or { name, header }'],
  ['tools[].upstream.forwardHeaders', 'a list of header names an agent may set, e.g. [idempotency-key]'],
  ['tools[].upstream.timeoutMs', 'milliseconds, 100 to 300000, e.g. 30000'],
  ['tools[].upstream.maxRequestBytes', 'bytes, 1 to 6291456 (6 MiB)'],
  ['tools[].upstream.maxResponseBytes', 'bytes, 1 to 104857600 (100 MiB)'],
  ['tools[].upstream.allowPathParameters', 'true or false'],
  ['roles', 'a list of role versions'],
  ['roles[]', 'a role version: { id, version, actions, approvedBy }'],
  ['roles[].id', 'a role id, e.g. support-triage'],
  ['roles[].version', 'a whole number from 1, e.g. 1'],
  ['roles[].actions', 'a list of tool:verb, e.g. [tickets:read, tickets:reply]'],
  ['roles[].approvedBy', 'who approved this version, e.g. alice@example.com'],
  ['identities', 'a list of identities'],
  ['identities[]', 'an identity: { id, owner, purpose }'],
  ['identities[].id', 'class/env, e.g. support-triage/prod'],
  ['identities[].environment', "the id's environment, e.g. prod"],
  ['identities[].owner', 'the team or person answerable for it, e.g. team-support'],
  ['identities[].purpose', 'what it is for, in words, e.g. triage incoming tickets'],
  ['identities[].status', 'active or suspended'],
  ['grants', 'a list of grants'],
  ['grants[]', 'a grant: { identity, role, tenants, quotaBucket }'],
  ['grants[].id', 'a grant id, e.g. support-triage@2-eu'],
  ['grants[].identity', 'an identity id, e.g. support-triage/prod'],
  ['grants[].role', 'role@version, e.g. support-triage@1'],
  ['grants[].tenants', 'a list of tenants, e.g. [acme, globex], or ["*"] for every tenant'],
  ['grants[].environment', "the identity's environment, e.g. prod"],
  ['grants[].maxTtlSeconds', 'seconds, 30 to 43200, e.g. 900'],
  ['grants[].kinds', 'a list of credential kinds, jwt and sts, e.g. [jwt]'],
  ['grants[].quotaBucket', 'the quota bucket the grant draws on, e.g. support-llm'],
  ['grants[].budgetOwner', 'whose budget burns, e.g. team-support'],
  ['principals', 'a list of principals'],
  ['principals[]', 'a principal: { id, kind }'],
  ['principals[].id', 'a principal id, e.g. triage-worker-1'],
  ['principals[].identity', 'the identity it acts as, e.g. support-triage/prod'],
  ['principals[].spawns', 'a list of agent classes, class/env, e.g. [support-triage/prod]'],
  ['principals[].apiKey', 'an API key, lk_ followed by 16 to 128 URL-safe characters'],
  ['principals[].arn', 'an IAM or STS principal ARN, e.g. arn:aws:iam::123456789012:user/oncall'],
  ['principals[].iamRole', 'an IAM role ARN, e.g. arn:aws:iam::123456789012:role/support-triage-task'],
  ['quotas', 'a list of quotas'],
  ['quotas[]', 'a quota: { bucket, windowSeconds, requests or units }'],
  ['quotas[].bucket', 'a quota bucket name, e.g. support-llm'],
  ['quotas[].windowSeconds', 'seconds, from 60 (a minute) to 2678400 (31 days), e.g. 3600'],
  ['quotas[].requests', 'calls per window, a whole number from 1, e.g. 5000'],
  ['quotas[].units', 'usage units per window, a whole number from 1, e.g. 2000000'],
]);

/** The maps whose keys the file chooses (verbs): any key reads the same hint. */
const FREE_KEYS = /\.(actions|permissions|routes)\.[^.[]+/g;

/** `grants[3].maxTtlSeconds` → `grants[].maxTtlSeconds`; `tools[0].actions.read` → `tools[].actions.*`. */
function hintKey(field: string): string {
  return field.replace(/\[\d+\]/g, '[]').replace(FREE_KEYS, '.$1.*');
}

/** What the policy file's field expects, for a person, if this page knows the field. */
export function policyFieldHint(field: string): string | undefined {
  return HINTS.get(hintKey(field));
}

/** A node of the JSON Schema, as far as finding an object's fields needs. */
interface SchemaNode {
  readonly properties?: Record<string, SchemaNode>;
  readonly items?: SchemaNode;
  readonly additionalProperties?: SchemaNode | boolean;
}

let documentSchema: SchemaNode | undefined;

/**
 * The fields the object at `path` of a policy file may have, read from the JSON Schema of the
 * document schema (the one editors use), so the list cannot drift from what is accepted.
 */
export function policyFieldsOf(path: readonly PropertyKey[]): readonly string[] | undefined {
  documentSchema ??= z.toJSONSchema(PolicyDocumentSchema, { io: 'input' }) as SchemaNode;
  let node: SchemaNode | undefined = documentSchema;
  for (const part of path) {
    if (node === undefined) return undefined;
    if (typeof part === 'number') node = node.items;
    else node = node.properties?.[String(part)] ?? (typeof node.additionalProperties === 'object' ? node.additionalProperties : undefined);
  }
  return node?.properties === undefined ? undefined : Object.keys(node.properties);
}

/** The hints `parsePolicyDocument` gives `parseWith`. */
export const POLICY_HINTS: FieldHints = { expects: policyFieldHint, fieldsOf: policyFieldsOf };
