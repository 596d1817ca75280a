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
 */
import { VerificationError } from '../errors.ts';

export interface ErrorResponse {
  readonly status: 401 | 403 | 503;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
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
    headers['www-authenticate'] = `Bearer realm="${REALM}"`;
  } else {
    const attributes = [
      `realm="${REALM}"`,
      `error="${failure.status === 403 ? 'insufficient_scope' : 'invalid_token'}"`,
      `error_description="${quotable(failure.message)}"`,
      `lanyard_code="${failure.code}"`,
    ];
    const scope = failure.code === 'insufficient_scope' ? requiredScope(failure.context.expected) : undefined;
    if (scope) attributes.push(`scope="${quotable(scope)}"`);
    headers['www-authenticate'] = `Bearer ${attributes.join(', ')}`;
  }
  return {
    status: failure.status,
    headers,
    body: JSON.stringify({ error: { code: failure.code, message: failure.message } }),
  };
}

/** RFC 6750 §3: error_description and scope use %x20-21 / %x23-5B / %x5D-7E only. */
function quotable(text: string): string {
  return text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '');
}

function requiredScope(expected: unknown): string | undefined {
  return Array.isArray(expected) && expected.every((value) => typeof value === 'string') ? expected.join(' ') : undefined;
}
