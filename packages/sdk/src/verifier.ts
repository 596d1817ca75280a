/**
 * Verifies Lanyard access tokens (RFC 9068 JWT profile, ES256) for a resource server.
 *
 * Rules it enforces, in this order (the first failure wins):
 * 1. size: at most `maxTokenBytes`, checked before any parsing (`token_malformed`);
 * 2. form: three strict base64url parts (RFC 7515 §7.1, no padding, no `+` `/`), header and
 *    payload JSON objects, `__proto__` keys dropped (`token_malformed`);
 * 3. header, by allow-list: `alg` exactly `ES256` (RFC 8725 §3.1; anything else, `none` and
 *    HS256 included, is `signature_invalid`); `typ` `at+jwt` or `application/at+jwt`
 *    (RFC 9068 §4, compared case-insensitively as media types are); `kid` present; no other
 *    member — so `jku`, `x5u`, `jwk`, `x5c` (keys named by the token itself) and `crit`
 *    (extensions we do not understand, RFC 7515 §4.1.11) are `token_malformed`;
 * 4. key: the issuer's JWKS, ES256/P-256 only (`unknown_key`, `verifier_unavailable`);
 * 5. signature: exactly 64 bytes R‖S with R in [1, n−1] and S in [1, (n−1)/2] (low-S: the
 *    high twin (R, n − S) of a signature verifies too, and would be a second string for the
 *    same token), then ECDSA P-256 SHA-256 (`signature_invalid`);
 * 6. claims: `iss`, `sub`, `jti`, `lane`, `scope`, `exp`, `iat` present and typed
 *    (`token_malformed`); `iss` exact (`wrong_issuer`); `aud` one of ours (`wrong_audience`);
 *    `exp` not passed (`token_expired`); `nbf` and `iat` not in the future
 *    (`token_not_yet_valid`), all with `clockToleranceSeconds`;
 * 7. revocation (`credential_revoked`, or `verifier_unavailable` when never synchronised or
 *    when the issuer has not been reached for `maxStalenessMs`);
 * 8. every required action is in `scope` (`insufficient_scope`).
 * Claims are only looked at after the signature holds, so a forged token learns nothing.
 */
import { VerificationError } from './errors.ts';
import { createJwksCache } from './jwks.ts';
import type { JwksCache } from './jwks.ts';
import { isWellFormedP256Signature } from './lib/ecdsa.ts';
import { decodeBase64url, isPlainObject, parseJsonObject } from './lib/encoding.ts';
import { assertFetchableUrl, assertKnownKeys, integerOption } from './lib/fetch.ts';
import type { Clock, Fetch } from './lib/fetch.ts';
import type { AwsSigningOptions } from './aws-sigv4.ts';
import { createRevocationFollower } from './revocations.ts';
import type { RevocationFollower } from './revocations.ts';

/** The claims of a verified Lanyard access token. */
export interface LanyardClaims {
  readonly iss: string;
  /** The identity: `support-triage/prod` or an instance `support-triage/prod#inst1`. */
  readonly sub: string;
  readonly aud: string | readonly string[];
  readonly exp: number;
  readonly iat: number;
  readonly nbf?: number;
  /** Credential id. */
  readonly jti: string;
  /** Space-separated `tool:verb` actions. */
  readonly scope: string;
  /** `<identity>:<tool>:<level>:<tenant or *>`. */
  readonly lane: string;
  readonly tenant?: string;
  readonly env?: string;
  /** `support-triage@3`. */
  readonly role?: string;
  readonly task?: { readonly id: string; readonly purpose?: string };
  /** RFC 8693 delegation: the user the agent acts for. */
  readonly act?: { readonly sub: string };
  /** The caller principal the credential was issued to. */
  readonly client_id?: string;
  readonly [claim: string]: unknown;
}

/** The protected header of a verified token. */
export interface LanyardHeader {
  readonly alg: 'ES256';
  readonly typ: string;
  readonly kid: string;
}

