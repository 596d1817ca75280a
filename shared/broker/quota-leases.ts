/**
 * Quota takes in leases. Taking one request per call from the store's counter is one
 * conditional write on the hot path of every proxied call. So a broker process reserves
 * several requests at once while the bucket has plenty of room, and hands them out locally.
 *
 * - A lease is sized from what the store said was left: `floor(remaining / 64)`, between 1
 *   and `maxLease`. Near the limit every lease is a single request, so the last requests of a
 *   window are counted exactly, across every process.
 * - The counter counts what was reserved, so it never passes the limit. A reserved request
 *   left unused when the window ends was counted but not made: at most `maxLease` per process
 *   per window, and only while the bucket still had 64 × `maxLease` requests to spare.
 * - A bucket with a unit limit takes one request at a time: units are known only after each
 *   call, so every call must see the latest count.
 * - Concurrent calls share one refill.
 */
import type { QuotaPolicy, QuotaUsage } from '../domain/model.ts';
import type { QuotaStore, QuotaWindow } from '../ports/index.ts';

/** How many leases the room left in a bucket is split into before leases shrink to one. */
const SPREAD = 64;

export type LeaseTake = { readonly status: 'taken' } | { readonly status: 'exhausted'; readonly usage: QuotaUsage };

interface Lease {
  readonly window: string;
  left: number;
  /** The size of the next reservation. */
  size: number;
  refill?: Promise<LeaseTake>;
}

export class QuotaLeases {
  readonly #store: Pick<QuotaStore, 'takeQuota'>;
  readonly #maxLease: number;
  readonly #leases = new Map<string, Lease>();

  /** `maxLease` 1 takes every request from the store (exact counts, one write per call). */
  constructor(store: Pick<QuotaStore, 'takeQuota'>, options: { maxLease?: number } = {}) {
    this.#store = store;
    this.#maxLease = Math.max(1, Math.floor(options.maxLease ?? 32));
  }

  async take(policy: QuotaPolicy, window: QuotaWindow): Promise<LeaseTake> {
    const id = `${window.startMs}/${window.seconds}`;
    for (;;) {
      let lease = this.#leases.get(policy.bucket);
      if (lease?.window !== id) {
        // A new window: whatever was left of the old lease lapses with it.
        lease = { window: id, left: 0, size: 1 };
        this.#leases.set(policy.bucket, lease);
      }
      if (lease.left > 0) {
        lease.left -= 1;
        return { status: 'taken' };
      }
      const current = lease;
      current.refill ??= this.#refill(policy, window, current).finally(() => {
        current.refill = undefined;
      });
      const outcome = await current.refill;
      if (outcome.status === 'exhausted') return outcome;
    }
  }

  async #refill(policy: QuotaPolicy, window: QuotaWindow, lease: Lease): Promise<LeaseTake> {
    const limits = {
      ...(policy.requests !== undefined && { requests: policy.requests }),
      ...(policy.units !== undefined && { units: policy.units }),
    };
    const size = policy.units === undefined && policy.requests !== undefined ? lease.size : 1;
    let take = await this.#store.takeQuota(policy.bucket, window, limits, size);
    let got = size;
    if (take.status === 'exhausted' && size > 1) {
      // Not room for a whole lease: what is left goes one request at a time.
      take = await this.#store.takeQuota(policy.bucket, window, limits, 1);
      got = 1;
    }
    if (take.status === 'exhausted') {
      lease.size = 1;
      return take;
    }
    lease.left += got;
    if (policy.requests !== undefined) {
      const remaining = policy.requests - take.usage.requests;
      lease.size = Math.min(this.#maxLease, Math.max(1, Math.floor(remaining / SPREAD)));
    }
    return { status: 'taken' };
  }
}
