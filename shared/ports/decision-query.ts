/**
 * The inputs of `DecisionStore.queryDecisions` and `putDecisions` as every store reads them, so
 * the DynamoDB and SQLite adapters refuse and normalise exactly alike.
 */
import { invalidRequest } from '../domain/errors.ts';

/** Records per page when the query names no limit. */
export const DEFAULT_QUERY_LIMIT = 100;
/** The largest page a query gets, whatever limit it names. */
export const MAX_QUERY_LIMIT = 1000;

/**
 * An instant as the fixed-width ISO string decisions sort by: ISO strings of mixed precision
 * (`…00Z`, `…00.5Z`) do not sort as the instants they name. A value that is no instant is a
 * 400 naming `field`.
 */
export function instantKey(value: string, field: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw invalidRequest(field, `${field} must be an ISO instant`);
  return new Date(ms).toISOString();
}

/** The page size of a query: the default when absent, capped at the maximum, a 400 when not a positive integer. */
export function queryLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_QUERY_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw invalidRequest('limit', 'limit must be a positive integer');
  return Math.min(limit, MAX_QUERY_LIMIT);
}
