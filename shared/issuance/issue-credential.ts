/**
 * Issue one credential for one lane (docs/domain.md#the-issuance-decision, #credentials).
 *
 * Default deny, in this order, the first failure wins: caller authenticated → caller bound to
 * the identity → identity active → tool known and enabled (globally and for this identity) →
 * tenant and lane not revoked → no cut-off covering the lane in the current second (else the
 * decision is made again in the next one: a credential is never born revoked) → every action
 * granted by one live grant for this tenant and environment → kind allowed → TTL within the
 * grant's cap → quota not exhausted. Only then is a credential minted, and its decision record
 * is durable before the answer is returned. Every refusal is recorded too.
 */
import { randomId } from '../domain/caller-keys.ts';
import {
  ALL_TENANTS,
  classOf,
  laneId,
  parseIdentityId,
  type AccessLevel,
  type CredentialKind,
  type DecisionRecord,
  type Grant,
  type Identity,
  type IssuanceBlock,
  type Principal,
  type Tool,
} from '../domain/model.ts';
import { LanyardError, failClosed, invalidRequest, notGranted } from '../domain/errors.ts';
import type { DecisionLog } from '../audit/decision-log.ts';
import type { PolicyView } from '../policy/policy-view.ts';
import type { AwsSessionCredentials, Clock, IssuanceQuota, SessionIssuer, Signer } from '../ports/index.ts';
import type { RevocationIndex, RevocationSubject } from '../revocation/revocation-index.ts';
import { signAccessToken } from './jws.ts';
import type { CredentialRequest } from '../domain/schemas.ts';

export const DEFAULT_TTL_SECONDS = 300;
export const MIN_TTL_SECONDS = 30;
/** STS cannot issue a session shorter than this (AssumeRole DurationSeconds floor). */
export const STS_MIN_DURATION_SECONDS = 900;
/** A well-behaved client refreshes at this fraction of the lifetime (docs/http.md). */
export const REFRESH_FRACTION = 0.75;
/** Decisions made before a credential born revoked is refused (each waits out the second of a cut-off). */
export const BORN_REVOKED_ATTEMPTS = 3;

export interface IssueDeps {
  readonly issuer: string;
  readonly policy: PolicyView;
  readonly signer: Signer;
  readonly decisions: DecisionLog;
  readonly clock: Clock;
  readonly quota: IssuanceQuota;
  /** The cut-offs a new credential must be issued after. */
  readonly revocations: Pick<RevocationIndex, 'latestCutoff'>;
  /** Absent where no AWS credentials are configured: the `sts` kind is then not offered. */
  readonly sessions?: SessionIssuer;
}

export interface IssueContext {
  readonly requestId: string;
  /** The authenticated caller. */
  readonly principal: Principal;
  /** The identity the caller acts as when it is not the principal's own (an instance's refresh token). */
  readonly identity?: string;
  /**
   * `identity` is the instance of an IAM session (`instancePerSession`): it has no record of
   * its own, and is its class under its own name, so its lanes and revocations are its own.
   */
  readonly sessionInstance?: true;
}

export interface IssuedCredential {
  readonly credentialId: string;
  readonly kind: CredentialKind;
  readonly token?: string;
  /** The signing key of a JWT (also in its header). */
  readonly kid?: string;
  readonly aws?: AwsSessionCredentials;
  readonly tokenType: 'Bearer' | 'aws-sts';
  readonly identity: string;
  readonly lane: string;
  readonly tool: string;
  readonly tenant: string;
  readonly level: AccessLevel;
  readonly actions: readonly string[];
  readonly audience: string;
  readonly issuedAt: string;
  readonly expiresAt: string;
  readonly refreshAt: string;
  readonly ttlSeconds: number;
  readonly quotaBucket: string;
  readonly role: string;
  /** Set when the lifetime differs from what was asked, and why (e.g. the STS 900 s floor). */
  readonly notice?: string;
}

/** The record being built as the decision proceeds: every denial carries what was known by then. */
type Draft = { -readonly [K in keyof DecisionRecord]?: DecisionRecord[K] };

export async function issueCredential(deps: IssueDeps, ctx: IssueContext, request: CredentialRequest): Promise<IssuedCredential> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await decideOnce(deps, ctx, request, attempt === BORN_REVOKED_ATTEMPTS);
    } catch (error) {
      if (!(error instanceof BornRevoked)) throw error;
      await sleep(deps.clock, error.waitMs);
    }
  }
}

/**
 * A revocation's cut-off covers every credential issued at or before it, and `iat` has whole
 * seconds: minting in the second of a cut-off that covers the lane (just after a reinstate,
 * or a key revocation, which blocks nothing) would hand out a credential that is already
 * revoked. The decision is made again once that second is over (docs/decisions.md).
 */
