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

/** Zod's message for a refinement given none: it says nothing a person can act on. */
const ZOD_BARE_MESSAGE = 'Invalid input';

/** What a schema can tell a person beyond its types; a schema with no hints gets the words for the bare type. */
export interface FieldHints {
  /** What the field holds, with an example where one helps (`seconds, 30 to 43200, e.g. 900`), by the field as `fieldPath` writes it. */
  expects(field: string): string | undefined;
  /** The fields the object at `path` may have, to point a misspelt one at the right name. */
  fieldsOf?(path: readonly PropertyKey[]): readonly string[] | undefined;
}

/** A name as a typo or another convention may write it: `quota_bucket`, `QuotaBucket` and `quotaBucket` are one. */
const looseName = (name: string): string => name.toLowerCase().replace(/[-_]/g, '');

/** Edits (insert, delete, replace) from `a` to `b`: what separates a typo from its field. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/** The allowed field a misspelt one most likely meant: the same name in another case or convention, or one or two edits away. */
function closestField(key: string, fields: readonly string[]): string | undefined {
  const loose = looseName(key);
  const ranked = fields.map((field) => ({ field, distance: editDistance(loose, looseName(field)) })).sort((a, b) => a.distance - b.distance);
  const best = ranked[0];
  return best !== undefined && best.distance <= Math.min(2, Math.floor(loose.length / 3)) ? best.field : undefined;
}

/** `unknown field: tools[0].enable; did you mean enabled? (allowed here: id, audience, …)`. */
function unknownFieldMessage(field: string, key: string, fields: readonly string[] | undefined): string {
  if (fields === undefined || fields.length === 0) return `unknown field: ${field}`;
  const closest = closestField(key, fields);
  return `unknown field: ${field}${closest === undefined ? '' : `; did you mean ${closest}?`} (allowed here: ${fields.join(', ')})`;
}

/** A value's type as a person names it; never the value, which may be a secret. */
function typeWords(value: unknown): string {
  if (value === null) return 'empty (null)';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return 'text';
    case 'number':
      return Number.isInteger(value) ? 'a whole number' : 'a number';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      return 'a map of fields';
    default:
      return `a ${typeof value}`;
  }
}

/** What zod's `expected` type is, in words. */
const EXPECTED_WORDS: Readonly<Record<string, string>> = {
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a map of fields',
  record: 'a map',
  nan: 'a number',
};

/** `read, write or admin`: the values an enum or literal accepts, as a sentence. */
function oneOf(values: readonly unknown[]): string {
  const words = values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
  if (words.length === 1) return words[0]!;
  return `one of ${words.slice(0, -1).join(', ')} or ${words.at(-1)!}`;
}

/** The bound a `too_small` / `too_big` issue states: `at least 30`, `at most 128 characters`, `at least one item`. */
function boundWords(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  const small = issue.code === 'too_small';
  const limit = Number(small ? issue.minimum : issue.maximum);
  const inclusive = issue.inclusive !== false;
  if (issue.origin === 'string') {
    if (small && limit === 1) return 'may not be empty';
    return `${small ? 'at least' : 'at most'} ${limit} characters`;
  }
  if (issue.origin === 'array' || issue.origin === 'set') {
    if (small && limit === 1) return 'needs at least one item';
    return `${small ? 'at least' : 'at most'} ${limit} items`;
  }
  if (!inclusive) return `${small ? 'greater' : 'less'} than ${limit}`;
  return `${small ? 'at least' : 'at most'} ${limit}`;
}

/** `rule (hint)`, or the rule alone. */
const withHint = (rule: string, hint: string | undefined): string => (hint === undefined ? rule : `${rule} (${hint})`);

/** The value the input holds at `path`, to say what was found there (its type, never the value). */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const part of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return value;
}

/**
 * The message of one issue, as a person reads it: never a raw regex and never zod's own
 * wording ("Invalid input: expected string, received undefined"). It names what is wrong and
 * what is expected, with the field's hint when the schema has one.
 */
function humanMessage(issue: z.core.$ZodIssue, found: unknown, hint: string | undefined): string {
  switch (issue.code) {
    case 'invalid_format':
      if (issue.format === 'regex' && ZOD_REGEX_MESSAGE.test(issue.message)) return PATTERN_MESSAGES.get(issue.pattern ?? '') ?? withHint('not in the expected format', hint);
      if (issue.format === 'url' && issue.message === 'Invalid URL') return withHint('not a URL', hint ?? 'e.g. https://tickets.example.internal');
      return issue.message.startsWith('Invalid ') ? withHint(`not a valid ${issue.format}`, hint) : issue.message;
    case 'invalid_key': {
      const inner = issue.issues[0];
      return inner === undefined ? 'this key is not allowed here' : `this key is not allowed here: ${humanMessage(inner, undefined, undefined)}`;
    }
    case 'invalid_type': {
      const expected = hint ?? EXPECTED_WORDS[issue.expected] ?? issue.expected;
      if (found === undefined) return `required (${expected})`;
      if (issue.expected === 'int') return withHint('not a whole number', hint);
      return `this is ${typeWords(found)}; expected ${expected}`;
    }
    case 'invalid_value':
      if (found === undefined) return `required (${oneOf(issue.values)})`;
      return issue.values.length === 1 ? `may only be ${oneOf(issue.values)}, or left out` : oneOf(issue.values);
    case 'too_small':
    case 'too_big':
      return withHint(boundWords(issue), hint);
    case 'not_multiple_of':
      return withHint(`a multiple of ${String(issue.divisor)}`, hint);
    case 'invalid_union':
      return withHint('none of the accepted forms', hint);
    case 'custom':
      return issue.message === ZOD_BARE_MESSAGE ? withHint('not valid here', hint) : issue.message;
    default:
      return issue.message;
  }
}

export interface ParseFailure {
  readonly error: LanyardError;
  /** True when the body was well-formed but named fields the contract does not have. */
  readonly onlyUnknownFields: boolean;
}

/**
 * The issue to report: the first, unless it is a missing field of an object that also has an
 * unknown one. Then the unknown field is most likely the missing one misspelt
 * (`quota_bucket` for `quotaBucket`), and naming it says what to fix.
 */
function reportedIssue(issues: readonly z.core.$ZodIssue[], input: unknown): z.core.$ZodIssue {
  const first = issues[0]!;
  if (first.code === 'unrecognized_keys' || first.path.length === 0 || valueAt(input, first.path) !== undefined) return first;
  const parent = first.path.slice(0, -1);
  const unknown = issues.find((i) => i.code === 'unrecognized_keys' && i.path.length === parent.length && i.path.every((part, n) => part === parent[n]));
  return unknown ?? first;
}

/** Parses `input` or returns the `invalid_request` naming the first field at fault and what it expects. */
export function parseWith<T>(schema: z.ZodType<T>, input: unknown, hints?: FieldHints): { ok: true; value: T } | { ok: false; failure: ParseFailure } {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  const issues = result.error.issues;
  const first = reportedIssue(issues, input);
  const onlyUnknownFields = issues.every((i) => i.code === 'unrecognized_keys');
  if (first.code === 'unrecognized_keys') {
    const key = first.keys[0] ?? '';
    const field = fieldPath([...first.path, key]);
    return { ok: false, failure: { onlyUnknownFields, error: invalidRequest(field, unknownFieldMessage(field, key, hints?.fieldsOf?.(first.path))) } };
  }
  const field = fieldPath(first.path);
  const message = humanMessage(first, valueAt(input, first.path), hints?.expects(field));
  return { ok: false, failure: { onlyUnknownFields, error: invalidRequest(field, `${field}: ${message}`) } };
}
