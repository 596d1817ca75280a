/**
 * `GET /v1/revocations?after=<cursor>`: live revocations in feed order, a page at a time.
 *
 * Sequence numbers come from an atomic counter and the record is written just after, so two
 * revocations appended at once may commit out of order: #7 can be visible before #6. A reader
 * that moved its cursor past 7 would never see 6. The feed therefore stops before a gap until
 * the entry after it is `FEED_GAP_GRACE_MS` old; a gap that old is a write that failed (the
 * counter only grows) or a record already pruned, and is skipped.
 */
import type { Revocation } from '../domain/model.ts';
import { invalidRequest } from '../domain/errors.ts';
import type { RevocationStore } from '../ports/index.ts';

export const FEED_GAP_GRACE_MS = 2_000;
export const FEED_DEFAULT_LIMIT = 500;
export const FEED_MAX_LIMIT = 1_000;

export interface FeedPage {
  readonly revocations: readonly Revocation[];
  /** Pass back as `after`; it only moves forward. */
  readonly cursor: string;
  readonly hasMore: boolean;
}

export function parseCursor(after: string | undefined): number {
  if (after === undefined || after === '') return 0;
  if (!/^\d{1,16}$/.test(after)) throw invalidRequest('after', 'after must be a cursor returned by this feed');
  return Number(after);
}

export function parseLimit(limit: string | undefined): number {
  if (limit === undefined || limit === '') return FEED_DEFAULT_LIMIT;
  if (!/^\d{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > FEED_MAX_LIMIT) {
    throw invalidRequest('limit', `limit must be a whole number from 1 to ${FEED_MAX_LIMIT}`);
  }
  return Number(limit);
}

/** The longest prefix of `revocations` (sorted by seq, all after `afterSeq`) with no gap still in flight. */
export function settledPrefix(revocations: readonly Revocation[], afterSeq: number, nowMs: number, graceMs = FEED_GAP_GRACE_MS): Revocation[] {
  const out: Revocation[] = [];
  let expected = afterSeq + 1;
  for (const revocation of revocations) {
    if (revocation.seq !== expected && nowMs - Date.parse(revocation.cutoff) < graceMs) break;
    out.push(revocation);
    expected = revocation.seq + 1;
  }
  return out;
}

export async function readFeed(store: Pick<RevocationStore, 'listRevocations'>, options: { afterSeq: number; limit: number; nowMs: number }): Promise<FeedPage> {
  // One extra row tells whether another page follows.
  const rows = await store.listRevocations(options.afterSeq, options.limit + 1);
  const settled = settledPrefix(rows, options.afterSeq, options.nowMs);
  const page = settled.slice(0, options.limit);
  const last = page.at(-1);
  const live = page.filter((r) => Date.parse(r.relevantUntil) > options.nowMs);
  return {
    revocations: live,
    cursor: String(last?.seq ?? options.afterSeq),
    hasMore: settled.length > options.limit,
  };
}