class BornRevoked extends Error {
  readonly waitMs: number;

  constructor(waitMs: number) {
    super('a cut-off covering this credential is in the current second');
    this.waitMs = waitMs;
  }
}

async function decideOnce(deps: IssueDeps, ctx: IssueContext, request: CredentialRequest, lastAttempt: boolean): Promise<IssuedCredential> {
  const now = deps.clock.now();
  const draft: Draft = {
    requestId: ctx.requestId,
    at: new Date(now).toISOString(),
    principal: ctx.principal.id,
    tool: request.tool,
    tenant: request.tenant ?? ALL_TENANTS,
    kind: request.kind ?? 'jwt',
    actionsRequested: request.actions,
    actionsGranted: [],
    ...(request.task && { task: request.task }),
    ...(request.onBehalfOf && { onBehalfOf: request.onBehalfOf }),
  };
  try {
    const issued = await decideAndMint(deps, ctx, request, draft, now, lastAttempt);
    await deps.decisions.append(issuedRecord(draft, issued));
    return issued;
  } catch (error) {
    if (error instanceof BornRevoked) throw error;
    const refusal = failClosed(error);
    await recordDenial(deps.decisions, draft, refusal);
    throw refusal;
  }
}

/** Records a refusal; if even that cannot be written, the caller gets `issuer_unavailable`. */
export async function recordDenial(decisions: Pick<DecisionLog, 'append'>, draft: Partial<DecisionRecord>, refusal: LanyardError): Promise<void> {
  const record: DecisionRecord = {
    actionsRequested: [],
    actionsGranted: [],
    at: new Date().toISOString(),
    requestId: 'unknown',
    ...draft,
    id: `deny_${draft.requestId ?? randomId()}`,
    decision: 'denied',
    reason: refusal.code,
    message: refusal.message,
  };
  try {
    await decisions.append(record);
  } catch (writeError) {
    throw failClosed(writeError);
  }
}

async function decideAndMint(deps: IssueDeps, ctx: IssueContext, request: CredentialRequest, draft: Draft, now: number, lastAttempt: boolean): Promise<IssuedCredential> {
  const identityId = callerIdentity(ctx);
  draft.identity = identityId;

  // An instance (`class/env#id`) has its own record (status, expiry) but holds its class's grants.
  const classId = classOf(identityId);
  const [[view, classView, tool], blocks] = await Promise.all([
    readCallerPolicy(deps.policy, identityId, classId, request.tool),
    deps.policy.blocks(),
  ]);
  const own = view?.identity ?? (ctx.sessionInstance && classView ? asSessionInstance(classView.identity, identityId) : undefined);
  const identity = requireActiveIdentity(own, identityId, blocks, now);
  if (identity.instance) {
    draft.instance = identity.instance;
    requireActiveIdentity(classView?.identity, classId, blocks, now);
  }
  const grants = (classId === identityId ? view : classView)?.grants ?? [];

  const known = requireEnabledTool(tool, request.tool, identity, blocks);
  const { actions, level } = resolveActions(known, request.actions);
  const tenant = request.tenant ?? ALL_TENANTS;
  const lane = laneId({ identity: identity.id, tool: known.id, level, tenant });
  Object.assign(draft, { lane, level, audience: known.audience });
  requireLaneOpen(blocks, lane, tenant);

  const kind = request.kind ?? 'jwt';
  const kid = kind === 'jwt' ? await deps.signer.activeKid() : undefined;
  await requireAfterCutoffs(deps, { id: '', identity: identity.id, lane, tenant, tool: known.id, ...(kid && { kid }) }, now, lastAttempt);
  const grant = await chooseGrant(deps.policy, grants, { identity, actions, tenant, kind, ttlSeconds: request.ttlSeconds });
  const asked = request.ttlSeconds ?? Math.min(DEFAULT_TTL_SECONDS, grant.maxTtlSeconds);
  // A credential never outlives its identity: an instance's credentials end with the instance.
  const identityLeft = identity.expiresAt ? Math.floor((Date.parse(identity.expiresAt) - now) / 1000) : Infinity;
  const ttlSeconds = Math.max(1, Math.min(asked, identityLeft));
  Object.assign(draft, { grant: grant.id, role: `${grant.role}@${grant.roleVersion}`, quotaBucket: grant.quotaBucket });
  if (grant.budgetOwner) draft.budgetOwner = grant.budgetOwner;

  await deps.quota.take(grant.quotaBucket, now);

  const common = { identity, tool: known, lane, level, tenant, actions, grant, ttlSeconds, now };
  const issued = await (kind === 'jwt' ? mintJwt(deps, ctx, request, common) : mintSts(deps, request, common));
  return ttlSeconds < asked && !issued.notice
    ? { ...issued, notice: `the lifetime was shortened to ${ttlSeconds} s: identity ${identity.id} expires at ${identity.expiresAt}` }
    : issued;
}

