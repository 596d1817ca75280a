/**
 * Events (docs/events.md) are derived from committed state, never emitted beside a write that might
 * fail. Each committed change of a revocation, block, grant or upstream secret pointer item
 * maps to at most one event;
 * on AWS the change arrives through DynamoDB Streams (the publisher Lambda), on the embedded
 * default through the local change feed. Both call `eventsFromChange`, so the events are
 * identical in shape. A detail carries ids, codes and reasons, never a token or a key: details
 * are built field by field from the image, never by spreading it.
 */
import type { Grant, IssuanceBlock, Revocation, RevocationTargetType, UpstreamSecretRef } from './model.ts';
import type { LanyardEvent } from '../ports/index.ts';

export const DETAIL_TYPES = {
  credential: 'Credential Revoked',
  lane: 'Lane Revoked',
  identity: 'Identity Revoked',
  tenant: 'Tenant Revoked',
  tool: 'Tool Disabled',
  key: 'Signing Key Revoked',
  reinstated: 'Target Reinstated',
  grant: 'Grant Changed',
  rotated: 'Signing Key Rotated',
  /** A provider's upstream secret moved to a new version (issue 6); the detail names versions, never the secret. */
  secretRotated: 'Upstream Secret Rotated',
} as const;

export const REVOCATION_DETAIL_TYPES: ReadonlySet<string> = new Set(
  (['credential', 'lane', 'identity', 'tenant', 'tool', 'key'] as const satisfies readonly RevocationTargetType[]).map((t) => DETAIL_TYPES[t]),
);

/** A block item as stored: the block, and once lifted, who lifted it. */
export interface BlockImage extends IssuanceBlock {
  readonly reinstatedAt?: string;
  readonly reinstatedBy?: string;
  readonly reinstateReason?: string;
  readonly reinstateRequestId?: string;
}

export type StoreChange =
  | { readonly entity: 'revocation'; readonly newImage: Revocation }
  | { readonly entity: 'block'; readonly oldImage?: BlockImage; readonly newImage?: BlockImage }
  | { readonly entity: 'grant'; readonly oldImage?: Grant; readonly newImage?: Grant }
  | { readonly entity: 'upstreamSecret'; readonly oldImage?: UpstreamSecretRef; readonly newImage: UpstreamSecretRef };

export function eventsFromChange(change: StoreChange, eventId: (change: StoreChange) => string = defaultEventId): LanyardEvent[] {
  switch (change.entity) {
    case 'revocation': {
      const revocation = change.newImage;
      return [event(eventId(change), DETAIL_TYPES[revocation.targetType], revocation.cutoff, { revocation })];
    }
    case 'block': {
      const after = change.newImage;
      // Only the transition to reinstated is an event: the block itself travels as its revocation.
      if (!after?.reinstatedAt || change.oldImage?.reinstatedAt) return [];
      return [
        event(eventId(change), DETAIL_TYPES.reinstated, after.reinstatedAt, {
          targetKey: after.targetKey,
          targetType: after.targetType,
          revocationId: after.revocationId,
          reinstatedAt: after.reinstatedAt,
          actor: after.reinstatedBy,
          reason: after.reinstateReason,
          requestId: after.reinstateRequestId,
        }),
      ];
    }
    case 'grant': {
      const { oldImage: before, newImage: after } = change;
      const current = after ?? before;
      if (!current) return [];
      return [
        event(eventId(change), DETAIL_TYPES.grant, after?.updatedAt ?? new Date().toISOString(), {
          identity: current.identity,
          grant: current.id,
          ...(before && { before: grantSummary(before) }),
          ...(after && { after: grantSummary(after) }),
          actor: after?.changedBy,
          reason: after?.changeReason,
          requestId: after?.requestId,
        }),
      ];
    }
    case 'upstreamSecret': {
      const { oldImage: before, newImage: after } = change;
      // Rewriting the same version (an idempotent re-apply) rotates nothing.
      if (before !== undefined && before.version === after.version) return [];
      return [
        event(eventId(change), DETAIL_TYPES.secretRotated, after.rotatedAt, {
          provider: after.provider,
          version: after.version,
          ...(after.previousVersion !== undefined && { previousVersion: after.previousVersion }),
          rotatedAt: after.rotatedAt,
          ...(after.overlapUntil !== undefined && { overlapUntil: after.overlapUntil }),
          actor: after.actor,
          reason: after.reason,
          requestId: after.requestId,
        }),
      ];
    }
  }
}

function grantSummary(grant: Grant): Record<string, unknown> {
  return {
    role: `${grant.role}@${grant.roleVersion}`,
    status: grant.status,
    tenants: grant.tenants,
    kinds: grant.kinds,
    maxTtlSeconds: grant.maxTtlSeconds,
    quotaBucket: grant.quotaBucket,
  };
}

/**
 * Deterministic ids, so a change delivered twice (stream retries) is recognisably the same event:
 * every detail carries it as `eventId`.
 */
function defaultEventId(change: StoreChange): string {
  switch (change.entity) {
    case 'revocation':
      return `revocation-${change.newImage.seq}`;
    case 'block':
      return `reinstated-${change.newImage?.revocationId ?? 'unknown'}`;
    case 'grant': {
      const g = change.newImage ?? change.oldImage;
      return `grant-${g?.identity ?? ''}-${g?.id ?? ''}-${change.newImage?.updatedAt ?? 'removed'}`;
    }
    case 'upstreamSecret':
      return `secret-${change.newImage.provider}-${change.newImage.version}`;
  }
}

/** The id rides in the detail too: EventBridge assigns its own event id, so consumers dedupe on `detail.eventId`. */
function event(id: string, detailType: string, time: string, detail: Record<string, unknown>): LanyardEvent {
  return { id, source: 'lanyard', detailType, time, detail: { eventId: id, ...detail } };
}
