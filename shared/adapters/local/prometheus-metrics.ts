/**
 * The metrics port in Prometheus text format, on prom-client. Each instance has its own
 * registry (not prom-client's global one), so two issuers in one process (tests, benchmarks)
 * keep their own counts. `GET /metrics` on the local server renders it.
 */
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { BrokerOutcome, IssuanceOutcome, Metrics, StoreCommit } from '../../ports/metrics.ts';

/** Seconds: a credential takes milliseconds on one machine; the top buckets catch a stalled store. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Records per commit: group commit gathers what arrives while a commit is in flight. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export class PrometheusMetrics implements Metrics {
  readonly #registry = new Registry();
  readonly #issuance: Counter<'outcome'>;
  readonly #issuanceSeconds: Histogram<'outcome'>;
  readonly #denials: Counter<'code'>;
  readonly #revocations: Counter<'target_kind'>;
  readonly #broker: Counter<'provider' | 'outcome'>;
  readonly #commitSeconds: Histogram;
  readonly #commitBatch: Histogram;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.#registry];
    this.#issuance = new Counter({ name: 'lanyard_issuance_total', help: 'Credential requests answered, by outcome (issued, denied, error).', labelNames: ['outcome'], registers });
    this.#issuanceSeconds = new Histogram({
      name: 'lanyard_issuance_duration_seconds',
      help: 'Time from a credential request read to its answer, by outcome.',
      labelNames: ['outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#denials = new Counter({ name: 'lanyard_denials_total', help: 'Credential requests denied, by error code.', labelNames: ['code'], registers });
    this.#revocations = new Counter({ name: 'lanyard_revocations_total', help: 'Revocations committed, by target kind.', labelNames: ['target_kind'], registers });
    this.#broker = new Counter({ name: 'lanyard_broker_calls_total', help: 'Broker calls, by provider and outcome (forwarded, refused, error).', labelNames: ['provider', 'outcome'], registers });
    this.#commitSeconds = new Histogram({ name: 'lanyard_store_commit_duration_seconds', help: 'Time to commit one batch of decision records.', buckets: LATENCY_BUCKETS, registers });
    this.#commitBatch = new Histogram({ name: 'lanyard_store_commit_batch_size', help: 'Decision records per store commit.', buckets: BATCH_BUCKETS, registers });
    // The process's CPU, memory, heap and event-loop lag, under the standard names (process_*, nodejs_*).
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.#registry });
  }

  /** The `Content-Type` of what `render` returns (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.#registry.contentType;
  }

  render(): Promise<string> {
    return this.#registry.metrics();
  }

  issuance(outcome: IssuanceOutcome, durationMs: number, denialCode?: string): void {
    this.#issuance.inc({ outcome });
    this.#issuanceSeconds.observe({ outcome }, durationMs / 1000);
    if (outcome === 'denied' && denialCode !== undefined) this.#denials.inc({ code: denialCode });
  }

  revocation(targetKind: string): void {
    this.#revocations.inc({ target_kind: targetKind });
  }

  brokerCall(provider: string, outcome: BrokerOutcome): void {
    this.#broker.inc({ provider, outcome });
  }

  /** Bound, so it can be handed to a store as its `onCommit` hook. */
  readonly storeCommit = (batch: StoreCommit): void => {
    this.#commitSeconds.observe(batch.durationMs / 1000);
    this.#commitBatch.observe(batch.size);
  };
}
