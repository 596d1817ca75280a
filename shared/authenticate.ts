/**
 * Who is calling (docs/architecture.md#ports-and-adapters-today). On AWS the API Gateway IAM authorizer has
 * already checked the SigV4 signature and hands over the caller's ARN; on the embedded
 * default the caller presents a local API key, stored only as its SHA-256. Either way an
 * unknown caller learns nothing about why it was refused.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Principal, PrincipalKind } from './domain.ts';
import { forbidden, unauthenticated } from './errors.ts';
import { header } from './http/middleware.ts';
import type { HttpEvent } from './http/types.ts';
import type { PolicyView } from './policy-view.ts';
import { withArticle } from './words.ts';

export const API_KEY_PREFIX = 'lk_';
const API_KEY = /^lk_[A-Za-z0-9_-]{16,128}$/;

/** A new local API key: 256 random bits. Shown once; only its hash is kept. */
export function newApiKey(): string {
  return `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** API keys carry 256 bits of entropy, so a plain SHA-256 is enough; no slow hash is needed. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function isApiKey(value: string): boolean {
  return API_KEY.test(value);
}

export function bearerToken(event: HttpEvent): string | undefined {
  const value = header(event, 'authorization');
  const match = value === undefined ? null : /^Bearer ([\x21-\x7e]+)$/i.exec(value.trim());
  return match?.[1];
}

/**
 * An IAM role ARN (`arn:<partition>:iam::<account>:role/<path/><name>`). Partitions are
 * `aws`, `aws-cn`, `aws-us-gov` and the isolated ones; role names are 1 to 64 of [\w+=,.@-].
 */
export const IAM_ROLE_ARN = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/((?:[\w+=,.@-]+\/)*)([\w+=,.@-]{1,64})$/;
/** What an assumed-role session of a role shows API Gateway: the role name, never its path, then the session name. */
const ASSUMED_ROLE_ARN = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/([\w+=,.@-]{2,64})$/;

/**
 * The lookup key of a role binding: partition, account and role name. The path is left out
 * because an assumed-role ARN does not carry it; that is safe because IAM role names are
 * unique within an account whatever their path (a policy file that binds the same name twice
 * is refused when it is applied). The partition is kept, so a role in `aws-cn` never matches
 * a same-named role of an account number in `aws`.
 */
export function iamRoleKey(roleArn: string): string | undefined {
  const match = IAM_ROLE_ARN.exec(roleArn);
  return match ? `${match[1]}:${match[2]}:${match[4]}` : undefined;
}

/** The caller's role key and session name when it is an assumed-role session (ECS task, EKS pod, Lambda, EC2 instance profile). */
export function assumedRoleOf(callerArn: string): { key: string; session: string } | undefined {
  const match = ASSUMED_ROLE_ARN.exec(callerArn);
  return match ? { key: `${match[1]}:${match[2]}:${match[3]}`, session: match[4]! } : undefined;
}

/** What an instance name may hold (domain.ts IDENTITY_ID); a session name may also hold `+=,@`. */
const INSTANCE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * The instance an IAM caller acts as when its principal gives each session its own
 * (`instancePerSession`): `<class/env>#<session name>`. The session names ECS, EKS Pod
 * Identity, Lambda and EC2 set (task id, `eks-<cluster>-<pod>-…`, function name, instance id)
 * fit an instance name; one that does not (an e-mail address, say) is refused rather than
 * rewritten, so two sessions never share an instance.
 */
export function sessionInstanceOf(principal: Principal, mode: 'apiKey' | 'iam', event: HttpEvent): string | undefined {
  if (!principal.instancePerSession || mode !== 'iam' || principal.identity === undefined) return undefined;
  const arn = event.requestContext.authorizer?.iam?.userArn;
  const session = arn === undefined ? undefined : assumedRoleOf(arn)?.session;
  if (session === undefined || !INSTANCE_NAME.test(session)) {
    throw forbidden(`principal ${principal.id} gives each IAM session its own instance; this caller's session name cannot name one (letters, digits, '_', '.' and '-', at most 64)`);
  }
  return `${principal.identity}#${session}`;
}

export async function authenticate(policy: PolicyView, mode: 'apiKey' | 'iam', event: HttpEvent): Promise<Principal> {
  let principal: Principal | undefined;
  if (mode === 'iam') {
    // API Gateway's IAM authorizer has checked the signature; the ARN is who signed.
    const arn = event.requestContext.authorizer?.iam?.userArn;
    // An exact binding wins (one session pinned by its full ARN); otherwise a role binding.
    principal = arn ? await policy.principalByKey('arn', arn) : undefined;
    const assumed = principal || !arn ? undefined : assumedRoleOf(arn);
    if (assumed) principal = await policy.principalByKey('iamRole', assumed.key);
  } else {
    const key = bearerToken(event);
    principal = key && isApiKey(key) ? await policy.principalByKey('apiKey', hashApiKey(key)) : undefined;
  }
  if (!principal) throw unauthenticated();
  return principal;
}

/** An authenticated caller of the wrong kind learns the typed reason; an unknown one learns nothing. */
export function requireKind(principal: Principal, ...kinds: PrincipalKind[]): void {
  if (!kinds.includes(principal.kind)) {
    throw forbidden(`principal ${principal.id} is ${withArticle(principal.kind)}; this needs ${kinds.map(withArticle).join(' or ')} principal`);
  }
}