/**
 * The caller's identity (and its class's) with the grants, then, in one batch, the tool and
 * the role version and quota bucket of every active grant: a cold policy view reads these in
 * two round trips instead of one per item (docs/deploy.md, "AWS calls per issuance"). A warm
 * view reads nothing.
 */
async function readCallerPolicy(policy: PolicyView, identityId: string, classId: string, toolId: string) {
  const [view, classView] = await Promise.all([policy.identity(identityId), classId === identityId ? undefined : policy.identity(classId)]);
  const active = ((classId === identityId ? view : classView)?.grants ?? []).filter((grant) => grant.status === 'active');
  await policy.prefetch({
    tools: [toolId],
    roles: active.map((grant) => ({ id: grant.role, version: grant.roleVersion })),
    quotas: active.map((grant) => grant.quotaBucket),
  });
  return [view, classView, await policy.tool(toolId)] as const;
}

/** Throws BornRevoked (or, on the last attempt, a retryable refusal) when a cut-off covering this credential is in the second it would be issued in. */
async function requireAfterCutoffs(deps: IssueDeps, subject: RevocationSubject, now: number, lastAttempt: boolean): Promise<void> {
  const cutoff = await deps.revocations.latestCutoff(subject);
  const issuedAt = Math.floor(now / 1000) * 1000;
  if (cutoff === undefined || issuedAt > cutoff) return;
  const waitMs = (Math.floor(cutoff / 1000) + 1) * 1000 - now;
  // More than a second away is a cut-off from a clock running ahead of ours: not ours to wait for.
  if (lastAttempt || waitMs > 1000) {
    throw new LanyardError('issuer_unavailable', 'a revocation covering this lane was made this second; a credential issued now would be revoked already, retry', {
      retryAfter: Math.max(1, Math.ceil(waitMs / 1000)),
    });
  }
  throw new BornRevoked(waitMs);
}

function sleep(clock: Clock, ms: number): Promise<void> {
  return clock.sleep ? clock.sleep(ms) : new Promise((resolve) => setTimeout(resolve, ms));
}

/** An IAM session's instance: its class's record under the instance's name, with no expiry of its own (its session's credentials end it). */
function asSessionInstance(agentClass: Identity, instanceId: string): Identity | undefined {
  const parsed = parseIdentityId(instanceId);
  if (parsed?.instance === undefined) return undefined;
  return { ...agentClass, id: instanceId, instance: parsed.instance };
}

function callerIdentity(ctx: IssueContext): string {
  if (ctx.identity) return ctx.identity;
  if (ctx.principal.kind === 'agent' && ctx.principal.identity) return ctx.principal.identity;
  throw notGranted(`principal ${ctx.principal.id} is not bound to an identity`);
}

function requireActiveIdentity(identity: Identity | undefined, id: string, blocks: ReadonlyMap<string, IssuanceBlock>, now: number): Identity {
  if (!identity) throw notGranted(`identity ${id} is not known to this issuer`);
  const classId = identity.instance ? `${identity.agentClass}/${identity.environment}` : undefined;
  const block = blocks.get(`identity:${identity.id}`) ?? (classId ? blocks.get(`identity:${classId}`) : undefined);
  if (block) throw new LanyardError('identity_revoked', `identity ${identity.id} was revoked: ${block.reason}`, { context: { since: block.since } });
  if (identity.status !== 'active') throw new LanyardError('identity_revoked', `identity ${identity.id} is ${identity.status}`);
  if (identity.expiresAt && Date.parse(identity.expiresAt) <= now) {
    throw new LanyardError('identity_revoked', `identity ${identity.id} expired at ${identity.expiresAt}`);
  }
  return identity;
}

/** An unknown tool looks exactly like an ungranted one: a tool is invisible until a grant names it. */
function requireEnabledTool(tool: Tool | undefined, id: string, identity: Identity, blocks: ReadonlyMap<string, IssuanceBlock>): Tool {
  if (!tool) throw notGranted(`no grant of ${identity.id} covers tool ${id}`, { tool: id });
  const classId = `${identity.agentClass}/${identity.environment}`;
  const block = blocks.get(`tool:${tool.id}`) ?? blocks.get(`tool:${tool.id}@${identity.id}`) ?? blocks.get(`tool:${tool.id}@${classId}`);
  if (!tool.enabled || block) {
    throw new LanyardError('tool_disabled', `tool ${tool.id} is disabled${block ? `: ${block.reason}` : ''}`, { context: { tool: tool.id } });
  }
  return tool;
}

