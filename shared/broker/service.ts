/**
 * The credential broker (issue 6): `ANY /v1/proxy/{provider}/{path+}`. The agent presents a
 * short-lived Lanyard JWT for the provider's tool; the broker checks it like any resource
 * server would, maps method and path to a declared action, takes one request from the lane's
 * quota bucket, injects the provider's key, and streams the exchange through. The agent never
 * holds the key; rotating it is a broker operation the fleet never notices.
 *
 * The checks, in order (the first failure wins and is the typed answer):
 * 1. the request target as sent: a path under the prefix, no dot segments (`..;x` is one),
 *    encoded slashes or escapes, or absolute URLs (`invalid_request`, `not_found`);
 * 2. exactly one `Authorization: Bearer <JWT>`; anything else there is a credential meant for
 *    the upstream and refused (`unauthenticated`, `invalid_request`);
 * 3. the provider: a tool with an upstream (`not_found`);
 * 4. the token: signature with the issuer's own keys, `typ`, `iss`, `aud` = the tool's
 *    audience, times (the verifier's codes: `token_expired`, `wrong_audience`, …);
 * 5. the tool enabled (`tool_disabled`), the credential's issuance record, and no revocation
 *    of its credential, lane, identity, tenant, tool or key (`credential_revoked`);
 * 6. headers, query and path: no hop-by-hop or credential headers, not the key's parameter,
 *    no `;` unless the provider allows path parameters;
 * 7. the route: a declared pattern (`route_not_allowed`) whose action the scope holds
 *    (`insufficient_scope`); a declared body length within the limit (`request_too_large`);
 * 8. the key: set (`upstream_auth_failed`), its circuits closed for the lane and the provider
 *    (`upstream_circuit_open`, circuit.ts);
 * 9. the quota bucket not spent (`quota_exhausted`, with when it resets), taken from this
 *    process's lease of the bucket when it holds one (quota-leases.ts).
 *
 * Every call is audited: a refusal before the answer (fail closed if the record cannot be
 * written), a forwarded call once its answer has streamed (status, bytes, units — never the
 * key, never a body).
 *
 * The checks are the admission pipeline (admission.ts: one named function per check, run in
 * this order by `admit`); the upstream call, the answer checks, the masked stream and the
 * record after it are the relay (relay.ts). This file builds the broker's long-lived parts and
 * turns a refusal into its audited, typed answer.
 */
import { failClosed, issuerUnavailable, type LanyardError } from '../domain/errors.ts';
import type { DecisionRecord, UpstreamSecretRef } from '../domain/model.ts';
import { errorResponse } from '../http/responses.ts';
import { describeError } from '../ports/log.ts';
import { Readable } from 'node:stream';
import { TtlCache } from '../lib/cache.ts';
import { createVerifier, type LanyardClaims, type Verifier } from '@lanyard/sdk/verifier';
import { bearerChallenge, challengeErrorFor } from '@lanyard/sdk/challenge';
import { signerJwks } from '../introspection/signer-jwks.ts';
import { admit } from './admission.ts';
import { callRecord, newDraft, type BrokerContext, type BrokerDeps, type CallDraft } from './call.ts';
import { CircuitBreakers, type CircuitOptions } from './circuit.ts';
import { QuotaLeases } from './quota-leases.ts';
import { relay } from './relay.ts';
import type { Broker, BrokerRequest, BrokerResponse } from './types.ts';
import { upstreamAgents, type UpstreamAgents } from './upstream.ts';

export { DEFAULT_MAX_REQUEST_BYTES } from './admission.ts';
export { DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT_MS } from './relay.ts';
export type { BrokerDeps } from './call.ts';

export interface BrokerOptions {
  readonly circuit?: CircuitOptions;
  /** How long the broker trusts its copy of the issuer's public keys. @default 60_000 */
  readonly keysTtlMs?: number;
  /** Allowed clock skew for `exp`, `nbf` and `iat`. @default 5 */
  readonly clockToleranceSeconds?: number;
  /** Keep-alive pools for upstream calls. @default new pools */
  readonly agents?: UpstreamAgents;
  /** Most requests a process reserves from a bucket at once (quota-leases.ts); 1 counts every call in the store. @default 32 */
  readonly quotaLease?: number;
}

export interface BrokerService extends Broker {
  /** Closes idle upstream connections. */
  close(): void;
}