export interface RevocationOptions {
  /**
   * `stream`: server-sent events, with the feed to fill gaps (revocation reaches the verifier in
   * about a second); `poll`: the feed every `pollIntervalMs`; `off`: no revocation check at all.
   */
  readonly mode: 'stream' | 'poll' | 'off';
  /** The verifier's key for the feed and the stream; this or `aws` is required unless `mode` is `off`. */
  readonly apiKey?: string;
  /**
   * A deployed stack: read the feed with SigV4 as the caller's IAM role, bound to a verifier
   * principal (`{}` for the defaults; see `@lanyard/sdk/aws`). Needs `mode: 'poll'`.
   */
  readonly aws?: AwsSigningOptions;
  /** @default 5_000 (at most 300_000: a longer period outlives a default token) */
  readonly pollIntervalMs?: number;
  /**
   * Past this long without contact with the issuer (a feed read to its end, empty polls
   * included, or anything on the connected stream, keep-alives included), every token is
   * refused with `verifier_unavailable` until contact returns: a revocation made meanwhile
   * could not have reached this verifier. At least 30_000 and twice `pollIntervalMs`.
   * @default 120_000 (shorter than a default credential's 300 s lifetime)
   */
  readonly maxStalenessMs?: number;
  /** @default the verifier's `fetch` */
  readonly fetch?: Fetch;
  /** Called with every failure the follower recovers from. @default console.warn */
  readonly onError?: (error: Error) => void;
}

export interface VerifierOptions {
  /** The issuer URL, compared exactly with `iss`. */
  readonly issuer: string;
  /** The audience(s) this resource server answers to; the token's `aud` must name one. */
  readonly audience: string | readonly string[];
  /** @default `<issuer>/.well-known/jwks.json` */
  readonly jwksUri?: string;
  /** Allowed clock skew for `exp`, `nbf` and `iat`. @default 5 */
  readonly clockToleranceSeconds?: number;
  /** Tokens longer than this are refused before parsing. @default 8192 */
  readonly maxTokenBytes?: number;
  /**
   * How revocations are followed. The default, `stream`, needs `apiKey`: without one the
   * verifier refuses to start rather than silently skip revocation (say `{ mode: 'off' }`).
   * @default { mode: 'stream' }
   */
  readonly revocations?: RevocationOptions;
  /** @default globalThis.fetch */
  readonly fetch?: Fetch;
  /** Milliseconds since the epoch. @default Date.now */
  readonly clock?: Clock;
  /** Use this JWKS cache instead of building one (to share it between verifiers). */
  readonly jwks?: JwksCache;
}

export interface VerifyOptions {
  /** Action(s) the request needs (`tickets:read`); each must be in the token's `scope`. */
  readonly action?: string | readonly string[];
}

export interface Verifier {
  /**
   * Verifies `token` and returns its claims, or throws a {@link VerificationError}.
   */
  verify(token: string, options?: VerifyOptions): Promise<LanyardClaims>;
  /** Resolves once the first revocation sync is done (at once when revocations are off). */
  ready(): Promise<void>;
  /** Stops following revocations. */
  close(): void;
}

const OPTION_KEYS = [
  'issuer', 'audience', 'jwksUri', 'clockToleranceSeconds', 'maxTokenBytes', 'revocations', 'fetch', 'clock', 'jwks',
] as const;
const REVOCATION_KEYS = ['mode', 'apiKey', 'aws', 'pollIntervalMs', 'maxStalenessMs', 'fetch', 'onError'] as const;
const HEADER_MEMBERS = new Set(['alg', 'typ', 'kid']);
const ECDSA_P256_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

/**
 * Creates a verifier. Create it once, outside the request handler: it caches keys and follows
 * revocations in the background.
 *
 * @example
 * ```ts
 * const verifier = createVerifier({
 *   issuer: 'https://lanyard.example',
 *   audience: 'https://tickets.example.internal',
 *   revocations: { mode: 'stream', apiKey: process.env.LANYARD_VERIFIER_KEY },
 * });
 * const claims = await verifier.verify(token, { action: 'tickets:read' });
 * ```
 */
