/**
 * The issuer's answer to `POST /v1/credentials` (or `/v1/instance/credentials`) as a credential
 * source reads it: a `201` credential (tolerant reader: the issuer may add fields), or a typed
 * {@link IssuanceError} for anything else. The issuer's own codes pass through; `quota_exhausted`
 * is `rate_limited` to an agent; a code this SDK does not know is mapped by status and kept in
 * `issuerCode`; API Gateway's bare 403 to a SigV4-signed request is an auth failure.
 */
import * as z from 'zod';
import { IssuanceError, ISSUER_ANSWER_CODES } from './errors.ts';
import type { IssuanceErrorCode } from './errors.ts';
import { parseJsonObject } from './lib/encoding.ts';
import type { Credential } from './credential-source.ts';

/** The issuer's codes a source passes through; any other is mapped by status (`issuerCode` keeps it). */
const KNOWN_CODES: ReadonlySet<string> = new Set<string>(ISSUER_ANSWER_CODES);
const MAX_ANSWER_CHARS = 64 * 1024;

// Tolerant reader: the issuer may add fields; the ones used here are typed.
const credentialSchema = z
  .object({
    credentialId: z.string().min(1),
    kind: z.enum(['jwt', 'sts']),
    token: z.string().optional(),
    aws: z.object({ accessKeyId: z.string(), secretAccessKey: z.string(), sessionToken: z.string(), expiration: z.string() }).optional(),
    tokenType: z.string(),
    identity: z.string(),
    lane: z.string(),
    tool: z.string(),
    tenant: z.string(),
    actions: z.array(z.string()),
    audience: z.string(),
    issuedAt: z.string().refine((v) => !Number.isNaN(Date.parse(v))),
    expiresAt: z.string().refine((v) => !Number.isNaN(Date.parse(v))),
    refreshAt: z.string().refine((v) => !Number.isNaN(Date.parse(v))),
    refreshToken: z.string().optional(),
  })
  .passthrough();
const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string().optional(), requestId: z.string().optional() }) });

/** A credential the caller hands the source (`initial`), checked like an answer. */
export function parseCredential(value: unknown): Credential {
  return credentialSchema.parse(value);
}

/** What the reader needs to know of the request: the lane (for context), whether it was SigV4-signed, and the time (for `Retry-After`). */
export interface AnswerContext {
  readonly lane?: string;
  readonly signed: boolean;
  readonly now: number;
}

/** The credential of a `201`, or throws the typed refusal. */
export function readAnswer(response: Response, text: string, request: AnswerContext): Credential {
  const { lane, signed: signedRequest, now } = request;
  const context = { status: response.status, ...(lane && { lane }) };
  if (response.status === 201) {
    const parsed = text.length <= MAX_ANSWER_CHARS ? safeParse(text, credentialSchema) : undefined;
    if (!parsed) throw new IssuanceError('issuer_unavailable', 'the issuer answered with something that is not a credential', context);
    return parsed;
  }
  const error = text.length <= MAX_ANSWER_CHARS ? safeParse(text, errorSchema)?.error : undefined;
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), now);
  const known = error && KNOWN_CODES.has(error.code) ? (error.code as IssuanceErrorCode) : undefined;
  // API Gateway's IAM authorizer refuses a bad or stale signature with a bare 403
  // (`{ message }`, no Lanyard code): an auth failure, never a lost authority.
  const gatewayRefusal = signedRequest && response.status === 403 && error === undefined;
  const code: IssuanceErrorCode =
    error?.code === 'quota_exhausted' ? 'rate_limited' : gatewayRefusal ? 'unauthenticated' : known ?? codeForStatus(response.status);
  const fullContext = {
    ...context,
    ...(error?.requestId && { requestId: error.requestId }),
    ...(error && !known && error.code !== 'quota_exhausted' && { issuerCode: error.code }),
  };
  const message = gatewayRefusal ? `the API gateway refused the request's AWS signature: ${gatewayMessage(text)}` : error?.message ?? `the issuer answered HTTP ${response.status}`;
  throw new IssuanceError(code, message, fullContext, retryAfterMs === undefined ? undefined : { retryAfterMs });
}

function codeForStatus(status: number): IssuanceErrorCode {
  if (status === 401) return 'unauthenticated';
  if (status === 403) return 'forbidden';
  if (status === 429) return 'rate_limited';
  if (status >= 500 || status < 400) return 'issuer_unavailable';
  return 'invalid_request';
}

/** RFC 9110 §10.2.3: delay-seconds or an HTTP-date. */
function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d{1,7}$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** API Gateway's own refusal text (`{ "message": "…" }`), cut short. */
function gatewayMessage(text: string): string {
  const message = text.length <= MAX_ANSWER_CHARS ? safeParse(text, z.object({ message: z.string() }))?.message : undefined;
  return message === undefined ? 'HTTP 403' : message.slice(0, 200);
}

function safeParse<T>(text: string, schema: z.ZodType<T>): T | undefined {
  const value = parseJsonObject(new TextEncoder().encode(text));
  const result = value === undefined ? undefined : schema.safeParse(value);
  return result?.success ? result.data : undefined;
}