/**
 * Normalizes `read` or `tickets:read` to `tickets:read` and finds the one access level they
 * share. Read, write and admin authority never travel in one credential (docs/domain.md).
 */
function resolveActions(tool: Tool, requested: readonly string[]): { actions: string[]; level: AccessLevel } {
  const actions: string[] = [];
  const levels = new Set<AccessLevel>();
  requested.forEach((raw, index) => {
    const colon = raw.indexOf(':');
    const toolPart = colon === -1 ? tool.id : raw.slice(0, colon);
    const verb = colon === -1 ? raw : raw.slice(colon + 1);
    if (toolPart !== tool.id) throw invalidRequest(`actions[${index}]`, `action ${raw} is not an action of tool ${tool.id}`);
    const level = Object.hasOwn(tool.actions, verb) ? tool.actions[verb] : undefined;
    if (!level) throw notGranted(`no grant covers ${tool.id}:${verb}`, { action: `${tool.id}:${verb}` });
    levels.add(level);
    const action = `${tool.id}:${verb}`;
    if (!actions.includes(action)) actions.push(action);
  });
  if (levels.size > 1) {
    throw invalidRequest('actions', `one credential serves one access level; these actions mix ${[...levels].sort().join(' and ')}`);
  }
  return { actions, level: [...levels][0]! };
}

function requireLaneOpen(blocks: ReadonlyMap<string, IssuanceBlock>, lane: string, tenant: string): void {
  const tenantBlock = tenant === ALL_TENANTS ? undefined : blocks.get(`tenant:${tenant}`);
  if (tenantBlock) throw new LanyardError('tenant_revoked', `tenant ${tenant} was revoked: ${tenantBlock.reason}`, { context: { tenant } });
  const laneBlock = blocks.get(`lane:${lane}`);
  if (laneBlock) throw new LanyardError('lane_revoked', `lane ${lane} was revoked: ${laneBlock.reason}`, { context: { lane } });
}

interface GrantQuestion {
  readonly identity: Identity;
  readonly actions: readonly string[];
  readonly tenant: string;
  readonly kind: CredentialKind;
  readonly ttlSeconds: number | undefined;
}

/**
 * One grant must cover every requested action, so a credential is attributable to exactly
 * one role version and quota bucket. Among those, the first (by id) that allows the kind
 * and the TTL is used; otherwise the most specific refusal is given.
 */
async function chooseGrant(policy: PolicyView, grants: readonly Grant[], q: GrantQuestion): Promise<Grant> {
  const covering: Grant[] = [];
  for (const grant of [...grants].sort((a, b) => a.id.localeCompare(b.id))) {
    if (grant.status !== 'active' || grant.environment !== q.identity.environment) continue;
    if (!grant.tenants.includes(ALL_TENANTS) && !grant.tenants.includes(q.tenant)) continue;
    const role = await policy.role(grant.role, grant.roleVersion);
    if (role && q.actions.every((a) => role.actions.includes(a))) covering.push(grant);
  }
  if (covering.length === 0) {
    throw notGranted(`no grant of ${q.identity.id} covers ${q.actions.join(' ')} for tenant ${q.tenant}`);
  }
  const kindAllowed = covering.filter((g) => g.kinds.includes(q.kind));
  if (kindAllowed.length === 0) {
    throw new LanyardError('kind_not_allowed', `credentials of kind ${q.kind} are not allowed for this lane`, {
      context: { allowed: [...new Set(covering.flatMap((g) => g.kinds))].sort() },
    });
  }
  if (q.ttlSeconds === undefined) return kindAllowed[0]!;
  const fitting = kindAllowed.find((g) => q.ttlSeconds! <= g.maxTtlSeconds);
  if (fitting) return fitting;
  const maxTtlSeconds = Math.max(...kindAllowed.map((g) => g.maxTtlSeconds));
  throw invalidRequest('ttlSeconds', `ttlSeconds ${q.ttlSeconds} is above this lane's cap of ${maxTtlSeconds}`, { maxTtlSeconds });
}

interface Minting {
  readonly identity: Identity;
  readonly tool: Tool;
  readonly lane: string;
  readonly level: AccessLevel;
  readonly tenant: string;
  readonly actions: readonly string[];
  readonly grant: Grant;
  readonly ttlSeconds: number;
  readonly now: number;
}

