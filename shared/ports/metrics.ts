/**
 * The metrics port: what the issuer counts about itself. The embedded default renders these in
 * Prometheus text format (adapters/local/prometheus-metrics.ts, `GET /metrics`); anything that
 * needs no metrics takes `noopMetrics`. Labels are bounded sets (outcomes, error codes, target
 * kinds, known providers), never an id, key or token.
 */

/** How a credential request ended: a credential, a typed refusal (4xx), or a failure (5xx). */
export type IssuanceOutcome = 'issued' | 'denied' | 'error';

/** How a broker call ended: forwarded to the upstream, refused by the broker (4xx), or failed (5xx). */
export type BrokerOutcome = 'forwarded' | 'refused' | 'error';

/** One store commit: how many decision records it wrote, and how long it took. */
export interface StoreCommit {
  readonly size: number;
  readonly durationMs: number;
}

export interface Metrics {
  /** A credential request answered; `denialCode` is the error code of a denial or a failure. */
  issuance(outcome: IssuanceOutcome, durationMs: number, denialCode?: string): void;
  /** A revocation committed, by the kind of its target (`credential`, `lane`, `identity`, …). */
  revocation(targetKind: string): void;
  brokerCall(provider: string, outcome: BrokerOutcome): void;
  /** The store's commit hook (`onCommit`): one call per committed batch of decision records. */
  storeCommit(batch: StoreCommit): void;
}

export const noopMetrics: Metrics = {
  issuance: () => {},
  revocation: () => {},
  brokerCall: () => {},
  storeCommit: () => {},
};
