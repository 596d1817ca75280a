/**
 * The one place a verification failure becomes an HTTP answer (Node `http` and middy both
 * use it).
 *
 * RFC 6750 §3: a 401 carries `WWW-Authenticate: Bearer` with `error="invalid_token"`; a 403
 * carries `error="insufficient_scope"` and the `scope` needed; a request with no credentials
 * at all gets the bare challenge, without an error code (§3.1). `lanyard_code` is our
 * extension attribute (§3 allows them) carrying the stable code. A `verifier_unavailable`
 * is not an authentication challenge: 503 with `Retry-After`. Nothing from the token ever
 * reaches the headers or the body, and a foreign error is answered as `verifier_unavailable`
 * without its message (never a stack trace on the wire).
 *
 * `bearerChallenge` is the one builder of that header: the issuer's own answers (its 401s and
 * the credential broker's token refusals) import it from `@lanyard/sdk/challenge`, so an
 * agent's `lanyardFetch` reads the same challenge from a resource server and from the broker.
 */
import { VerificationError, isTokenErrorCode } from '../errors.ts';

export interface ErrorResponse {
  readonly status: 401 | 403 | 503;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** The attributes of one RFC 6750 §3 challenge; none of them for the bare one (no credentials at all). */
export interface BearerChallenge {
  /** `invalid_token` (401) or `insufficient_scope` (403). */
  readonly error?: 'invalid_token' | 'insufficient_scope';
  /** A fixed sentence; characters outside RFC 6750's set are dropped. */
  readonly description?: string;
  /** The stable Lanyard code (`lanyard_code`, an extension attribute). */
  readonly code?: string;
  /** The scope the request needed, space-separated. */
  readonly scope?: string;
}

const REALM = 'lanyard';
const RETRY_AFTER_SECONDS = '5';

export function toErrorResponse(error: unknown): ErrorResponse {
  const failure =
    error instanceof VerificationError
      ? error
      : new VerificationError('verifier_unavailable', 'the token could not be checked', {}, { cause: error });
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'cache-control': 'no-store',
  };
  if (failure.status === 503) {
    headers['retry-after'] = RETRY_AFTER_SECONDS;
  } else if (failure.context.missing) {
    headers['www-authenticate'] = bearerChallenge();
  } else {
    const scope = failure.code === 'insufficient_scope' ? requiredScope(failure.context.expected) : undefined;
    headers['www-authenticate'] = bearerChallenge({
      error: failure.status === 403 ? 'insufficient_scope' : 'invalid_token',
      description: failure.message,
      code: failure.code,
      ...(scope && { scope }),
    });
  }
  return {
    status: failure.status,
    headers,
    body: JSON.stringify({ error: { code: failure.code, message: failure.message } }),
  };
}

/** The `WWW-Authenticate` value: `Bearer realm="lanyard"`, then the attributes given, in RFC 6750's order. */
export function bearerChallenge(challenge: BearerChallenge = {}): string {
  const attributes = [`realm="${REALM}"`];
  if (challenge.error) attributes.push(`error="${challenge.error}"`);
  if (challenge.description !== undefined) attributes.push(`error_description="${quotable(challenge.description)}"`);
  if (challenge.code !== undefined) attributes.push(`lanyard_code="${quotable(challenge.code)}"`);
  if (challenge.scope) attributes.push(`scope="${quotable(challenge.scope)}"`);
  return `Bearer ${attributes.join(', ')}`;
}

/**
 * The RFC 6750 error a refusal with `code` carries: `invalid_token` for a token the resource
 * server cannot accept (the verifier's 401 codes), `insufficient_scope` for a scope it lacks,
 * none for anything else (the refusal is not about the token).
 */
export function challengeErrorFor(code: string): BearerChallenge['error'] {
  if (isTokenErrorCode(code)) return 'invalid_token';
  return code === 'insufficient_scope' ? 'insufficient_scope' : undefined;
}

/** RFC 6750 §3: error_description and scope use %x20-21 / %x23-5B / %x5D-7E only. */
function quotable(text: string): string {
  return text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '');
}

function requiredScope(expected: unknown): string | undefined {
  return Array.isArray(expected) && expected.every((value) => typeof value === 'string') ? expected.join(' ') : undefined;
}
