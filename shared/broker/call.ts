/**
 * What the broker's steps share about one call: the broker's long-lived parts (`BrokerContext`,
 * built once by `createBroker`) and the call's audit record as it fills in (`CallDraft`).
 */
import type { DecisionRecord, ProxyCallSummary, UpstreamSecretRef } from '../domain/model.ts';
import type { TtlCache } from '../lib/cache.ts';
import type { DecisionStore, QuotaStore } from '../ports/index.ts';
import type { IssuerServices } from '../ports/services.ts';
import type { LanyardClaims, Verifier } from '@lanyard/sdk/verifier';
import type { CircuitBreakers } from './circuit.ts';
import type { QuotaLeases } from './quota-leases.ts';
import type { UpstreamAgents } from './upstream.ts';

/**
 * The issuer's parts the broker uses: its keys and URL (to verify agents' tokens), the
 * credential records and live revocations, the policy view (tools, quotas, secret pointers),
 * the broker's quota counters, the vault and the audit. `IssuerServices` is one.
 */
export type BrokerDeps = Pick<IssuerServices, 'config' | 'policy' | 'revocations' | 'signer' | 'decisions' | 'clock' | 'log' | 'vault'> & {
  readonly store: Pick<DecisionStore, 'getCredential'> & Pick<QuotaStore, 'takeQuota' | 'addQuotaUnits'>;
};

/** The broker's long-lived parts: caches, circuits, leases and pools, shared by every call of a process. */
export interface BrokerContext {
  readonly deps: BrokerDeps;
  readonly agents: UpstreamAgents;
  readonly circuits: CircuitBreakers;
  /** A verifier per audience, all on the issuer's own keys. */
  readonly verifierFor: (audience: string) => Verifier;
  /** Claims of tokens whose signature was checked (`<audience> <token>` → claims). */
  readonly verified: TtlCache<string, LanyardClaims>;
  /** Allowed clock skew for `exp`, in seconds. */
  readonly toleranceSeconds: number;
  /** Issuance records by credential id. */
  readonly credentials: TtlCache<string, DecisionRecord | undefined>;
  /** A provider key by its immutable version. */
  readonly secretOf: (ref: UpstreamSecretRef) => Promise<string>;
  readonly leases: QuotaLeases;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What the audit record of one call is built from, filled in as the checks pass. */
export interface CallDraft {
  /** Set once the request is sent upstream: from then on the call happened. */
  forwarded?: boolean;
  record: Mutable<Partial<DecisionRecord>> & { requestId: string; at: string };
  proxy: Mutable<ProxyCallSummary>;
}

export function newDraft(requestId: string, method: string, started: number): CallDraft {
  return {
    record: { requestId, at: new Date(started).toISOString() },
    proxy: { method, bytesIn: 0, bytesOut: 0, durationMs: 0 },
  };
}

/** The audit record of a call: `proxied` once it reached the upstream, `denied` when refused before. */
export function callRecord(draft: CallDraft, decision: 'proxied' | 'denied', reason: string, message?: string): DecisionRecord {
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