export function createBroker(deps: BrokerDeps, options: BrokerOptions = {}): BrokerService {
  const ctx = brokerContext(deps, options);

  async function handle(request: BrokerRequest, signal?: AbortSignal): Promise<BrokerResponse> {
    const started = deps.clock.now();
    const draft = newDraft(request.requestId, request.method, started);
    try {
      const admitted = await admit(ctx, request, draft);
      return await relay(ctx, request, admitted, draft, started, signal);
    } catch (error) {
      return refuse(ctx, request, draft, started, error);
    }
  }

  return {
    handle,
    close: () => {
      ctx.agents.http.destroy();
      ctx.agents.https.destroy();
    },
  };
}

/** The broker's long-lived parts: one verifier per audience on the issuer's own keys, the caches, the circuits, the leases. */
function brokerContext(deps: BrokerDeps, options: BrokerOptions): BrokerContext {
  const { clock } = deps;
  const jwks = signerJwks(deps.signer, clock, options.keysTtlMs ?? 60_000);
  const verifiers = new Map<string, Verifier>();
  const verifierFor = (audience: string): Verifier => {
    let verifier = verifiers.get(audience);
    if (!verifier) {
      verifier = createVerifier({
        issuer: deps.config.issuer,
        audience,
        jwks,
        // Revocation is checked by the admission against the issuer's own feed, to the millisecond.
        revocations: { mode: 'off' },
        clock: () => clock.now(),
        ...(options.clockToleranceSeconds !== undefined && { clockToleranceSeconds: options.clockToleranceSeconds }),
      });
      verifiers.set(audience, verifier);
    }
    return verifier;
  };
  const secrets = new TtlCache<string, string>({ ttlMs: 3_600_000, maxEntries: 1_000, clock });
  const secretOf = (ref: UpstreamSecretRef): Promise<string> => {
    const vault = deps.vault;
    if (!vault) return Promise.reject(issuerUnavailable(new Error('no secret vault is configured')));
    // Versions are immutable: a version is read from the vault once per process.
    return secrets.get(`${ref.provider}@${ref.version}`, () => vault.getSecret(ref.provider, ref.version));
  };
  return {
    deps,
    agents: options.agents ?? upstreamAgents(),
    circuits: new CircuitBreakers(clock, options.circuit),
    verifierFor,
    // An agent presents the same token on every call of its lane: its signature is checked once,
    // its expiry on every call (revocation too, in the admission).
    verified: new TtlCache<string, LanyardClaims>({ ttlMs: 30_000, maxEntries: 10_000, clock }),
    toleranceSeconds: options.clockToleranceSeconds ?? 5,
    credentials: new TtlCache<string, DecisionRecord | undefined>({ ttlMs: 60_000, clock }),
    secretOf,
    leases: new QuotaLeases(deps.store, options.quotaLease === undefined ? {} : { maxLease: options.quotaLease }),
  };
}

/**
 * A call that did not end in a streamed answer: on record before it is answered (fail closed
 * when the record cannot be written), then the typed error. A call that reached the upstream is
 * `proxied` whatever came of it (it counted against the bucket too).
 */
async function refuse(ctx: BrokerContext, request: BrokerRequest, draft: CallDraft, started: number, error: unknown): Promise<BrokerResponse> {
  const refusal = failClosed(error);
  if (refusal.status >= 500 && !isUpstreamCode(refusal.code)) ctx.deps.log.error('broker failed closed', { requestId: request.requestId, error: describeError(error) });
  draft.proxy.durationMs = ctx.deps.clock.now() - started;
  try {
    await ctx.deps.decisions.append(callRecord(draft, draft.forwarded ? 'proxied' : 'denied', refusal.code, refusal.message));
  } catch (writeError) {
    return errorAnswer(failClosed(writeError), request.requestId);
  }
  return errorAnswer(refusal, request.requestId);
}

function isUpstreamCode(code: string): boolean {
  return code.startsWith('upstream_');
}

/** The typed error body, with the RFC 6750 challenge a resource server owes a refused bearer token. */
function errorAnswer(error: LanyardError, requestId: string): BrokerResponse {
  const result = errorResponse(error, requestId);
  const headers: Record<string, string> = { ...result.headers, 'x-lanyard-request-id': requestId };
  // The same challenge as the verifier SDK's, so an agent's `lanyardFetch` refreshes on
  // `token_expired` and stops the lane on `credential_revoked` behind the broker too.
  const challenge = challengeErrorFor(error.code);
  if (challenge) headers['www-authenticate'] = bearerChallenge({ error: challenge, code: error.code });
  return { status: result.statusCode, headers, body: once(Buffer.from(result.body ?? '', 'utf8')) };
}

function once(chunk: Uint8Array): AsyncIterable<Uint8Array> {
  return Readable.from([chunk]);
}
