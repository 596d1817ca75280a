/**
 * The `sts` credential kind (docs/domain.md#credentials): `AssumeRole` into the tool's role with a session
 * policy that allows only the granted actions' IAM permissions, the four `lanyard:*` session
 * tags (lane and identity transitive, so they survive role chaining), `SourceIdentity` (it
 * reaches CloudTrail and cannot be changed by the session) and `RoleSessionName` carrying the
 * credential id.
 *
 * AWS limits checked before calling, so a request that cannot succeed fails with a typed error
 * instead of an STS round trip (STS API reference, AssumeRole):
 * - `RoleSessionName`, `SourceIdentity`: 2–64 characters of `[\w+=,.@-]`;
 * - `DurationSeconds`: 900–3,600. A role's `MaxSessionDuration` may be up to 12 h, but the
 *   issuer calls with role credentials of its own (role chaining), which STS caps at one hour;
 * - `Policy`: at most 2,048 plain-text characters (the packed size, policy plus tags, is only
 *   known to STS and comes back as `PackedPolicyTooLargeException`);
 * - session tag values: at most 256 characters of letters, digits, spaces and `_.:/=+-@`.
 *
 * Lanyard ids use characters AWS refuses, so two deterministic, injective mappings apply
 * (no Lanyard id contains their target characters, so no two ids map to one value):
 * - `toSourceIdentity`: `/` → `+` and `#` → `@` (`support-triage/prod#a1` → `support-triage+prod@a1`);
 *   past 64 characters the value is cut to 47 and `,` plus 16 hex digits of its SHA-256 appended.
 * - `toSessionTagValue`: `#` → `@` and `*` → `=` (`…:tickets:read:*` → `…:tickets:read:=`).
 *   The IAM revocation deny matches on the mapped lane (see `sts-revocation.ts`).
 */
import { createHash } from 'node:crypto';
import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';
import { STS_MAX_TTL_SECONDS } from '../../domain/model.ts';
import { failClosed, invalidRequest, LanyardError } from '../../domain/errors.ts';
import type { AssumeRoleRequest, AwsSessionCredentials, SessionIssuer } from '../../ports/index.ts';

/** STS cannot issue a shorter session; the caller says so in its response (docs/domain.md#credentials). */
export const STS_MIN_DURATION_SECONDS = 900;
/** STS's ceiling for a chained role session (the issuer's own credentials are a role session). */
export const STS_MAX_DURATION_SECONDS = STS_MAX_TTL_SECONDS;
/** Plain-text limit of an inline session policy. */
export const SESSION_POLICY_MAX_CHARS = 2048;
export const SESSION_TAG_VALUE_MAX_CHARS = 256;

export const SESSION_TAG_KEYS = ['lanyard:identity', 'lanyard:lane', 'lanyard:tenant', 'lanyard:credential'] as const;
/** Carried into chained role sessions, so a chained session is still revocable by lane. */
export const TRANSITIVE_SESSION_TAG_KEYS = ['lanyard:identity', 'lanyard:lane'] as const;

const STS_NAME = /^[\w+=,.@-]{2,64}$/;
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;
const IAM_PERMISSION = /^[a-z0-9-]+:[A-Za-z0-9*?]+$/;

/**
 * The `SourceIdentity` for a Lanyard identity id.
 *
 * @example
 * ```ts
 * toSourceIdentity('support-triage/prod#a1'); // 'support-triage+prod@a1'
 * ```
 */
export function toSourceIdentity(identityId: string): string {
  const mapped = identityId.replaceAll('/', '+').replaceAll('#', '@');
  if (mapped.length <= 64) return mapped;
  const digest = createHash('sha256').update(identityId).digest('hex').slice(0, 16);
  return `${mapped.slice(0, 47)},${digest}`;
}

/**
 * A session tag value (and `aws:PrincipalTag` condition value) for a Lanyard id.
 *
 * @example
 * ```ts
 * toSessionTagValue('support-triage/prod#a1:tickets:read:*'); // 'support-triage/prod@a1:tickets:read:='
 * ```
 */
