/**
 * Wire schemas (DESIGN §6). Input is `unknown` until one of these has parsed it; objects are
 * `.strict()`, so a field the contract does not have is refused, never ignored.
 */
import { z } from 'zod';
import { CREDENTIAL_KINDS, TENANT_ID, TOOL_ID } from './domain.ts';
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
  return { ok: false, failure: { onlyUnknownFields, error: invalidRequest(field, `${field}: ${first.message}`) } };
}
