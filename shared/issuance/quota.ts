/**
 * The quota step of the issuance decision (the `IssuanceQuota` port, docs/domain.md#quotas).
 * A grant names a quota bucket, and two things can refuse it:
 * - `ProcessIssuanceQuota`: an optional per-process rate limit on issuances (`rate_limited`);
 * - `BrokerIssuanceQuota`: the bucket's broker quota (issue 6) is spent for the current window
 *   (`quota_exhausted`, with when it resets), so a credential that could make no call is not
 *   minted. The broker itself counts and enforces (`QuotaLeases`); this only reads the window's counter.
 */
import type { QuotaPolicy } from '../domain/model.ts';
import type { PolicyView } from '../policy/policy-view.ts';
import type { IssuanceQuota, QuotaStore, QuotaWindow } from '../ports/index.ts';
import { LanyardError, type ErrorContext } from '../domain/errors.ts';

/** The fixed window of a bucket's quota that holds `nowMs`. */
export function windowOf(policy: Pick<QuotaPolicy, 'windowSeconds'>, nowMs: number): QuotaWindow {
  const windowMs = policy.windowSeconds * 1000;
  return { startMs: nowMs - (nowMs % windowMs), seconds: policy.windowSeconds };
}

/** `quota_exhausted` for a spent window: when it resets, and `Retry-After` until then. */
export function quotaExhausted(bucket: string, window: QuotaWindow, nowMs: number, context: ErrorContext = {}): LanyardError {
  const resetsAt = window.startMs + window.seconds * 1000;
  return new LanyardError('quota_exhausted', `quota bucket ${bucket} is spent for this window`, {
    retryAfter: Math.max(1, Math.ceil((resetsAt - nowMs) / 1000)),
    context: { quotaBucket: bucket, resetsAt: new Date(resetsAt).toISOString(), ...context },
  });
}

export interface BucketLimit {
  readonly limit: number;
  readonly windowSeconds: number;
}

/**
 * Fixed-window counters kept in this process. On AWS each Lambda container counts its own
 * window, so a bucket's real ceiling is the limit times the number of warm containers.
 */
export class ProcessIssuanceQuota implements IssuanceQuota {
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

/**
 * Refuses issuance from a bucket whose broker quota is spent for the current window: one
 * cached policy lookup for every bucket, and one counter read only for buckets with a quota.
 */
export class BrokerIssuanceQuota implements IssuanceQuota {
  readonly #rate: IssuanceQuota;
  readonly #policy: Pick<PolicyView, 'quota'>;
  readonly #store: Pick<QuotaStore, 'getQuotaUsage'>;

  constructor(options: { policy: Pick<PolicyView, 'quota'>; store: Pick<QuotaStore, 'getQuotaUsage'>; rate?: IssuanceQuota }) {
    this.#policy = options.policy;
    this.#store = options.store;
    this.#rate = options.rate ?? new ProcessIssuanceQuota();
  }

  async take(bucket: string, nowMs: number): Promise<void> {
    const policy = await this.#policy.quota(bucket);
    if (policy && (policy.requests !== undefined || policy.units !== undefined)) {
      const window = windowOf(policy, nowMs);
      const usage = await this.#store.getQuotaUsage(bucket, window);
      const spent =
        usage !== undefined &&
        ((policy.requests !== undefined && usage.requests >= policy.requests) || (policy.units !== undefined && usage.units >= policy.units));
      if (spent) throw quotaExhausted(bucket, window, nowMs);
    }
    await this.#rate.take(bucket, nowMs);
  }
}