export function toSessionTagValue(value: string): string {
  return value.replaceAll('#', '@').replaceAll('*', '=');
}

/** The duration STS is asked for: never below its 900 s floor. */
export function stsDurationSeconds(requestedSeconds: number): number {
  return Math.max(STS_MIN_DURATION_SECONDS, Math.ceil(requestedSeconds));
}

/**
 * The session policy for a credential: one `Allow` of the granted IAM permissions, sorted and
 * de-duplicated so equal grants give byte-equal policies.
 *
 * @example
 * ```ts
 * buildSessionPolicy(['s3:GetObject', 's3:ListBucket'], ['arn:aws:s3:::tickets', 'arn:aws:s3:::tickets/*']);
 * ```
 */
export function buildSessionPolicy(permissions: readonly string[], resources: readonly string[] = ['*']): string {
  const actions = [...new Set(permissions)].sort();
  if (actions.length === 0) throw invalidRequest('actions', 'the requested actions map to no IAM permission');
  const bad = actions.find((action) => !IAM_PERMISSION.test(action));
  if (bad !== undefined) throw invalidRequest('actions', `"${bad}" is not an IAM permission (service:Action)`);
  const resource = [...new Set(resources)];
  if (resource.length === 0 || resource.some((arn) => arn === '')) {
    throw invalidRequest('actions', 'a session policy needs at least one resource');
  }
  return JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: actions, Resource: resource }] });
}

export interface StsSessionsOptions {
  /** Created once by the caller, at module scope. */
  readonly client: STSClient;
}

/**
 * @example
 * ```ts
 * const sessions = new StsSessions({ client: new STSClient({}) });
 * const aws = await sessions.assumeRole({ roleArn, roleSessionName: credentialId, sourceIdentity: identity,
 *   durationSeconds: 300, sessionPolicy: buildSessionPolicy(permissions), tags });
 * ```
 */
export class StsSessions implements SessionIssuer {
  readonly #client: STSClient;

  constructor(options: StsSessionsOptions) {
    if (!options?.client) throw new Error('StsSessions: an STSClient is required');
    this.#client = options.client;
  }

  /**
   * `durationSeconds` below 900 is raised to 900 (`STS_MIN_DURATION_SECONDS`): the caller
   * reports the real expiry, which is in the answer. `sourceIdentity` is a Lanyard identity id
   * and tag values are Lanyard ids; both are mapped as the module comment says.
   */
  async assumeRole(request: AssumeRoleRequest): Promise<AwsSessionCredentials> {
    const input = toAssumeRoleInput(request);
    let output;
    try {
      output = await this.#client.send(new AssumeRoleCommand(input));
    } catch (error) {
      throw mapStsError(error);
    }
    const credentials = output.Credentials;
    if (!credentials?.AccessKeyId || !credentials.SecretAccessKey || !credentials.SessionToken || !credentials.Expiration) {
      throw failClosed(new Error(`AssumeRole into ${request.roleArn} returned no complete credentials`));
    }
    return {
      accessKeyId: credentials.AccessKeyId,
      secretAccessKey: credentials.SecretAccessKey,
      sessionToken: credentials.SessionToken,
      expiration: credentials.Expiration.toISOString(),
    };
  }
}

