/**
 * The broker's quota windows on SQLite: one counter row per bucket, window length and window
 * start. A take is a read and a conditional update in ONE transaction, so a limit of N admits
 * exactly N however many race (the DynamoDB store does the same with one conditional update).
 */
import type { QuotaUsage } from '../../domain/model.ts';
import { invalidRequest } from '../../domain/errors.ts';
import type { QuotaTake, QuotaWindow } from '../../ports/index.ts';
import type { Db, Row } from './db.ts';

/** A window's counter outlives the window by a day (late units, "what did we use"), as on DynamoDB. */
export const QUOTA_WINDOW_RETENTION_MS = 24 * 3600 * 1000;

const SELECT = 'SELECT requests, units FROM quota_windows WHERE bucket = ? AND seconds = ? AND start_ms = ?';

export function takeQuota(db: Db, bucket: string, window: QuotaWindow, limits: { readonly requests?: number; readonly units?: number }, count = 1): QuotaTake {
  checkWindow(window);
  if (!Number.isSafeInteger(count) || count < 1) throw invalidRequest('count', 'a quota take counts a positive whole number of requests');
  for (const [metric, limit] of [
    ['requests', limits.requests],
    ['units', limits.units],
  ] as const) {
    if (limit === undefined) continue;
    if (typeof limit !== 'number' || Number.isNaN(limit)) throw invalidRequest(`limits.${metric}`, `the ${metric} limit must be a number`);
    // A limit that cannot admit `count` more refuses without a write.
    if (limit <= 0 || (metric === 'requests' && limit - count < 0)) return { status: 'exhausted', usage: usage(read(db, bucket, window), bucket, window) };
  }
  return db.transaction(() => {
    const current = read(db, bucket, window);
    const requests = Number(current?.['requests'] ?? 0);
    const units = Number(current?.['units'] ?? 0);
    // Room for `count` more requests: used + count <= limit. Units are known only afterwards: used < limit.
    const fits = (limits.requests === undefined || requests + count <= limits.requests) && (limits.units === undefined || units < limits.units);
    if (!fits) return { status: 'exhausted', usage: usage(current, bucket, window) } as const;
    db.run(
      'INSERT INTO quota_windows (bucket, seconds, start_ms, requests) VALUES (?, ?, ?, ?) ' +
        'ON CONFLICT (bucket, seconds, start_ms) DO UPDATE SET requests = requests + excluded.requests',
      bucket,
      window.seconds,
      window.startMs,
      count,
    );
    return { status: 'taken', usage: usage(read(db, bucket, window), bucket, window) } as const;
  });
}

/** Unconditional: the upstream call already happened. Nothing that is not a positive finite number is written. */
export function addQuotaUnits(db: Db, bucket: string, window: QuotaWindow, units: number): void {
  checkWindow(window);
  if (!(typeof units === 'number' && units > 0 && Number.isFinite(units))) return;
  db.transaction(() =>
    db.run(
      'INSERT INTO quota_windows (bucket, seconds, start_ms, units) VALUES (?, ?, ?, ?) ' +
        'ON CONFLICT (bucket, seconds, start_ms) DO UPDATE SET units = units + excluded.units',
      bucket,
      window.seconds,
      window.startMs,
      units,
    ),
  );
}

export function getQuotaUsage(db: Db, bucket: string, window: QuotaWindow): QuotaUsage | undefined {
  checkWindow(window);
  const row = read(db, bucket, window);
  return row === undefined ? undefined : usage(row, bucket, window);
}

/** Drops counters whose window ended more than a day before `nowMs`. */
export function pruneQuotaWindows(db: Db, nowMs: number): number {
  return db.transaction(() => db.run('DELETE FROM quota_windows WHERE start_ms + seconds * 1000 + ? < ?', QUOTA_WINDOW_RETENTION_MS, nowMs));
}

function read(db: Db, bucket: string, window: QuotaWindow): Row | undefined {
  return db.get(SELECT, bucket, window.seconds, window.startMs);
}

function usage(row: Row | undefined, bucket: string, window: QuotaWindow): QuotaUsage {
  return {
    bucket,
    windowStart: new Date(window.startMs).toISOString(),
    windowSeconds: window.seconds,
    requests: Number(row?.['requests'] ?? 0),
    units: Number(row?.['units'] ?? 0),
  };
}

/** A window starts at a non-negative whole millisecond and lasts a positive whole number of seconds. */
function checkWindow(window: QuotaWindow): void {
  if (!Number.isSafeInteger(window.startMs) || window.startMs < 0) throw invalidRequest('window.startMs', 'a window starts at a non-negative integer of milliseconds');
  if (!Number.isSafeInteger(window.seconds) || window.seconds < 1) throw invalidRequest('window.seconds', 'a window lasts a positive integer of seconds');
}
