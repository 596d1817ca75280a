/**
 * The quota step of the issuance decision. A grant names a quota bucket; a bucket with a
 * limit allows that many issuances per window, shared by every identity drawing on it.
 * Buckets without a limit are unmetered. The broker (a later capability) meters upstream
 * usage per bucket on top of this.
 */
import { LanyardError } from './errors.ts';

export interface QuotaGate {
  /** Takes one issuance from `bucket` or throws `rate_limited` with when to retry. */
  take(bucket: string, nowMs: number): Promise<void>;
}

export interface BucketLimit {
  readonly limit: number;
  readonly windowSeconds: number;
}

/**
 * Fixed-window counters kept in this process. On AWS each Lambda container counts its own
 * window, so a bucket's real ceiling is the limit times the number of warm containers.
 */
export class WindowQuota implements QuotaGate {
  readonly #limits: ReadonlyMap<string, BucketLimit>;
  readonly #windows = new Map<string, { start: number; used: number }>();

  constructor(limits: Readonly<Record<string, BucketLimit>> = {}) {
    this.#limits = new Map(Object.entries(limits));
  }

  take(bucket: string, nowMs: number): Promise<void> {
    const limit = this.#limits.get(bucket);
    if (!limit) return Promise.resolve();
    const windowMs = limit.windowSeconds * 1000;
    const start = nowMs - (nowMs % windowMs);
    const window = this.#windows.get(bucket);
    const current = window && window.start === start ? window : { start, used: 0 };
    if (current.used >= limit.limit) {
      const retryAfter = Math.max(1, Math.ceil((start + windowMs - nowMs) / 1000));
      return Promise.reject(
        new LanyardError('rate_limited', `quota bucket ${bucket} is spent for this window`, {
          retryAfter,
          context: { quotaBucket: bucket, resetsAt: new Date(start + windowMs).toISOString() },
        }),
      );
    }
    this.#windows.set(bucket, { start, used: current.used + 1 });
    return Promise.resolve();
  }
}
