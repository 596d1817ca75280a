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
 */
import type { DecisionRecord, ProxyCallSummary, QuotaPolicy, Tool, UpstreamConfig, UpstreamSecretRef } from '../domain/model.ts';
import { parseIdentityId, parseLaneId } from '../domain/model.ts';
import { LanyardError, failClosed, issuerUnavailable, notFound, unauthenticated } from '../domain/errors.ts';
import { errorResponse } from '../http/responses.ts';
import { describeError } from '../ports/log.ts';
import type { QuotaWindow } from '../ports/index.ts';
import { quotaExhausted, windowOf } from '../issuance/quota.ts';
import { Readable } from 'node:stream';
import type { IssuerServices } from '../ports/services.ts';
import { TtlCache } from '../lib/cache.ts';
import { createVerifier, VerificationError, type LanyardClaims, type Verifier } from '@lanyard/sdk/verifier';
import { bearerChallenge, challengeErrorFor } from '@lanyard/sdk/challenge';
import { signerJwks } from '../introspection/signer-jwks.ts';
import { CircuitBreakers, type CircuitOptions, type CircuitScope } from './circuit.ts';
import { agentResponseHeaders, brokerToken, first, checkQuery, checkRequestHeaders, unreadableCoding, upstreamRequestHeaders } from './headers.ts';
import { QuotaLeases } from './quota-leases.ts';
import { SecretRedactor } from './redact.ts';
import { matchRoutes, type RouteMatch } from './routes.ts';
import { checkPathParameters, parseProxyTarget, upstreamUrl, type ProxyTarget } from './target.ts';
import type { Broker, BrokerRequest, BrokerResponse } from './types.ts';
import { callUpstream, upstreamAgents, type UpstreamAgents, type UpstreamExchange } from './upstream.ts';
import { unitsFromHeaders, UnitsCollector } from './units.ts';

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024;
export const DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024;

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

/** What the audit record of one call is built from, filled in as the checks pass. */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface CallDraft {
  /** Set once the request is sent upstream: from then on the call happened. */
  forwarded?: boolean;
  record: Mutable<Partial<DecisionRecord>> & { requestId: string; at: string };
  proxy: Mutable<ProxyCallSummary>;
}

