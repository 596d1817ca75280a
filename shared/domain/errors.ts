/**
 * One errors module (the catalogue: docs/errors.md): a base class with a stable `code`, and one factory per code.
 * Callers tell errors apart by `code`, never by message. Internal detail stays in `cause`,
 * which is never serialized onto the wire.
 */

export const ERROR_CATALOG = {
  invalid_request: { status: 400, retryable: false },
  unauthenticated: { status: 401, retryable: false },
  not_granted: { status: 403, retryable: false },
  identity_revoked: { status: 403, retryable: false },
  lane_revoked: { status: 403, retryable: false },
  tenant_revoked: { status: 403, retryable: false },
  tool_disabled: { status: 403, retryable: false },
  kind_not_allowed: { status: 403, retryable: false },
  forbidden: { status: 403, retryable: false },
  not_found: { status: 404, retryable: false },
  method_not_allowed: { status: 405, retryable: false },
  conflict: { status: 409, retryable: false },
  request_too_large: { status: 413, retryable: false },
  unsupported_media_type: { status: 415, retryable: false },
  rate_limited: { status: 429, retryable: true },
  quota_exhausted: { status: 429, retryable: true },
  issuer_unavailable: { status: 503, retryable: true },
  // The broker (issue 6) is a resource server too: a credential it cannot accept is refused
  // with the verifier's codes (docs/errors.md), and the upstream's failures have codes of their own.
  token_malformed: { status: 401, retryable: false },
  token_expired: { status: 401, retryable: false },
  token_not_yet_valid: { status: 401, retryable: false },
  signature_invalid: { status: 401, retryable: false },
  unknown_key: { status: 401, retryable: false },
  wrong_issuer: { status: 401, retryable: false },
  wrong_audience: { status: 401, retryable: false },
  credential_revoked: { status: 401, retryable: false },
  insufficient_scope: { status: 403, retryable: false },
  /** The method and path match no pattern the provider declares. */
  route_not_allowed: { status: 403, retryable: false },
  /** No key is set for the provider, or the upstream refused the broker's key (401/403): the broker's key is at fault, not the agent's credential. */
  upstream_auth_failed: { status: 502, retryable: false },
  /** The upstream could not be reached, broke off, or answered more than the broker passes on. */
  upstream_failed: { status: 502, retryable: true },
  /** Repeated upstream 401s opened the lane's or the provider's circuit (`circuit`); it is tried again after `Retry-After`. */
  upstream_circuit_open: { status: 503, retryable: true },
  upstream_timeout: { status: 504, retryable: true },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/** Extra machine-readable fields carried next to `code` (e.g. `field`, `maxTtlSeconds`). */
export type ErrorContext = Readonly<Record<string, string | number | boolean | readonly string[] | undefined>>;

export class LanyardError extends Error {
  override readonly name = 'LanyardError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly context: ErrorContext;
  /** Seconds, for 429 and 503 answers (`Retry-After`). */
  readonly retryAfter?: number;

  constructor(code: ErrorCode, message: string, options: { context?: ErrorContext; cause?: unknown; retryAfter?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERROR_CATALOG[code].status;
    this.retryable = ERROR_CATALOG[code].retryable;
    this.context = options.context ?? {};
    if (options.retryAfter !== undefined) this.retryAfter = options.retryAfter;
  }

  /** Only 4xx messages are shown as written; a 5xx says nothing about internals. */
  get expose(): boolean {
    return this.status < 500;
  }
}

export function isLanyardError(error: unknown): error is LanyardError {
  return error instanceof LanyardError;
}

export const invalidRequest = (field: string, message: string, context: ErrorContext = {}) =>
  new LanyardError('invalid_request', message, { context: { field, ...context } });

/** Deliberately says nothing: an unknown caller learns nothing about why. */
export const unauthenticated = () => new LanyardError('unauthenticated', 'authentication required');

export const forbidden = (message: string) => new LanyardError('forbidden', message);

export const notGranted = (message: string, context: ErrorContext = {}) =>
  new LanyardError('not_granted', message, { context });

export const issuerUnavailable = (cause: unknown) =>
  new LanyardError('issuer_unavailable', 'the issuer cannot decide right now; retry with backoff', {
    cause,
    retryAfter: 1,
  });

export const notFound = (what: string) => new LanyardError('not_found', `${what} not found`);

export const conflict = (message: string, context: ErrorContext = {}) =>
  new LanyardError('conflict', message, { context });

/** Wraps any foreign failure of a dependency so the issuer fails closed. */
export function failClosed(error: unknown): LanyardError {
  return isLanyardError(error) ? error : issuerUnavailable(error);
}
