/**
 * Token introspection (RFC 7662) for resource servers that would rather ask than verify.
 * A token is active when its signature verifies against this issuer's keys, it is within
 * its lifetime, its issuance record exists, and no revocation covers it. An inactive token
 * gets `{ "active": false }` and nothing else (RFC 7662 §2.2).
 */
import { createLocalJWKSet, jwtVerify } from 'jose';
import type { IssuerRuntime } from './runtime.ts';

const INACTIVE = { active: false } as const;

export async function introspect(runtime: IssuerRuntime, token: string): Promise<Record<string, unknown>> {
  let claims: Record<string, unknown>;
  try {
    const jwks = createLocalJWKSet({ keys: await runtime.signer.publicJwks() });
    const verified = await jwtVerify(token, jwks, { issuer: runtime.config.issuer, algorithms: ['ES256'], typ: 'at+jwt', currentDate: new Date(runtime.clock.now()) });
    claims = verified.payload;
  } catch {
    return INACTIVE;
  }
  const jti = typeof claims.jti === 'string' ? claims.jti : undefined;
  const record = jti ? await runtime.store.getCredential(jti) : undefined;
  if (!record || record.decision !== 'issued') return INACTIVE;
  if (await runtime.revocations.revokedBy(record)) return INACTIVE;
  return {
    active: true,
    token_type: 'Bearer',
    scope: claims.scope,
    client_id: claims.client_id,
    sub: claims.sub,
    aud: claims.aud,
    iss: claims.iss,
    exp: claims.exp,
    iat: claims.iat,
    nbf: claims.nbf,
    jti,
    lane: record.lane,
    tenant: record.tenant,
    role: record.role,
    quota_bucket: record.quotaBucket,
    ...(record.task && { task: record.task }),
    ...(record.onBehalfOf && { act: { sub: record.onBehalfOf } }),
  };
}
