/**
 * The one errors module of the verifier SDK: a single class with a stable `code`.
 *
 * Callers tell failures apart by `code`, never by `message`. Messages are short, fixed
 * sentences: they never contain the token, and never echo claim values back (those live in
 * `context`, which is for logs, not for the wire).
 */

/** Every reason a verifier refuses a token. Stable: adding one is a breaking change. */
export type VerificationErrorCode =
  | 'token_malformed'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'signature_invalid'
  | 'unknown_key'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'credential_revoked'
  | 'insufficient_scope'
  | 'verifier_unavailable';

/** What a revocation matched: its target type and the full target key (`lane:<lane id>`). */
export interface RevokedTarget {
  readonly type: 'credential' | 'lane' | 'identity' | 'tenant' | 'tool' | 'key';
  readonly key: string;
}

/** Extra, typed detail about a refusal. Meant for logs and callers, never for an unknown client. */
export interface VerificationErrorContext {
  /** For `credential_revoked`: which revocation killed the token. */
  readonly revokedTarget?: RevokedTarget;
  /** What the verifier expected (issuer, audience, algorithm, actions …). */
  readonly expected?: unknown;
  /** What the token carried. */
  readonly actual?: unknown;
  /** Set when the request carried no bearer token at all (RFC 6750 §3.1: no error code then). */
  readonly missing?: true;
}

/**
 * HTTP status per code. RFC 6750 §3.1: `invalid_token` → 401, `insufficient_scope` → 403.
 * A revoked credential is an invalid token (401). `verifier_unavailable` is not the caller's
 * fault: the verifier cannot check the token (JWKS or revocation feed unreachable) and fails
 * closed, so it answers 503, which a client may retry.
 */
const STATUS: Readonly<Record<VerificationErrorCode, 401 | 403 | 503>> = {
  token_malformed: 401,
  token_expired: 401,
  token_not_yet_valid: 401,
  signature_invalid: 401,
  unknown_key: 401,
  wrong_issuer: 401,
  wrong_audience: 401,
  credential_revoked: 401,
  insufficient_scope: 403,
  verifier_unavailable: 503,
};

/** Every verifier code, in the order of the type (the one list: the issuer's catalogue and the broker are checked against it). */
export const VERIFICATION_ERROR_CODES = Object.keys(STATUS) as readonly VerificationErrorCode[];

/** The codes that refuse the token itself (401, RFC 6750 `invalid_token`). */
export const TOKEN_ERROR_CODES: readonly VerificationErrorCode[] = VERIFICATION_ERROR_CODES.filter((code) => STATUS[code] === 401);

/** True when `code` refuses the token itself (a 401 `invalid_token` code of the verifier). */
export function isTokenErrorCode(code: string): code is VerificationErrorCode {
  return (TOKEN_ERROR_CODES as readonly string[]).includes(code);
}

/**
 * A token was refused, or could not be checked.
 *
 * @example
 * ```ts
 * try {
 *   await verifier.verify(token, { action: 'tickets:read' });
 * } catch (error) {
 *   if (error instanceof VerificationError && error.code === 'credential_revoked') {
 *     console.warn('revoked', error.context.revokedTarget);
 *   }
 * }
 * ```
 */
export class VerificationError extends Error {
  override readonly name = 'VerificationError';
  /** Stable machine-readable reason. */
  readonly code: VerificationErrorCode;
  /** HTTP status a resource server should answer with. */
  readonly status: 401 | 403 | 503;
  /** Typed detail (revoked target, expected/actual). Never contains the token. */
  readonly context: VerificationErrorContext;

  constructor(
    code: VerificationErrorCode,
    message: string,
    context: VerificationErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
    this.status = STATUS[code];
    this.context = context;
  }
}

/** True when `error` is a {@link VerificationError}, optionally with the given code. */
export function isVerificationError(error: unknown, code?: VerificationErrorCode): error is VerificationError {
  return error instanceof VerificationError && (code === undefined || error.code === code);
}

// ---------------------------------------------------------------------------------------------
// The agent side: getting credentials from the issuer (credential-source.ts).

/**
 * Why a credential source could not hand out a credential. Stable: adding one is a breaking
 * change. The issuer's own codes (docs/errors.md) pass through as they are; `circuit_open`,
 * `source_closed` and `aws_credentials_unavailable` (IAM auth: no AWS credentials to sign
 * with) are the source's own.
 */
