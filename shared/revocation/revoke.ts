/**
 * Revoke and reinstate (docs/domain.md#revocation).
 *
 * - A revocation sets a cut-off on a target: every credential of the target issued at or
 *   before it is dead. The record matters only until the longest credential lifetime has
 *   passed after the cut-off (`relevantUntil`), so the set a verifier holds stays small.
 * - Revoking a lane, identity, tenant or tool also blocks new issuance for it, with the typed
 *   code of that target, until an admin reinstates it. Reinstating lifts the block but not
 *   the cut-off: credentials issued before it stay dead.
 * - The block is written before the revocation record: if the second write fails, new
 *   issuance is already stopped and the admin retries; the event and the feed entry come from
 *   the revocation record itself, so there is never one without the other.
 * - Every revoke and reinstate is an audited decision with its actor and reason.
 */
import * as z from 'zod';
import {
  IDENTITY_ID,
  TENANT_ID,
  TOOL_ID,
  parseLaneId,
  revocationTargetKey,
  type DecisionRecord,
  type IssuanceBlock,
  type Revocation,
  type RevocationTarget,
} from '../domain/model.ts';
import { LanyardError, notFound } from '../domain/errors.ts';
import type { DecisionLog } from '../audit/decision-log.ts';
import type { PolicyView } from '../policy/policy-view.ts';
import type { Clock, DecisionStore, PolicyStore, RevocationStore, SessionRevoker } from '../ports/index.ts';
import type { RevocationIndex } from './revocation-index.ts';

/** The longest a credential can live: the TTL cap of any JWT grant (sts grants stop at `STS_MAX_TTL_SECONDS`). */
export const MAX_CREDENTIAL_LIFETIME_SECONDS = 43_200;
/** Verifiers accept a little clock skew; a cut-off is kept that much longer than the lifetime it covers. */
export const CLOCK_SKEW_MARGIN_SECONDS = 60;

const credentialId = z.string().regex(/^crd_[A-Za-z0-9_-]{16,64}$/, 'a credential id (crd_…)');
const laneIdSchema = z.string().refine((v) => parseLaneId(v) !== undefined, 'a lane id: <identity>:<tool>:<read|write|admin>:<tenant or *>');

export const RevocationTargetSchema = z.union([
  z.object({ credential: credentialId }).strict(),
  z.object({ lane: laneIdSchema }).strict(),
  z.object({ identity: z.string().regex(IDENTITY_ID) }).strict(),
  z.object({ tenant: z.string().regex(TENANT_ID).refine((t) => t !== '*', 'a tenant id, not *') }).strict(),
  z.object({ tool: z.string().regex(TOOL_ID), identity: z.string().regex(IDENTITY_ID).optional() }).strict(),
  z.object({ key: z.string().regex(/^[A-Za-z0-9_-]{8,128}$/, 'a key id (kid)') }).strict(),
]);

export const ReasonSchema = z.string().trim().min(3, 'say why, in a few words').max(512);

export interface AdminAction {
  readonly actor: string;
  readonly reason: string;
  readonly requestId: string;
}

export interface RevokeResult {
  readonly revocation: Revocation;
  readonly blocksIssuance: boolean;
}

/** What a revocation reads and writes. `IssuerServices` is one; tests pass fakes of these ports. */
export interface RevokeDeps {
  /** A credential's record (its lane and kind), the tool roles an STS deny goes to, and the feed and blocks written. */
  readonly store: Pick<DecisionStore, 'getCredential'> & Pick<PolicyStore, 'getTool' | 'listTools'> & Pick<RevocationStore, 'putBlock' | 'appendRevocation'>;
  /** Dropped at once, so this process's next decision sees the block and the cut-off. */
  readonly policy: Pick<PolicyView, 'invalidate'>;
  readonly revocations: Pick<RevocationIndex, 'invalidate'>;
  readonly decisions: Pick<DecisionLog, 'append'>;
  readonly clock: Clock;
  /** Where present (the AWS admin function), STS sessions the revocation covers are denied too. */
  readonly stsRevoker?: SessionRevoker;
}

/** What lifting a block reads and writes. */
export interface ReinstateDeps {
  readonly store: Pick<RevocationStore, 'reinstateBlock'>;
  readonly policy: Pick<PolicyView, 'invalidate'>;
  readonly decisions: Pick<DecisionLog, 'append'>;
  readonly clock: Clock;
}

// Appends from this process are serialized so the feed's sequence is committed in order here;
// readers still tolerate gaps from other processes (see revocation-feed.ts).
let appendQueue: Promise<unknown> = Promise.resolve();

