/**
 * Token introspection (RFC 7662) for resource servers that would rather ask than verify.
 *
 * A token is active exactly when the verifier SDK would accept it, and more: the checks are the
 * SDK's own (`createVerifier`, packages/sdk/src/verifier.ts: strict form, header allow-list, this issuer's
 * keys, low-S signature, `iss`, `aud`, `exp`/`nbf`/`iat` with 5 s of tolerance), not a second
 * copy that could drift. Then its issuance record must exist and no revocation may cover it
 * (to the millisecond, from the issuer's own feed, as the broker checks). An inactive token
 * gets `{ "active": false }` and nothing else (RFC 7662 §2.2).
 *
 * `aud`: verifier principals are not bound to audiences (docs/decisions.md), so the audiences
 * accepted are those of the tools this issuer issues for; the answer carries `aud`, and the
 * resource server checks that it names itself (RFC 7662 §4).
 */
import { createVerifier, VerificationError, type JwksCache, type LanyardClaims, type Verifier } from '@lanyard/sdk/verifier';
import { TtlCache } from '../lib/cache.ts';
import { issuerUnavailable } from '../domain/errors.ts';
import type { PolicyView } from '../policy/policy-view.ts';
import type { Clock, DecisionStore, PolicyStore, Signer } from '../ports/index.ts';
import type { RevocationIndex } from '../revocation/revocation-index.ts';
import type { IssuerConfig } from '../ports/services.ts';
import { signerJwks } from './signer-jwks.ts';

/** What introspection reads: the issuer's keys and tools (the verifier's), the credential's record, and the live revocations. */
export interface IntrospectDeps {
  readonly config: Pick<IssuerConfig, 'issuer'>;
  readonly store: Pick<DecisionStore, 'getCredential'> & Pick<PolicyStore, 'listTools'>;
  readonly revocations: Pick<RevocationIndex, 'revokedBy'>;
  readonly signer: Signer;
  /** Its TTL bounds how long the audiences accepted may lag the tools. */
  readonly policy: Pick<PolicyView, 'ttlMs'>;
  readonly clock: Clock;
}

const INACTIVE = { active: false } as const;
/** How long the issuer's public keys are trusted before they are read again (a new `kid` is looked up at once). */
const KEYS_TTL_MS = 60_000;

interface Checks {
  readonly jwks: JwksCache;
  readonly audiences: TtlCache<'all', string[]>;
  verifier?: { readonly key: string; readonly verifier: Verifier };
}

/** One set of checks per runtime: its keys are imported once, not on every call. */
const checksByRuntime = new WeakMap<IntrospectDeps, Checks>();

export async function introspect(runtime: IntrospectDeps, token: string): Promise<Record<string, unknown>> {
  const verifier = await verifierFor(runtime);
  if (!verifier) return INACTIVE;
  let claims: LanyardClaims;
  try {
    claims = await verifier.verify(token);
  } catch (error) {
    if (!(error instanceof VerificationError)) throw error;
    // The keys could not be read: that says nothing about the token, so fail closed.
    if (error.code === 'verifier_unavailable') throw issuerUnavailable(error);
    return INACTIVE;
  }
  const record = await runtime.store.getCredential(claims.jti);
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
    jti: claims.jti,
    lane: record.lane,
    tenant: record.tenant,
    role: record.role,
    quota_bucket: record.quotaBucket,
    ...(record.task && { task: record.task }),
    ...(record.onBehalfOf && { act: { sub: record.onBehalfOf } }),
  };
}

/** The SDK verifier for the audiences of this issuer's tools, rebuilt when they (or the issuer URL) change; undefined when there are none. */
async function verifierFor(runtime: IntrospectDeps): Promise<Verifier | undefined> {
  let checks = checksByRuntime.get(runtime);
  if (!checks) {
    checks = {
      jwks: signerJwks(runtime.signer, runtime.clock, KEYS_TTL_MS),
      audiences: new TtlCache({ ttlMs: runtime.policy.ttlMs, clock: runtime.clock }),
    };
    checksByRuntime.set(runtime, checks);
  }
  const audiences = await checks.audiences.get('all', async () => [...new Set((await runtime.store.listTools()).map((tool) => tool.audience))].sort());
  if (audiences.length === 0) return undefined;
  const issuer = runtime.config.issuer;
  const key = `${issuer} ${audiences.join(' ')}`;
  if (checks.verifier?.key !== key) {
    const verifier = createVerifier({
      issuer,
      audience: audiences,
      jwks: checks.jwks,
      // Revocation is checked against the issuer's own feed, to the millisecond, after the record.
      revocations: { mode: 'off' },
      clock: () => runtime.clock.now(),
    });
    checks.verifier = { key, verifier };
  }
  return checks.verifier.verifier;
}