export type IssuanceErrorCode =
  | 'invalid_request'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_granted'
  | 'identity_revoked'
  | 'lane_revoked'
  | 'tenant_revoked'
  | 'tool_disabled'
  | 'kind_not_allowed'
  | 'credential_revoked'
  | 'rate_limited'
  | 'issuer_unavailable'
  | 'aws_credentials_unavailable'
  | 'circuit_open'
  | 'source_closed';

/** Every issuance code once; a record over the type, so the compiler refuses a missing or invented one. */
const ISSUANCE_CODES: Readonly<Record<IssuanceErrorCode, 'issuer' | 'source'>> = {
  invalid_request: 'issuer',
  unauthenticated: 'issuer',
  forbidden: 'issuer',
  not_granted: 'issuer',
  identity_revoked: 'issuer',
  lane_revoked: 'issuer',
  tenant_revoked: 'issuer',
  tool_disabled: 'issuer',
  kind_not_allowed: 'issuer',
  credential_revoked: 'issuer',
  rate_limited: 'issuer',
  issuer_unavailable: 'issuer',
  aws_credentials_unavailable: 'source',
  circuit_open: 'source',
  source_closed: 'source',
};

/** Every code a credential source throws. */
export const ISSUANCE_ERROR_CODES = Object.keys(ISSUANCE_CODES) as readonly IssuanceErrorCode[];

/** The codes the issuer itself answers with and a source passes through as they are (the rest are the source's own). */
export const ISSUER_ANSWER_CODES: readonly IssuanceErrorCode[] = ISSUANCE_ERROR_CODES.filter((code) => ISSUANCE_CODES[code] === 'issuer');

/** Extra, typed detail about a refusal (never a token or a key). */
export interface IssuanceErrorContext {
  /** The issuer's request id, for its audit log. */
  readonly requestId?: string;
  /** The lane the source serves, when it is known. */
  readonly lane?: string;
  /** The HTTP status the issuer answered with, if it answered. */
  readonly status?: number;
  /** The issuer's code when it is not one this SDK knows (it is then mapped by status). */
  readonly issuerCode?: string;
}

/**
 * A credential could not be obtained.
 *
 * @example
 * ```ts
 * try {
 *   await source.get();
 * } catch (error) {
 *   if (error instanceof IssuanceError && error.code === 'rate_limited') await sleep(error.retryAfterMs ?? 1000);
 * }
 * ```
 */
export class IssuanceError extends Error {
  override readonly name = 'IssuanceError';
  readonly code: IssuanceErrorCode;
  readonly context: IssuanceErrorContext;
  /** For `rate_limited`, `issuer_unavailable` and `aws_credentials_unavailable`: when the source will ask the issuer again. */
  readonly retryAfterMs?: number;

  constructor(code: IssuanceErrorCode, message: string, context: IssuanceErrorContext = {}, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.context = context;
    if (options?.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/** True when `error` is an {@link IssuanceError}, optionally with the given code. */
export function isIssuanceError(error: unknown, code?: IssuanceErrorCode): error is IssuanceError {
  return error instanceof IssuanceError && (code === undefined || error.code === code);
}

// ---------------------------------------------------------------------------------------------
// The agent side: sending a credential (fleet-fetch.ts).

/** Why `lanyardFetch` refused to send a request. Stable: adding one is a breaking change. */
export type FleetFetchErrorCode = 'origin_not_allowed';

/** Extra, typed detail about a refused request (never a path, a query or a token). */
export interface FleetFetchErrorContext {
  /** Where the request was going: scheme, host and port only. */
  readonly origin: string;
  /** The origins this wrapper may send the credential to. */
  readonly allowed: readonly string[];
}

/**
 * `lanyardFetch` refused to send a request; nothing was sent.
 *
 * @example
 * ```ts
 * try {
 *   await call(url);
 * } catch (error) {
 *   if (error instanceof FleetFetchError) log.warn('not sending the credential to', error.context.origin);
 * }
 * ```
 */
export class FleetFetchError extends Error {
  override readonly name = 'FleetFetchError';
  readonly code: FleetFetchErrorCode;
  readonly context: FleetFetchErrorContext;

  constructor(code: FleetFetchErrorCode, message: string, context: FleetFetchErrorContext) {
    super(message);
    this.code = code;
    this.context = context;
  }
}

/** True when `error` is a {@link FleetFetchError}, optionally with the given code. */
export function isFleetFetchError(error: unknown, code?: FleetFetchErrorCode): error is FleetFetchError {
  return error instanceof FleetFetchError && (code === undefined || error.code === code);
}
