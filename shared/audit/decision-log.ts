/**
 * The durable decision log (docs/domain.md#audit) with group commit. A record is appended before the
 * answer leaves, and `append` resolves only once the store has it. Under load, records that
 * arrive while a write is in flight are gathered into the next batch (BatchWriteItem takes
 * 25 per call), so throughput grows with concurrency while each caller still waits for its
 * own record to be durable. With one request at a time (a Lambda container) every batch
 * holds exactly one record: one write per issuance.
 */
import type { DecisionRecord } from '../domain/model.ts';
import type { DecisionStore } from '../ports/index.ts';

interface Pending {
  readonly record: DecisionRecord;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class DecisionLog {
  readonly #store: Pick<DecisionStore, 'putDecisions'>;
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  #queue: Pending[] = [];
  #inFlight = 0;
  #scheduled = false;

  constructor(options: { store: Pick<DecisionStore, 'putDecisions'>; maxBatch?: number; maxInFlight?: number }) {
    this.#store = options.store;
    this.#maxBatch = options.maxBatch ?? 100;
    this.#maxInFlight = options.maxInFlight ?? 4;
  }

  append(record: DecisionRecord): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ record, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#maxInFlight || this.#queue.length === 0) return;
    this.#scheduled = true;
    // One macrotask of gathering: records from requests handled in the same event-loop turn share a write.
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inFlight += 1;
      this.#store.putDecisions(batch.map((p) => p.record)).then(
        () => batch.forEach((p) => p.resolve()),
        (error: unknown) => batch.forEach((p) => p.reject(error)),
      ).finally(() => {
        this.#inFlight -= 1;
        this.#schedule();
      });
    }
  }
}