export async function revoke(runtime: RevokeDeps, target: RevocationTarget, action: AdminAction): Promise<RevokeResult> {
  const now = runtime.clock.now();
  const cutoff = new Date(now).toISOString();
  const { type, key } = revocationTargetKey(target);

  let relevantUntilMs = now + (MAX_CREDENTIAL_LIFETIME_SECONDS + CLOCK_SKEW_MARGIN_SECONDS) * 1000;
  let about: Partial<DecisionRecord> = {};
  let stsCredentialTool: string | undefined;
  if ('credential' in target) {
    const record = await runtime.store.getCredential(target.credential);
    if (!record) throw notFound(`credential ${target.credential}`);
    // A credential's cut-off matters only until that credential would have expired anyway.
    if (record.expiresAt) relevantUntilMs = Date.parse(record.expiresAt) + CLOCK_SKEW_MARGIN_SECONDS * 1000;
    about = { identity: record.identity, lane: record.lane, tenant: record.tenant, tool: record.tool, quotaBucket: record.quotaBucket };
    if (record.kind === 'sts') stsCredentialTool = record.tool;
  }

  const blocksIssuance = type === 'lane' || type === 'identity' || type === 'tenant' || type === 'tool';
  const revocationId = `rev_${action.requestId}`;
  if (blocksIssuance) {
    const block: IssuanceBlock = { targetKey: key, targetType: type, revocationId, since: cutoff, actor: action.actor, reason: action.reason };
    await runtime.store.putBlock(block);
  }
  const append = appendQueue.then(() =>
    runtime.store.appendRevocation({
      id: revocationId,
      target,
      targetType: type,
      targetKey: key,
      cutoff,
      relevantUntil: new Date(Math.max(relevantUntilMs, now)).toISOString(),
      actor: action.actor,
      reason: action.reason,
      requestId: action.requestId,
    }),
  );
  appendQueue = append.catch(() => undefined);
  const revocation = await append;
  runtime.policy.invalidate();
  runtime.revocations.invalidate();

  await runtime.decisions.append(adminRecord('revoked', target, action, cutoff, { ...compactRecord(about), revocationId, cutoff }));
  await denyStsSessions(runtime, target, cutoff, stsCredentialTool);
  return { revocation, blocksIssuance };
}

/**
 * STS sessions cannot be deleted (docs/domain.md#credentials): revoking a lane, identity, tenant, tool or sts
 * credential also denies, on every tool role it reaches, the sessions it covers issued at or
 * before the cut-off, when the runtime can (`stsRevoker`). Every role is tried; then the first
 * failure propagates: the revocation stands, and the admin retries.
 */
async function denyStsSessions(runtime: RevokeDeps, target: RevocationTarget, cutoff: string, stsCredentialTool: string | undefined): Promise<void> {
  const revoker = runtime.stsRevoker;
  if (!revoker) return;
  const failures: unknown[] = [];
  for (const roleArn of await stsRolesOf(runtime, target, stsCredentialTool)) {
    await revoker.revokeSessions({ roleArn, target, cutoff }).catch((error: unknown) => failures.push(error));
  }
  if (failures.length > 0) throw failures[0];
}

/** The tool roles whose sessions a target can cover: its tool's, or, for an identity or tenant, every tool's. */
async function stsRolesOf(runtime: RevokeDeps, target: RevocationTarget, stsCredentialTool: string | undefined): Promise<string[]> {
  const toolId = 'lane' in target ? parseLaneId(target.lane)?.tool : 'tool' in target ? target.tool : 'credential' in target ? stsCredentialTool : undefined;
  if (toolId !== undefined) {
    const roleArn = (await runtime.store.getTool(toolId))?.aws?.roleArn;
    return roleArn ? [roleArn] : [];
  }
  if (!('identity' in target) && !('tenant' in target)) return [];
  return [...new Set((await runtime.store.listTools()).flatMap((tool) => (tool.aws?.roleArn ? [tool.aws.roleArn] : [])))].sort();
}

export async function reinstate(runtime: ReinstateDeps, target: RevocationTarget, action: AdminAction): Promise<{ lifted: IssuanceBlock }> {
  const { type, key } = revocationTargetKey(target);
  if (type === 'credential' || type === 'key') {
    throw new LanyardError('invalid_request', `a ${type} revocation is final: issue a new credential or rotate the key`, { context: { field: 'target' } });
  }
  const at = new Date(runtime.clock.now()).toISOString();
  const lifted = await runtime.store.reinstateBlock(key, { at, actor: action.actor, reason: action.reason, requestId: action.requestId });
  if (!lifted) throw notFound(`a standing block on ${key}`);
  runtime.policy.invalidate();
  await runtime.decisions.append(adminRecord('reinstated', target, action, at, { revocationId: lifted.revocationId }));
  return { lifted };
}

/** The audit record of an admin decision, indexed by whatever identity, lane, tenant or tool it touches. */
export function adminRecord(
  decision: 'revoked' | 'reinstated',
  target: RevocationTarget,
  action: AdminAction,
  at: string,
  extra: Partial<DecisionRecord>,
): DecisionRecord {
  const { key } = revocationTargetKey(target);
  const lane = 'lane' in target ? parseLaneId(target.lane) : undefined;
  const identity = lane?.identity ?? ('identity' in target ? target.identity : undefined);
  const tool = lane?.tool ?? ('tool' in target ? target.tool : undefined);
  const tenant = lane?.tenant ?? ('tenant' in target ? target.tenant : undefined);
  return {
    id: `${decision}_${action.requestId}`,
    requestId: action.requestId,
    at,
    decision,
    reason: action.reason,
    actor: action.actor,
    principal: action.actor,
    target,
    targetKey: key,
    actionsRequested: [],
    actionsGranted: [],
    ...(identity && { identity }),
    ...(tool && { tool }),
    ...(tenant && tenant !== '*' && { tenant }),
    ...('lane' in target && { lane: target.lane }),
    ...('credential' in target && { credentialId: target.credential }),
    ...extra,
  };
}

function compactRecord(value: Partial<DecisionRecord>): Partial<DecisionRecord> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}
