/**
 * Who is calling (DESIGN §7 "caller identity"). On AWS the API Gateway IAM authorizer has
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

export async function authenticate(policy: PolicyView, mode: 'apiKey' | 'iam', event: HttpEvent): Promise<Principal> {
  let principal: Principal | undefined;
  if (mode === 'iam') {
    const arn = event.requestContext.authorizer?.iam?.userArn;
    principal = arn ? await policy.principalByKey('arn', arn) : undefined;
  } else {
    const key = bearerToken(event);
    principal = key && isApiKey(key) ? await policy.principalByKey('apiKey', hashApiKey(key)) : undefined;
  }
  if (!principal) throw unauthenticated();
  return principal;
}

/** An authenticated caller of the wrong kind learns the typed reason (STYLE habit 9). */
export function requireKind(principal: Principal, ...kinds: PrincipalKind[]): void {
  if (!kinds.includes(principal.kind)) {
    throw forbidden(`principal ${principal.id} is ${withArticle(principal.kind)}; this needs ${kinds.map(withArticle).join(' or ')} principal`);
  }
}
