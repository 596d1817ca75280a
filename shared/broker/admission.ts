/**
 * The broker's admission pipeline: the checks a proxied request passes, in order, before
 * anything is sent upstream (service.ts lists them). Each function below decides one thing and
 * throws the typed refusal when it says no; `admit` runs them in order and returns everything
 * the relay needs. The first refusal wins.
 */
import type { DecisionRecord, QuotaPolicy, Tool, UpstreamConfig, UpstreamSecretRef } from '../domain/model.ts';
import { parseIdentityId, parseLaneId } from '../domain/model.ts';
import { LanyardError, failClosed, issuerUnavailable, notFound, unauthenticated } from '../domain/errors.ts';
import type { QuotaWindow } from '../ports/index.ts';
import { quotaExhausted, windowOf } from '../issuance/quota.ts';
import { VerificationError, type LanyardClaims, type Verifier } from '@lanyard/sdk/verifier';
import type { CallDraft, BrokerContext } from './call.ts';
import type { CircuitScope } from './circuit.ts';
import { brokerToken, first, checkQuery, checkRequestHeaders } from './headers.ts';
import { matchRoutes, type RouteMatch } from './routes.ts';
import { checkPathParameters, parseProxyTarget, type ProxyTarget } from './target.ts';
import type { BrokerRequest } from './types.ts';

export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024;

/** The quota window a call was counted in (its units are added there once the answer streamed). */
export interface QuotaTaken {
  readonly policy: QuotaPolicy;
  readonly window: QuotaWindow;
}

/** A provider with an upstream: a tool the broker may call. */
type Provider = Tool & { readonly upstream: UpstreamConfig };

/** Which circuit a call went through, and whether it is that circuit's probe. */
export interface CircuitPass {
  readonly key: string;
  readonly caller: { readonly lane: string; readonly identity: string };
  readonly probe: boolean;
}

/** Everything an admitted call carries to the relay. */
export interface Admitted {
  readonly target: ProxyTarget;
  readonly tool: Provider;
  readonly upstream: UpstreamConfig;
  readonly claims: LanyardClaims;
  readonly maxRequestBytes: number;
  readonly keyRef: UpstreamSecretRef;
  readonly circuit: CircuitPass;
  readonly secret: string;
  readonly quota: QuotaTaken | undefined;
}

/** Runs the admission checks in order; the draft gathers what the audit record says of the call. */
export async function admit(ctx: BrokerContext, request: BrokerRequest, draft: CallDraft): Promise<Admitted> {
  const target = admitTarget(request, draft);
  const token = presentedToken(request);
  const tool = await admitProvider(ctx, target);
  const { upstream } = tool;
  const claims = await admitToken(ctx, tool, token);
  const credential = await admitCredential(ctx, tool, claims, draft);
  admitRequestShape(request, target, upstream);
  admitRoute(tool, request.method, target, claims, draft);
  const maxRequestBytes = admitDeclaredLength(request, upstream);
  const keyRef = await admitKey(ctx, tool, draft);
  const circuit = admitCircuit(ctx, tool, keyRef, claims);
  const { secret, quota } = await takeKeyAndQuota(ctx, circuit, keyRef, credential);
  return { target, tool, upstream, claims, maxRequestBytes, keyRef, circuit, secret, quota };
}

/** Decides whether the target as sent is a path under the prefix, free of dot segments, escapes and absolute forms. */
function admitTarget(request: BrokerRequest, draft: CallDraft): ProxyTarget {
  const target = parseProxyTarget(request.target);
  draft.record.tool = target.provider;
  return target;
}

/** Decides whether the request carries exactly one Lanyard bearer token (anything else there is refused). */
function presentedToken(request: BrokerRequest): string {
  const token = brokerToken(request.headers);
  if (token === undefined) throw unauthenticated();
  return token;
}

/** Decides whether the provider named in the path is a tool with an upstream (`not_found` otherwise). */
async function admitProvider(ctx: BrokerContext, target: ProxyTarget): Promise<Provider> {
  const tool = await ctx.deps.policy.tool(target.provider);
  if (!tool?.upstream) throw notFound(`provider ${target.provider}`);
  return tool as Provider;
}

/**
 * Decides whether the token is one the issuer signed for this tool's audience and still valid:
 * the signature is checked once per token (cached), the expiry on every call.
 */
async function admitToken(ctx: BrokerContext, tool: Tool, token: string): Promise<LanyardClaims> {
  const claims = await ctx.verified.get(`${tool.audience} ${token}`, () => verifyToken(ctx.verifierFor(tool.audience), token));
  if (ctx.deps.clock.now() / 1000 - ctx.toleranceSeconds >= claims.exp) throw new LanyardError('token_expired', 'the token has expired');
  return claims;
}

/** The verifier's refusal as the broker's typed error; a verifier that cannot check fails closed. */
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

/**
 * Decides whether the credential still carries authority: the tool enabled, the credential's
 * issuance record present, and nothing revoked that covers it (credential, lane, identity,
 * tenant, tool or key). The caller goes on the draft first, so a refusal here names who.
 */
