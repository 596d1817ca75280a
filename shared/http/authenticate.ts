/**
 * Who is calling (docs/architecture.md#ports-and-adapters). On AWS the API Gateway IAM authorizer has
 * already checked the SigV4 signature and hands over the caller's ARN; on the embedded
 * default the caller presents a local API key, stored only as its SHA-256. Either way an
 * unknown caller learns nothing about why it was refused.
 */
import { assumedRoleOf, hashApiKey, isApiKey } from '../domain/caller-keys.ts';
import type { Principal, PrincipalKind } from '../domain/model.ts';
import { forbidden, unauthenticated } from '../domain/errors.ts';
import { header } from './middleware.ts';
import type { HttpEvent } from './types.ts';
import type { PolicyView } from '../policy/policy-view.ts';
import { withArticle } from '../lib/words.ts';

export function bearerToken(event: HttpEvent): string | undefined {
  const value = header(event, 'authorization');
  const match = value === undefined ? null : /^Bearer ([\x21-\x7e]+)$/i.exec(value.trim());
  return match?.[1];
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