async function mintJwt(deps: IssueDeps, ctx: IssueContext, request: CredentialRequest, m: Minting): Promise<IssuedCredential> {
  const credentialId = randomId();
  const iat = Math.floor(m.now / 1000);
  const exp = iat + m.ttlSeconds;
  const claims = {
    iss: deps.issuer,
    sub: m.identity.id,
    aud: m.tool.audience,
    exp,
    iat,
    nbf: iat,
    jti: credentialId,
    client_id: ctx.principal.id,
    scope: m.actions.join(' '),
    lane: m.lane,
    tenant: m.tenant,
    env: m.identity.environment,
    role: `${m.grant.role}@${m.grant.roleVersion}`,
    ...(request.task && { task: request.task }),
    ...(request.onBehalfOf && { act: { sub: request.onBehalfOf } }),
  };
  const { token, kid } = await signAccessToken(deps.signer, claims);
  return answer(m, { credentialId, kind: 'jwt', token, kid, tokenType: 'Bearer' }, iat * 1000, exp * 1000);
}

async function mintSts(deps: IssueDeps, request: CredentialRequest, m: Minting): Promise<IssuedCredential> {
  const aws = m.tool.aws;
  if (!deps.sessions || !aws) {
    throw new LanyardError('kind_not_allowed', `this issuer cannot mint sts sessions for tool ${m.tool.id}`, { context: { allowed: ['jwt'] } });
  }
  const credentialId = randomId();
  const durationSeconds = Math.max(m.ttlSeconds, STS_MIN_DURATION_SECONDS);
  const permissions = m.actions.flatMap((a) => aws.permissions[a.slice(a.indexOf(':') + 1)] ?? []);
  const session = await deps.sessions.assumeRole({
    roleArn: aws.roleArn,
    roleSessionName: credentialId,
    sourceIdentity: m.identity.id,
    durationSeconds,
    sessionPolicy: sessionPolicy(permissions, aws.resources ?? ['*']),
    tags: {
      'lanyard:identity': m.identity.id,
      'lanyard:lane': m.lane,
      'lanyard:tenant': m.tenant,
      'lanyard:credential': credentialId,
    },
  });
  const notice =
    durationSeconds > m.ttlSeconds
      ? `STS sessions last at least ${STS_MIN_DURATION_SECONDS} s: ttlSeconds ${request.ttlSeconds ?? m.ttlSeconds} was raised to ${durationSeconds}`
      : undefined;
  const issuedAt = m.now;
  const expiresAt = Date.parse(session.expiration);
  return answer({ ...m, ttlSeconds: durationSeconds }, { credentialId, kind: 'sts', aws: session, tokenType: 'aws-sts', ...(notice && { notice }) }, issuedAt, expiresAt);
}

/** An IAM session policy allowing only the granted actions' permissions. */
export function sessionPolicy(permissions: readonly string[], resources: readonly string[]): string {
  const actions = [...new Set(permissions)].sort();
  if (actions.length === 0) throw notGranted('the granted actions map to no IAM permissions');
  return JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: actions, Resource: resources }] });
}

function answer(
  m: Minting,
  minted: Pick<IssuedCredential, 'credentialId' | 'kind' | 'token' | 'kid' | 'aws' | 'tokenType' | 'notice'>,
  issuedAtMs: number,
  expiresAtMs: number,
): IssuedCredential {
  const refreshAtMs = issuedAtMs + Math.floor((expiresAtMs - issuedAtMs) * REFRESH_FRACTION);
  return {
    ...minted,
    identity: m.identity.id,
    lane: m.lane,
    tool: m.tool.id,
    tenant: m.tenant,
    level: m.level,
    actions: m.actions,
    audience: m.tool.audience,
    issuedAt: new Date(issuedAtMs).toISOString(),
    expiresAt: new Date(expiresAtMs).toISOString(),
    refreshAt: new Date(refreshAtMs).toISOString(),
    ttlSeconds: Math.round((expiresAtMs - issuedAtMs) / 1000),
    quotaBucket: m.grant.quotaBucket,
    role: `${m.grant.role}@${m.grant.roleVersion}`,
  };
}

function issuedRecord(draft: Draft, issued: IssuedCredential): DecisionRecord {
  return {
    ...(draft as DecisionRecord),
    id: issued.credentialId,
    decision: 'issued',
    reason: 'granted',
    actionsGranted: issued.actions,
    credentialId: issued.credentialId,
    ...(issued.kid && { kid: issued.kid }),
    issuedAt: issued.issuedAt,
    expiresAt: issued.expiresAt,
  };
}
