/**
 * Wire schemas (docs/http.md). Input is `unknown` until one of these has parsed it; objects are
 * `.strict()`, so a field the contract does not have is refused, never ignored.
 */
import * as z from 'zod';
import { CREDENTIAL_KINDS, ENVIRONMENT_ID, IDENTITY_ID, PRINCIPAL_ID, ROLE_ID, TENANT_ID, TOOL_ID, VERB } from './model.ts';
import { invalidRequest, type LanyardError } from './errors.ts';

export const MAX_ACTIONS = 32;

export const TaskSchema = z
  .object({
    id: z.string().min(1).max(128),
    purpose: z.string().max(256).optional(),
  })
  .strict();

export const CredentialRequestSchema = z
  .object({
    tool: z.string().regex(TOOL_ID, 'a tool id: lower-case letters, digits, ., _ and -'),
    actions: z.array(z.string().min(1).max(128)).min(1).max(MAX_ACTIONS),
    tenant: z.string().regex(TENANT_ID, 'a tenant id: letters, digits, ., _ and -, or *').optional(),
    kind: z.enum(CREDENTIAL_KINDS).optional(),
    ttlSeconds: z.number().int().min(30).max(43_200).optional(),
    task: TaskSchema.optional(),
    onBehalfOf: z.string().min(1).max(256).optional(),
  })
  .strict();

export type CredentialRequest = z.infer<typeof CredentialRequestSchema>;

/** `['actions', 3]` → `actions[3]`: the field at fault, as a client would write it. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? 'body' : out;
}

/**
 * What each identifier pattern of the domain means, for a person. A regex that fails without a
 * message of its own is described from here (keyed by the pattern as zod reports it), and a
 * pattern not listed gets a plain sentence: a raw regex never reaches an error message.
 * TOOL_ID, VERB and ROLE_ID are one pattern, so they share a sentence; the field names which.
 */
const PATTERN_MESSAGES: ReadonlyMap<string, string> = new Map([
  [String(TOOL_ID), 'a name of lower-case letters, digits, ., _ and - (starting with a letter or digit, at most 63 characters)'],
  [String(VERB), 'a name of lower-case letters, digits, ., _ and - (starting with a letter or digit, at most 63 characters)'],
  [String(ROLE_ID), 'a name of lower-case letters, digits, ., _ and - (starting with a letter or digit, at most 63 characters)'],
  [String(TENANT_ID), 'a tenant id: letters, digits, ., _ and - (starting with a letter or digit, at most 63 characters), or * for every tenant'],
  [String(ENVIRONMENT_ID), 'an environment: lower-case letters, digits, ., _ and - (starting with a letter or digit, at most 31 characters), e.g. prod'],
  [String(IDENTITY_ID), 'an identity id is class/env, lower-case letters, digits, ., _ and -, e.g. support-triage/prod (an instance adds #<id>)'],
  [String(PRINCIPAL_ID), 'a principal id: letters, digits and _ . @ + = , - (starting with a letter or digit, at most 128 characters)'],
]);

/** What a pattern of the domain means, for a person (the JSON Schema's `description`), if it is one of the domain's. */
export function describePattern(pattern: RegExp | string): string | undefined {
  return PATTERN_MESSAGES.get(typeof pattern === 'string' ? `/${pattern}/` : String(pattern));
}

/** Zod's own message for a regex names the regex: those are replaced, messages a schema wrote are kept. */
const ZOD_REGEX_MESSAGE = /must match pattern/;

/** The message of one issue, as a person reads it: never a raw regex. */
function humanMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_format' && issue.format === 'regex' && ZOD_REGEX_MESSAGE.test(issue.message)) {
    return PATTERN_MESSAGES.get(issue.pattern ?? '') ?? 'not in the expected format';
  }
  if (issue.code === 'invalid_key') {
    const inner = issue.issues[0];
    return inner === undefined ? 'this key is not allowed here' : `this key is not allowed here: ${humanMessage(inner)}`;
  }
  return issue.message;
}

export interface ParseFailure {
  readonly error: LanyardError;
  /** True when the body was well-formed but named fields the contract does not have. */
  readonly onlyUnknownFields: boolean;
}

/** Parses `input` or returns the `invalid_request` naming the first field at fault. */
export function parseWith<T>(schema: z.ZodType<T>, input: unknown): { ok: true; value: T } | { ok: false; failure: ParseFailure } {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  const issues = result.error.issues;
  const first = issues[0]!;
  const onlyUnknownFields = issues.every((i) => i.code === 'unrecognized_keys');
  if (first.code === 'unrecognized_keys') {
    const key = first.keys[0] ?? '';
    const field = fieldPath([...first.path, key]);
    return { ok: false, failure: { onlyUnknownFields, error: invalidRequest(field, `unknown field: ${field}`) } };
  }
  const field = fieldPath(first.path);
  return { ok: false, failure: { onlyUnknownFields, error: invalidRequest(field, `${field}: ${humanMessage(first)}`) } };
}
