/**
 * Refresh tokens of agent instances (docs/http.md#post-v1spawn).
 *
 * Rules:
 * - a token is opaque, `lr_` + 32 random bytes (base64url), shown once; only its SHA-256 is
 *   stored (256 bits of entropy: a slow hash adds nothing);
 * - it authenticates as one instance; the spawning orchestrator is the principal of record,
 *   and must still be allowed to spawn the instance's class;
 * - it is single use: a successful issuance spends it and answers with its successor. The
 *   successor is stored before the presented token is spent, so a failed write never leaves
 *   the instance without a usable token; a refused issuance spends nothing;
 * - it never outlives its instance: an expired one answers `identity_revoked` (the instance
 *   expired), which only its holder can learn;
 * - presenting a spent token is a reuse, i.e. the token was copied (RFC 9700 §4.14.2 refresh
 *   token rotation): the whole instance is revoked (cut-off, issuance block, `Identity
 *   Revoked` event) with the reason `refresh_token_reused`, and the caller learns only
 *   `unauthenticated`;
 * - except once, within {@link REUSE_GRACE_SECONDS} of its spend, while its successor is
 *   still unspent: then the answer was most likely lost (the issuer died after the spend, or
 *   the agent timed out), and the retry gets a fresh successor that supersedes the first one
 *   (spends it, unpresented, in one conditional write). The first successor's plaintext is
 *   not stored, so it cannot be handed out again. A superseded token has no grace, and the
 *   supersede fails once the first successor was presented, so two parties using one chain
 *   still end in a revocation as soon as either presents a token the other spent (docs/spawn.md).
 */
import { hashSecret, newSecret } from '../domain/caller-keys.ts';
import { classOf, parseIdentityId, type Principal } from '../domain/model.ts';
import { LanyardError, forbidden, unauthenticated } from '../domain/errors.ts';
import { recordDenial } from '../issuance/issue-credential.ts';
import type { DecisionLog } from '../audit/decision-log.ts';
import type { Clock, Log, PolicyStore, RefreshTokenRecord, RefreshTokenStore, RevocationStore } from '../ports/index.ts';
import { revoke, type RevokeDeps } from '../revocation/revoke.ts';

export const REFRESH_TOKEN_PREFIX = 'lr_';
const REFRESH_TOKEN = /^lr_[A-Za-z0-9_-]{43}$/;
/** The actor named on revocations the issuer makes by itself. */
export const REUSE_ACTOR = 'lanyard:refresh-tokens';
export const REUSE_REASON = 'refresh_token_reused';
/**
 * How long after its spend a token may be presented once more (docs/spawn.md): longer than the
 * SDK's 10 s request timeout plus a restart and a few backoff steps, and as long as the
 * longest grace Okta offers.
 */
export const REUSE_GRACE_SECONDS = 60;

/** What minting a refresh token writes. */
export interface MintRefreshTokenDeps {
  readonly store: Pick<RefreshTokenStore, 'putRefreshToken'>;
  readonly clock: Clock;
}

/**
 * What authenticating and rotating a refresh token use: the tokens, the principal that spawned
 * the instance, the standing blocks, the audit of refusals, and a revocation of the instance
 * when a spent token comes back (so everything a revocation uses, too).
 */
export interface RefreshTokenDeps extends RevokeDeps, MintRefreshTokenDeps {
  readonly store: RevokeDeps['store'] & RefreshTokenStore & Pick<PolicyStore, 'getPrincipal'> & Pick<RevocationStore, 'listBlocks'>;
  readonly decisions: Pick<DecisionLog, 'append'>;
  readonly log: Log;
}

/** A new refresh token: 256 random bits. */
export function newRefreshToken(): string {
  return newSecret(REFRESH_TOKEN_PREFIX);
}

export function hashRefreshToken(token: string): string {
  return hashSecret(token);
}

/** Whether a bearer value is meant as a refresh token (and so goes down this path, valid or not). */
export function looksLikeRefreshToken(value: string): boolean {
  return value.startsWith(REFRESH_TOKEN_PREFIX);
}

/** Stores a fresh token for an instance and returns it (the only time it exists in clear). */
export async function mintRefreshToken(runtime: MintRefreshTokenDeps, binding: { instance: string; principal: string; expiresAt: string }): Promise<string> {
  const token = newRefreshToken();
  await runtime.store.putRefreshToken({
    hash: hashRefreshToken(token),
    ...binding,
    createdAt: new Date(runtime.clock.now()).toISOString(),
  });
  return token;
}

/** An authenticated instance: who it is, who spawned it, and the token it presented. */
export interface RefreshSession {
  readonly instance: string;
  readonly principal: Principal;
  readonly record: RefreshTokenRecord;
  /** A grace use of a spent token: the unspent successor the rotation supersedes. */
  readonly supersedes?: RefreshTokenRecord;
}

/**
 * Authenticates a refresh token without spending it (see {@link rotateRefreshToken}). Every
 * refusal is recorded as a denied decision.
 */