export function createVerifier(options: VerifierOptions): Verifier {
  assertKnownKeys('createVerifier', options, OPTION_KEYS);
  if (typeof options.issuer !== 'string' || options.issuer === '') throw new TypeError('issuer is required');
  const issuer = options.issuer;
  assertFetchableUrl('issuer', issuer);
  const audiences = new Set(typeof options.audience === 'string' ? [options.audience] : options.audience);
  if (audiences.size === 0 || [...audiences].some((aud) => typeof aud !== 'string' || aud === '')) {
    throw new TypeError('audience must be a non-empty string or array of strings');
  }
  const toleranceSeconds = integerOption('clockToleranceSeconds', options.clockToleranceSeconds, 5, 0, 300);
  const maxTokenBytes = integerOption('maxTokenBytes', options.maxTokenBytes, 8192, 256, 1_048_576);
  const clock = options.clock ?? Date.now;
  const base = issuer.replace(/\/+$/, '');
  const jwks =
    options.jwks ??
    createJwksCache({ jwksUri: options.jwksUri ?? `${base}/.well-known/jwks.json`, clock, fetch: options.fetch });

  const revocationOptions: RevocationOptions = options.revocations ?? { mode: 'stream' };
  if (!isPlainObject(revocationOptions)) throw new TypeError('revocations must be an object');
  assertKnownKeys('createVerifier revocations', revocationOptions, REVOCATION_KEYS);
  let follower: RevocationFollower | undefined;
  if (revocationOptions.mode !== 'off') {
    if (!revocationOptions.apiKey && revocationOptions.aws === undefined) {
      throw new TypeError('revocations.apiKey is required to follow revocations (on AWS: revocations.aws; or set revocations: { mode: "off" })');
    }
    follower = createRevocationFollower({
      issuer,
      ...(revocationOptions.apiKey ? { apiKey: revocationOptions.apiKey } : { aws: revocationOptions.aws! }),
      mode: revocationOptions.mode,
      clock,
      onKeyRotated: () => jwks.invalidate(),
      pollIntervalMs: revocationOptions.pollIntervalMs,
      maxStalenessMs: revocationOptions.maxStalenessMs,
      fetch: revocationOptions.fetch ?? options.fetch,
      onError: revocationOptions.onError,
    });
  }

  async function verify(token: string, verifyOptions: VerifyOptions = {}): Promise<LanyardClaims> {
    // 1. Size before anything else. Base64url is ASCII, so characters count bytes; a
    // non-ASCII character is refused by the alphabet check below anyway.
    if (typeof token !== 'string' || token.length === 0) throw malformed('the token is not a string');
    if (token.length > maxTokenBytes) throw malformed('the token is too large', { expected: maxTokenBytes, actual: token.length });

    // 2. Form.
    const firstDot = token.indexOf('.');
    const secondDot = token.indexOf('.', firstDot + 1);
    if (firstDot === -1 || secondDot === -1 || token.indexOf('.', secondDot + 1) !== -1) {
      throw malformed('the token is not a JWS compact serialization');
    }
    const headerBytes = decodeBase64url(token.slice(0, firstDot));
    const payloadBytes = decodeBase64url(token.slice(firstDot + 1, secondDot));
    if (!headerBytes || !payloadBytes) throw malformed('the token is not strict base64url');
    const header = parseJsonObject(headerBytes);
    if (!header) throw malformed('the token header is not a JSON object');

    // 3. Header, by allow-list.
    if (header.alg !== 'ES256') {
      throw new VerificationError('signature_invalid', 'the token algorithm is not allowed', {
        expected: 'ES256',
        actual: typeof header.alg === 'string' ? header.alg : undefined,
      });
    }
    for (const member in header) {
      if (!HEADER_MEMBERS.has(member)) throw malformed('the token header has a member this verifier does not accept', { actual: member });
    }
    if (typeof header.typ !== 'string' || !isAccessTokenType(header.typ)) {
      throw malformed('the token is not an access token (typ at+jwt)', { expected: 'at+jwt' });
    }
    const kid = header.kid;
    if (typeof kid !== 'string' || kid === '') throw malformed('the token header has no kid');

    // 4. Key.
    const key = await jwks.getKey(kid);

    // 5. Signature.
    const signature = decodeBase64url(token.slice(secondDot + 1));
    if (!signature) throw malformed('the token is not strict base64url');
    if (!isWellFormedP256Signature(signature)) throw badSignature();
    // Both parts are strict base64url by now, so ASCII: UTF-8 bytes are the latin1 bytes.
    const signingInput = new TextEncoder().encode(token.slice(0, secondDot));
    let valid: boolean;
    try {
      valid = await crypto.subtle.verify(ECDSA_P256_SHA256, key, signature, signingInput);
    } catch (cause) {
      throw new VerificationError('signature_invalid', 'the token signature is invalid', {}, { cause });
    }
    if (!valid) throw badSignature();

    // 6. Claims (only now: they are authentic).
    const payload = parseJsonObject(payloadBytes);
    if (!payload) throw malformed('the token payload is not a JSON object');
    const claims = checkClaims(payload);

    // 7. Revocation.
    if (follower) {
      if (!follower.synced) await follower.ready();
      // Fail closed on a feed gone quiet: a lane revoked since the last contact would pass.
      if (!follower.fresh) throw new VerificationError('verifier_unavailable', 'revocations are out of date: the issuer has not been reached for too long');
      const revokedTarget = follower.isRevoked(claims, { kid });
      if (revokedTarget) {
        throw new VerificationError('credential_revoked', 'the credential has been revoked', { revokedTarget });
      }
    }

    // 8. Scope.
    const required = verifyOptions.action;
    if (required !== undefined) checkScope(claims.scope, typeof required === 'string' ? [required] : required);
    return claims;
  }

  function checkClaims(payload: Record<string, unknown>): LanyardClaims {
    const { iss, sub, jti, lane, scope, exp, iat, nbf, aud } = payload;
    if (typeof iss !== 'string') throw malformed('the token has no iss claim');
    if (iss !== issuer) throw new VerificationError('wrong_issuer', 'the token was issued by another issuer', { expected: issuer, actual: iss });
    if (!isAudienceOk(aud)) {
      throw new VerificationError('wrong_audience', 'the token is meant for another audience', {
        expected: [...audiences],
        actual: aud,
      });
    }
    for (const [name, value] of [['sub', sub], ['jti', jti], ['lane', lane]] as const) {
      if (typeof value !== 'string' || value === '') throw malformed(`the token has no ${name} claim`);
    }
    if (typeof scope !== 'string') throw malformed('the token has no scope claim');
    if (!isNumericDate(exp)) throw malformed('the token has no exp claim');
    if (!isNumericDate(iat)) throw malformed('the token has no iat claim');
    if (nbf !== undefined && !isNumericDate(nbf)) throw malformed('the token nbf claim is not a NumericDate');
    const now = clock() / 1000;
    // RFC 7519 §4.1.4: the token must not be accepted on or after `exp`.
    if (now - toleranceSeconds >= exp) throw new VerificationError('token_expired', 'the token has expired', { expected: now, actual: exp });
    if (nbf !== undefined && now + toleranceSeconds < nbf) {
      throw new VerificationError('token_not_yet_valid', 'the token is not valid yet', { expected: now, actual: nbf });
    }
    // RFC 9068 §2.2: `iat` is the real issue time; one in the future means a broken or forged clock.
    if (now + toleranceSeconds < iat) {
      throw new VerificationError('token_not_yet_valid', 'the token was issued in the future', { expected: now, actual: iat });
    }
    return payload as LanyardClaims;
  }

  function isAudienceOk(aud: unknown): boolean {
    if (typeof aud === 'string') return audiences.has(aud);
    return Array.isArray(aud) && aud.some((value) => typeof value === 'string' && audiences.has(value));
  }

  return {
    verify,
    async ready(): Promise<void> {
      await follower?.ready();
    },
    close(): void {
      follower?.close();
    },
  };
}

function checkScope(scope: string, required: readonly string[]): void {
  // RFC 6749 §3.3: scope is a space-delimited list of case-sensitive strings.
  const granted = new Set(scope.split(' '));
  const missing = required.filter((action) => !granted.has(action));
  if (missing.length > 0) {
    throw new VerificationError('insufficient_scope', 'the token does not grant the required action', {
      expected: required,
      actual: [...granted].filter((action) => action !== ''),
    });
  }
}

function isAccessTokenType(typ: string): boolean {
  const lower = typ.toLowerCase();
  return lower === 'at+jwt' || lower === 'application/at+jwt';
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function malformed(message: string, context: { expected?: unknown; actual?: unknown } = {}): VerificationError {
  return new VerificationError('token_malformed', message, context);
}

function badSignature(): VerificationError {
  return new VerificationError('signature_invalid', 'the token signature is invalid');
}