export function createBroker(runtime: IssuerServices, options: BrokerOptions = {}): BrokerService {
  const { clock, log } = runtime;
  const agents = options.agents ?? upstreamAgents();
  const circuits = new CircuitBreakers(clock, options.circuit);
  const jwks = signerJwks(runtime.signer, clock, options.keysTtlMs ?? 60_000);
  const verifiers = new Map<string, Verifier>();
  // An agent presents the same token on every call of its lane: its signature is checked once,
  // its expiry on every call (revocation too, below).
  const verified = new TtlCache<string, LanyardClaims>({ ttlMs: 30_000, maxEntries: 10_000, clock });
  const toleranceSeconds = options.clockToleranceSeconds ?? 5;
  const credentials = new TtlCache<string, DecisionRecord | undefined>({ ttlMs: 60_000, clock });
  const secrets = new TtlCache<string, string>({ ttlMs: 3_600_000, maxEntries: 1_000, clock });
  const leases = new QuotaLeases(runtime.store, options.quotaLease === undefined ? {} : { maxLease: options.quotaLease });

  const verifierFor = (audience: string): Verifier => {
    let verifier = verifiers.get(audience);
    if (!verifier) {
      verifier = createVerifier({
        issuer: runtime.config.issuer,
        audience,
        jwks,
        // Revocation is checked below against the issuer's own feed, to the millisecond.
        revocations: { mode: 'off' },
        clock: () => clock.now(),
        ...(options.clockToleranceSeconds !== undefined && { clockToleranceSeconds: options.clockToleranceSeconds }),
      });
      verifiers.set(audience, verifier);
    }
    return verifier;
  };

  const secretOf = (ref: UpstreamSecretRef): Promise<string> => {
    const vault = runtime.vault;
    if (!vault) return Promise.reject(issuerUnavailable(new Error('no secret vault is configured')));
    // Versions are immutable: a version is read from the vault once per process.
    return secrets.get(`${ref.provider}@${ref.version}`, () => vault.getSecret(ref.provider, ref.version));
  };

  async function handle(request: BrokerRequest, signal?: AbortSignal): Promise<BrokerResponse> {
    const started = clock.now();
    const draft: CallDraft = {
      record: { requestId: request.requestId, at: new Date(started).toISOString() },
      proxy: { method: request.method, bytesIn: 0, bytesOut: 0, durationMs: 0 },
    };
    try {
      return await admitAndForward(request, draft, started, signal);
    } catch (error) {
      const refusal = failClosed(error);
      if (refusal.status >= 500 && !isUpstreamCode(refusal.code)) log.error('broker failed closed', { requestId: request.requestId, error: describeError(error) });
      draft.proxy.durationMs = clock.now() - started;
      try {
        // A call that reached the upstream is `proxied` whatever came of it (it counted against the bucket too).
        await runtime.decisions.append(callRecord(draft, draft.forwarded ? 'proxied' : 'denied', refusal.code, refusal.message));
      } catch (writeError) {
        return errorAnswer(failClosed(writeError), request.requestId);
      }
      return errorAnswer(refusal, request.requestId);
    }
  }

  async function admitAndForward(request: BrokerRequest, draft: CallDraft, started: number, signal?: AbortSignal): Promise<BrokerResponse> {
    const target = parseProxyTarget(request.target);
    draft.record.tool = target.provider;
    const token = brokerToken(request.headers);
    if (token === undefined) throw unauthenticated();

    const tool = await runtime.policy.tool(target.provider);
    if (!tool?.upstream) throw notFound(`provider ${target.provider}`);
    const upstream = tool.upstream;
    const claims = await verified.get(`${tool.audience} ${token}`, () => verifyToken(verifierFor(tool.audience), token));
    if (clock.now() / 1000 - toleranceSeconds >= claims.exp) throw new LanyardError('token_expired', 'the token has expired');
    const credential = await credentials.get(claims.jti, () => runtime.store.getCredential(claims.jti));
    describeCaller(draft, claims, credential);
    await checkAuthority(tool, claims, credential);

    checkRequestHeaders(request.headers, upstream);
    checkQuery(target.query, upstream);
    checkPathParameters(target.path, upstream);
    const route = admittedRoute(tool, upstream, request.method, target, claims);
    draft.proxy.action = route.action;
    draft.proxy.pathPattern = route.pattern;
    draft.record.actionsRequested = [route.action];
    draft.record.actionsGranted = [route.action];
    const maxRequestBytes = upstream.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    const declared = Number(first(request.headers['content-length']) ?? 0);
    if (declared > maxRequestBytes) throw tooLarge(maxRequestBytes);

    const ref = await runtime.policy.upstreamSecret(tool.id);
    // No key is a configuration error, the operator's to fix like a refused key: the same code,
    // not retryable (retrying cannot set it).
    if (!ref) throw new LanyardError('upstream_auth_failed', `no key is set for provider ${tool.id}; your credential is fine`, { context: { provider: tool.id } });
    draft.proxy.secretVersion = ref.version;
    const circuitKey = `${tool.id}@${ref.version}`;
    const caller = { lane: claims.lane, identity: claims.sub };
    const admission = circuits.admit(circuitKey, caller);
    if (!admission.admitted) throw circuitOpen(tool.id, admission.scope, admission.retryAfterMs);
    // A probe refused here (quota spent, vault or store down) made no call: it is released, or
    // the circuit would wait for its outcome for ever. The key is read before the quota is
    // taken, so a key that cannot be read costs the lane nothing.
    let secret: string;
    let quota: Awaited<ReturnType<typeof takeQuota>>;
    try {
      secret = await secretOf(ref);
      quota = await takeQuota(credential);
    } catch (error) {
      if (admission.probe) circuits.release(circuitKey, caller);
      throw failClosed(error);
    }

    const url = upstreamUrl(upstream.baseUrl, target, 'query' in upstream.key ? `${encodeURIComponent(upstream.key.query)}=${encodeURIComponent(secret)}` : undefined);
    let exchange: UpstreamExchange;
    draft.forwarded = true;
    try {
      exchange = await callUpstream(
        {
          url,
          method: request.method,
          headers: upstreamRequestHeaders(request.headers, upstream, url.host, secret, request.requestId),
          body: request.body,
          maxRequestBytes,
          timeoutMs: upstream.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          ...(signal && { signal }),
        },
        agents,
      );
    } catch (error) {
      if (admission.probe) circuits.release(circuitKey, caller);
      throw error;
    }
    const response = exchange.response;
    const status = response.statusCode ?? 502;
    draft.proxy.status = status;
    draft.proxy.bytesIn = exchange.bytesIn();

    if (status === 401 || status === 403) {
      // The upstream refused the broker's key (401), or this request made with it (403). Its
      // body may quote the key back: it is dropped, with the connection (draining it after the
      // deadline is cleared would have no end). Only a 401 says the key is bad (circuit.ts).
      response.resume();
      exchange.abort();
      if (status === 401) {
        const opened = circuits.failure(circuitKey, caller);
        if (opened === 'provider') log.warn('upstream refused the broker key; circuit open for every lane', { provider: tool.id, secretVersion: ref.version });
        if (opened === 'lane') log.warn("upstream refused the broker key on one lane's calls; circuit open for that lane", { provider: tool.id, secretVersion: ref.version, lane: claims.lane });
      } else {
        circuits.success(circuitKey);
      }
      const refused = status === 401 ? "the broker's key" : "this request made with the broker's key";
      throw new LanyardError('upstream_auth_failed', `the upstream refused ${refused} for ${tool.id} (HTTP ${status}); your credential is fine`, {
        context: { provider: tool.id, upstreamStatus: status },
      });
    }
    circuits.success(circuitKey);

    const maxResponseBytes = upstream.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const declaredOut = Number(response.headers['content-length'] ?? 0);
    if (declaredOut > maxResponseBytes) {
      exchange.abort();
      response.resume();
      throw new LanyardError('upstream_failed', `the upstream answer is over ${maxResponseBytes} bytes`, { context: { maxBytes: maxResponseBytes } });
    }
    // The broker asked for identity: a compressed answer is one it cannot mask the key in, so it
    // is refused rather than passed on unread. An answer without a body has nothing to hide.
    const coding = unreadableCoding(response.headers);
    if (coding !== undefined && request.method !== 'HEAD' && status !== 204 && status !== 304) {
      exchange.abort();
      response.resume();
      throw new LanyardError('upstream_failed', `the upstream answered with ${coding} coding although the broker asked for identity; the broker reads every answer to mask its key`, {
        context: { provider: tool.id },
      });
    }
    const headerUnits = upstream.units?.header ? unitsFromHeaders(response.headers, upstream.units.header) : undefined;
    const collector = upstream.units?.json ? new UnitsCollector(upstream.units.json, response.headers['content-type']) : undefined;

    // The call goes on record once its answer has streamed, however the relay ends: read to
    // the end, cut, or given back (`return()`/`throw()`) before its first chunk, which would
    // skip an async generator's `finally`. `settled` says when the record is durable.
    let recorded!: () => void;
    const settled = new Promise<void>((resolve) => (recorded = resolve));
    let finalized = false;
    const finalize = (completed: boolean, outcome: string): void => {
      if (finalized) return;
      finalized = true;
      if (completed) exchange.done();
      else exchange.abort();
      draft.proxy.bytesIn = exchange.bytesIn();
      const units = headerUnits ?? (completed ? collector?.units() : undefined);
      if (units !== undefined) draft.proxy.units = units;
      draft.proxy.durationMs = clock.now() - started;
      void settle(draft, quota, outcome).then(recorded);
    };

    // An upstream may quote the key back in its body (a 404 naming the URL, an echo): masked.
    const redactor = new SecretRedactor(secret);
    const relay = async function* (): AsyncGenerator<Uint8Array> {
      let outcome = 'forwarded';
      let completed = false;
      try {
        for await (const chunk of response as AsyncIterable<Buffer>) {
          draft.proxy.bytesOut += chunk.length;
          if (draft.proxy.bytesOut > maxResponseBytes) {
            outcome = 'upstream_failed';
            throw new Error('the upstream answer outgrew the response limit');
          }
          collector?.push(chunk);
          const safe = redactor.push(chunk);
          if (safe.length > 0) yield safe;
        }
        const rest = redactor.end();
        if (rest.length > 0) yield rest;
        completed = true;
      } catch (error) {
        if (outcome === 'forwarded') outcome = exchange.timedOut() ? 'upstream_timeout' : 'upstream_failed';
        throw error;
      } finally {
        finalize(completed, completed || outcome !== 'forwarded' ? outcome : 'client_closed');
      }
    };
    const generator = relay();
    let begun = false;
    const iterator: AsyncIterator<Uint8Array> = {
      next: () => {
        begun = true;
        return generator.next();
      },
      return: (value?: unknown) => {
        if (!begun) finalize(false, 'client_closed');
        return generator.return(value);
      },
      throw: (error?: unknown) => {
        if (!begun) finalize(false, 'client_closed');
        return generator.throw(error);
      },
    };
    return {
      status,
      headers: agentResponseHeaders(response.headers, request.requestId, secret),
      body: { [Symbol.asyncIterator]: () => iterator },
      settled,
    };
  }

  async function verifyToken(verifier: Verifier, token: string): Promise<LanyardClaims> {
    try {
      return await verifier.verify(token);
    } catch (error) {
      if (error instanceof VerificationError) {
        if (error.code === 'verifier_unavailable') throw issuerUnavailable(error);
        throw new LanyardError(error.code, error.message);
      }
      throw failClosed(error);
    }
  }

  function describeCaller(draft: CallDraft, claims: LanyardClaims, credential: DecisionRecord | undefined): void {
    const lane = parseLaneId(claims.lane);
    const instance = parseIdentityId(claims.sub)?.instance;
    Object.assign(draft.record, {
      identity: claims.sub,
      ...(instance !== undefined && { instance }),
      lane: claims.lane,
      ...(lane && { level: lane.level, tenant: lane.tenant }),
      credentialId: claims.jti,
      ...(typeof claims.client_id === 'string' && { principal: claims.client_id }),
      ...(claims.task && { task: claims.task }),
      ...(claims.act && { onBehalfOf: claims.act.sub }),
      ...(credential?.quotaBucket && { quotaBucket: credential.quotaBucket }),
      ...(credential?.budgetOwner && { budgetOwner: credential.budgetOwner }),
      ...(credential?.principal && { principal: credential.principal }),
    });
  }

  async function checkAuthority(tool: Tool, claims: LanyardClaims, credential: DecisionRecord | undefined): Promise<void> {
    if (!tool.enabled) throw new LanyardError('tool_disabled', `tool ${tool.id} is disabled`, { context: { tool: tool.id } });
    // A validly signed token always has its issuance record (written before it was returned).
    if (!credential || credential.decision !== 'issued') {
      throw new LanyardError('credential_revoked', 'the credential has no issuance record', { context: { revokedTarget: `credential:${claims.jti}` } });
    }
    const revoked = await runtime.revocations.revokedBy(credential);
    if (revoked) throw new LanyardError('credential_revoked', 'the credential has been revoked', { context: { revokedTarget: revoked.key, targetType: revoked.type } });
  }

  function admittedRoute(tool: Tool, upstream: UpstreamConfig, method: string, target: ProxyTarget, claims: LanyardClaims): RouteMatch {
    const matches = matchRoutes(tool.id, upstream, method, target.path);
    if (matches.length === 0) {
      throw new LanyardError('route_not_allowed', `${method} ${target.path} is not a request ${tool.id} declares`, { context: { field: 'path', provider: tool.id, method } });
    }
    const scope = new Set(claims.scope.split(' '));
    const laneTool = parseLaneId(claims.lane)?.tool;
    const admitted = laneTool === tool.id ? matches.find((m) => scope.has(m.action)) : undefined;
    if (!admitted) {
      throw new LanyardError('insufficient_scope', 'the credential does not grant the action this request needs', {
        context: { required: matches.map((m) => m.action) },
      });
    }
    return admitted;
  }

  async function takeQuota(credential: DecisionRecord | undefined): Promise<{ policy: QuotaPolicy; window: QuotaWindow } | undefined> {
    const bucket = credential?.quotaBucket;
    if (!bucket) return undefined;
    const policy = await runtime.policy.quota(bucket);
    if (!policy) return undefined;
    const now = clock.now();
    const window = windowOf(policy, now);
    const take = await leases.take(policy, window);
    if (take.status === 'exhausted') {
      throw quotaExhausted(bucket, window, now, {
        ...(credential.budgetOwner && { budgetOwner: credential.budgetOwner }),
        requestsUsed: take.usage.requests,
        unitsUsed: take.usage.units,
        ...(policy.requests !== undefined && { requestsLimit: policy.requests }),
        ...(policy.units !== undefined && { unitsLimit: policy.units }),
      });
    }
    return { policy, window };
  }

  /** After the answer streamed: units into the bucket, the call into the audit. Nothing to fail closed for any more. */
  async function settle(draft: CallDraft, quota: { policy: QuotaPolicy; window: QuotaWindow } | undefined, outcome: string): Promise<void> {
    const units = draft.proxy.units;
    try {
      if (quota && units !== undefined && units > 0) await runtime.store.addQuotaUnits(quota.policy.bucket, quota.window, units);
      await runtime.decisions.append(callRecord(draft, 'proxied', outcome));
    } catch (error) {
      log.error('recording a proxied call failed', { requestId: draft.record.requestId, error: describeError(error) });
    }
  }

  return {
    handle,
    close: () => {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

function callRecord(draft: CallDraft, decision: 'proxied' | 'denied', reason: string, message?: string): DecisionRecord {
  return {
    actionsRequested: [],
    actionsGranted: [],
    ...draft.record,
    ...(decision === 'denied' && { actionsGranted: [] }),
    id: `call_${draft.record.requestId}`,
    decision,
    reason,
    ...(message !== undefined && { message }),
    proxy: { ...draft.proxy },
  };
}

function isUpstreamCode(code: string): boolean {
  return code.startsWith('upstream_');
}


function circuitOpen(provider: string, scope: CircuitScope, retryAfterMs: number): LanyardError {
  const why = scope === 'lane' ? "the upstream refused the broker's key on this lane's calls repeatedly" : "the upstream refused the broker's key repeatedly";
  return new LanyardError('upstream_circuit_open', `${why}; calls to ${provider} resume after a cool-down`, {
    retryAfter: Math.max(1, Math.ceil(retryAfterMs / 1000)),
    context: { provider, circuit: scope },
  });
}

function tooLarge(maxBytes: number): LanyardError {
  return new LanyardError('request_too_large', `the body is over ${maxBytes} bytes`, { context: { maxBytes } });
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