async function admitCredential(ctx: BrokerContext, tool: Tool, claims: LanyardClaims, draft: CallDraft): Promise<DecisionRecord> {
  const credential = await ctx.credentials.get(claims.jti, () => ctx.deps.store.getCredential(claims.jti));
  describeCaller(draft, claims, credential);
  if (!tool.enabled) throw new LanyardError('tool_disabled', `tool ${tool.id} is disabled`, { context: { tool: tool.id } });
  // A validly signed token always has its issuance record (written before it was returned).
  if (!credential || credential.decision !== 'issued') {
    throw new LanyardError('credential_revoked', 'the credential has no issuance record', { context: { revokedTarget: `credential:${claims.jti}` } });
  }
  const revoked = await ctx.deps.revocations.revokedBy(credential);
  if (revoked) throw new LanyardError('credential_revoked', 'the credential has been revoked', { context: { revokedTarget: revoked.key, targetType: revoked.type } });
  return credential;
}

/** Who is calling, for the audit record: from the verified claims and the issuance record. */
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

/** Decides whether headers, query and path carry nothing meant for the upstream's credentials (hop-by-hop, auth headers, the key's parameter, undeclared `;`). */
function admitRequestShape(request: BrokerRequest, target: ProxyTarget, upstream: UpstreamConfig): void {
  checkRequestHeaders(request.headers, upstream);
  checkQuery(target.query, upstream);
  checkPathParameters(target.path, upstream);
}

/** Decides whether method and path match a declared route (`route_not_allowed`) whose action the token's scope holds (`insufficient_scope`). */
function admitRoute(tool: Provider, method: string, target: ProxyTarget, claims: LanyardClaims, draft: CallDraft): RouteMatch {
  const matches = matchRoutes(tool.id, tool.upstream, method, target.path);
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
  draft.proxy.action = admitted.action;
  draft.proxy.pathPattern = admitted.pattern;
  draft.record.actionsRequested = [admitted.action];
  draft.record.actionsGranted = [admitted.action];
  return admitted;
}

/** Decides whether the declared body length is within the provider's limit (`request_too_large`); the relay enforces it on the bytes too. */
function admitDeclaredLength(request: BrokerRequest, upstream: UpstreamConfig): number {
  const maxRequestBytes = upstream.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const declared = Number(first(request.headers['content-length']) ?? 0);
  if (declared > maxRequestBytes) throw new LanyardError('request_too_large', `the body is over ${maxRequestBytes} bytes`, { context: { maxBytes: maxRequestBytes } });
  return maxRequestBytes;
}

/**
 * Decides whether the provider has a key set. No key is a configuration error, the operator's
 * to fix like a refused key: the same code, not retryable (retrying cannot set it).
 */
async function admitKey(ctx: BrokerContext, tool: Tool, draft: CallDraft): Promise<UpstreamSecretRef> {
  const ref = await ctx.deps.policy.upstreamSecret(tool.id);
  if (!ref) throw new LanyardError('upstream_auth_failed', `no key is set for provider ${tool.id}; your credential is fine`, { context: { provider: tool.id } });
  draft.proxy.secretVersion = ref.version;
  return ref;
}

/** Decides whether the key's circuits (for this lane and for the provider) let the call through (`upstream_circuit_open`, circuit.ts). */
function admitCircuit(ctx: BrokerContext, tool: Tool, ref: UpstreamSecretRef, claims: LanyardClaims): CircuitPass {
  const key = `${tool.id}@${ref.version}`;
  const caller = { lane: claims.lane, identity: claims.sub };
  const admission = ctx.circuits.admit(key, caller);
  if (!admission.admitted) throw circuitOpen(tool.id, admission.scope, admission.retryAfterMs);
  return { key, caller, probe: admission.probe };
}

/**
 * Reads the key, then takes one request from the lane's quota bucket (`quota_exhausted`). The
 * key is read first, so a key that cannot be read costs the lane nothing. A probe refused here
 * (quota spent, vault or store down) made no call: it is released, or the circuit would wait
 * for its outcome for ever.
 */
async function takeKeyAndQuota(
  ctx: BrokerContext,
  circuit: CircuitPass,
  ref: UpstreamSecretRef,
  credential: DecisionRecord,
): Promise<{ secret: string; quota: QuotaTaken | undefined }> {
  try {
    const secret = await ctx.secretOf(ref);
    const quota = await takeQuota(ctx, credential);
    return { secret, quota };
  } catch (error) {
    if (circuit.probe) ctx.circuits.release(circuit.key, circuit.caller);
    throw failClosed(error);
  }
}

/** Decides whether the credential's quota bucket has a request left in its window, taken from this process's lease (quota-leases.ts). */
async function takeQuota(ctx: BrokerContext, credential: DecisionRecord): Promise<QuotaTaken | undefined> {
  const bucket = credential.quotaBucket;
  if (!bucket) return undefined;
  const policy = await ctx.deps.policy.quota(bucket);
  if (!policy) return undefined;
  const now = ctx.deps.clock.now();
  const window = windowOf(policy, now);
  const take = await ctx.leases.take(policy, window);
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

function circuitOpen(provider: string, scope: CircuitScope, retryAfterMs: number): LanyardError {
  const why = scope === 'lane' ? "the upstream refused the broker's key on this lane's calls repeatedly" : "the upstream refused the broker's key repeatedly";
  return new LanyardError('upstream_circuit_open', `${why}; calls to ${provider} resume after a cool-down`, {
    retryAfter: Math.max(1, Math.ceil(retryAfterMs / 1000)),
    context: { provider, circuit: scope },
  });
}