export async function authenticateRefreshToken(runtime: RefreshTokenDeps, token: string, requestId: string): Promise<RefreshSession> {
  const at = new Date(runtime.clock.now()).toISOString();
  const refuse = async (error: LanyardError, about: Partial<{ principal: string; identity: string; instance: string }> = {}): Promise<never> => {
    await recordDenial(runtime.decisions, { requestId, at, ...about }, error);
    throw error;
  };
  const record = REFRESH_TOKEN.test(token) ? await runtime.store.getRefreshToken(hashRefreshToken(token)) : undefined;
  if (!record) return refuse(unauthenticated());
  const about = { principal: record.principal, identity: record.instance, ...instancePart(record.instance) };
  const supersedes = record.spentAt ? await graceSuccessor(runtime, record) : undefined;
  if (record.spentAt && !supersedes) {
    await revokeForReuse(runtime, record, requestId);
    return refuse(unauthenticated(), about);
  }
  if (Date.parse(record.expiresAt) <= runtime.clock.now()) {
    // The holder proved it holds a genuine token: it may learn that its instance is over.
    return refuse(new LanyardError('identity_revoked', `identity ${record.instance} expired at ${record.expiresAt}`), about);
  }
  const principal = await runtime.store.getPrincipal(record.principal);
  if (!principal) return refuse(unauthenticated(), about);
  if (principal.kind !== 'orchestrator' || !(principal.spawns ?? []).includes(classOf(record.instance))) {
    return refuse(forbidden(`principal ${principal.id} may no longer spawn ${classOf(record.instance)}`), about);
  }
  return { instance: record.instance, principal, record, ...(supersedes && { supersedes }) };
}

/**
 * Spends the presented token and returns its successor: the successor is stored first, then
 * the presented token is spent in one conditional write. A grace use supersedes the presented
 * token's unspent successor instead. Losing the spend race to a concurrent use of the same
 * token is a reuse, unless the grace covers it as it covers a retry that came later (a retry
 * after a timeout may arrive while the first request is still running).
 */
export async function rotateRefreshToken(runtime: RefreshTokenDeps, session: RefreshSession, requestId: string): Promise<string> {
  const next = await mintRefreshToken(runtime, { instance: session.instance, principal: session.record.principal, expiresAt: session.record.expiresAt });
  const nextHash = hashRefreshToken(next);
  const at = new Date(runtime.clock.now()).toISOString();
  let supersedes = session.supersedes;
  let spend = supersedes
    ? await runtime.store.supersedeRefreshToken(supersedes.hash, nextHash, at)
    : await runtime.store.spendRefreshToken(session.record.hash, nextHash, at);
  if (spend.status === 'already-spent' && !supersedes) {
    supersedes = await graceSuccessor(runtime, spend.token);
    if (supersedes) spend = await runtime.store.supersedeRefreshToken(supersedes.hash, nextHash, at);
  }
  if (spend.status === 'spent-now') {
    if (supersedes) {
      runtime.log.warn('spent refresh token presented again within the reuse grace: a fresh successor supersedes the first', {
        instance: session.instance,
        principal: session.record.principal,
        requestId,
      });
    }
    return next;
  }
  if (spend.status === 'already-spent') await revokeForReuse(runtime, spend.token, requestId);
  const error = unauthenticated();
  await recordDenial(runtime.decisions, { requestId, at, principal: session.principal.id, identity: session.instance, ...instancePart(session.instance) }, error);
  throw error;
}

/**
 * The successor a spent token's grace use would supersede, if the grace covers it: the token
 * was spent by its own presentation (not superseded) within {@link REUSE_GRACE_SECONDS}, and
 * its successor is still unspent. Only advisory: the conditional supersede decides a race.
 */
async function graceSuccessor(runtime: Pick<RefreshTokenDeps, 'store' | 'clock'>, record: RefreshTokenRecord): Promise<RefreshTokenRecord | undefined> {
  if (record.spentAt === undefined || record.supersededAt !== undefined || record.replacedBy === undefined) return undefined;
  const sinceSpent = runtime.clock.now() - Date.parse(record.spentAt);
  if (!(sinceSpent <= REUSE_GRACE_SECONDS * 1000)) return undefined;
  const successor = await runtime.store.getRefreshToken(record.replacedBy);
  return successor && successor.spentAt === undefined && successor.instance === record.instance ? successor : undefined;
}

/** Revokes the instance a reused token belongs to, once: a standing block means it already is. */
async function revokeForReuse(runtime: RefreshTokenDeps, record: RefreshTokenRecord, requestId: string): Promise<void> {
  const standing = await runtime.store.listBlocks();
  if (standing.some((block) => block.targetKey === `identity:${record.instance}`)) return;
  runtime.log.warn('refresh token reused: revoking the instance', { instance: record.instance, principal: record.principal, requestId });
  await revoke(runtime, { identity: record.instance }, { actor: REUSE_ACTOR, reason: REUSE_REASON, requestId });
}

function instancePart(identity: string): { instance?: string } {
  const instance = parseIdentityId(identity)?.instance;
  return instance === undefined ? {} : { instance };
}