/** The rules of the module comment, in order; the first failure wins. */
function toAssumeRoleInput(request: AssumeRoleRequest) {
  // Values Lanyard itself builds (tool configuration, credential ids, identity ids): a bad one
  // is a misconfiguration or a bug, so the issuer fails closed rather than blaming the caller.
  if (!ROLE_ARN.test(request.roleArn)) throw internal(`role ARN "${request.roleArn}" is not an IAM role ARN`);
  if (!STS_NAME.test(request.roleSessionName)) {
    throw internal(`RoleSessionName "${request.roleSessionName}" must be 2-64 characters of [\\w+=,.@-]`);
  }
  const sourceIdentity = toSourceIdentity(request.sourceIdentity);
  if (!STS_NAME.test(sourceIdentity) || sourceIdentity.startsWith('aws:')) {
    throw internal(`SourceIdentity "${sourceIdentity}" (from "${request.sourceIdentity}") must be 2-64 characters of [\\w+=,.@-]`);
  }

  // Values the caller chose (TTL, actions, tenant) are the caller's to fix: invalid_request.
  if (!Number.isFinite(request.durationSeconds) || request.durationSeconds <= 0) {
    throw invalidRequest('ttlSeconds', 'ttlSeconds must be a positive number');
  }
  if (request.durationSeconds > STS_MAX_DURATION_SECONDS) {
    throw invalidRequest('ttlSeconds', `an STS session lasts at most ${STS_MAX_DURATION_SECONDS} seconds`, {
      maxTtlSeconds: STS_MAX_DURATION_SECONDS,
    });
  }
  if (request.sessionPolicy.length > SESSION_POLICY_MAX_CHARS) {
    throw invalidRequest(
      'actions',
      `the session policy for these actions is ${request.sessionPolicy.length} characters; STS takes at most ${SESSION_POLICY_MAX_CHARS}: request fewer actions`,
      { maxPolicyChars: SESSION_POLICY_MAX_CHARS },
    );
  }
  try {
    JSON.parse(request.sessionPolicy);
  } catch (error) {
    throw failClosed(new Error('the session policy is not JSON', { cause: error }));
  }

  const keys = Object.keys(request.tags);
  const missing = SESSION_TAG_KEYS.filter((key) => !keys.includes(key));
  const unknown = keys.filter((key) => !(SESSION_TAG_KEYS as readonly string[]).includes(key));
  if (missing.length > 0 || unknown.length > 0) {
    throw internal(`session tags must be exactly ${SESSION_TAG_KEYS.join(', ')} (missing: ${missing.join(', ') || 'none'}; unknown: ${unknown.join(', ') || 'none'})`);
  }
  const tags = SESSION_TAG_KEYS.map((key) => {
    const value = toSessionTagValue(request.tags[key] ?? '');
    if (value.length > SESSION_TAG_VALUE_MAX_CHARS || !TAG_VALUE.test(value)) {
      throw invalidRequest('tags', `session tag ${key} must be at most ${SESSION_TAG_VALUE_MAX_CHARS} characters of letters, digits and _.:/=+-@`, {
        tag: key,
      });
    }
    return { Key: key, Value: value };
  });

  return {
    RoleArn: request.roleArn,
    RoleSessionName: request.roleSessionName,
    SourceIdentity: sourceIdentity,
    DurationSeconds: stsDurationSeconds(request.durationSeconds),
    Policy: request.sessionPolicy,
    Tags: tags,
    TransitiveTagKeys: [...TRANSITIVE_SESSION_TAG_KEYS],
  };
}

function internal(message: string): LanyardError {
  return failClosed(new Error(`StsSessions: ${message}`));
}

/** STS error names (wire codes) → Lanyard codes; anything unknown fails closed. */
function mapStsError(error: unknown): LanyardError {
  const name = (error as { name?: unknown } | undefined)?.name;
  switch (name) {
    case 'PackedPolicyTooLargeException':
      return new LanyardError('invalid_request', 'the session policy and tags for these actions are too large for STS: request fewer actions', {
        context: { field: 'actions' },
        cause: error,
      });
    case 'Throttling':
    case 'ThrottlingException':
    case 'TooManyRequestsException':
      return new LanyardError('issuer_unavailable', 'STS is throttling the issuer; retry with backoff', { cause: error, retryAfter: 2 });
    case 'AccessDenied':
    case 'AccessDeniedException':
      // The issuer's own role may not assume this tool's role (or tag the session): a
      // deployment mistake, not the caller's fault. The cause keeps STS's message for the logs.
      return new LanyardError('issuer_unavailable', 'the issuer is not allowed to assume the tool role', { cause: error, retryAfter: 1 });
    default:
      return failClosed(error);
  }
}
