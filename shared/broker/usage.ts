/**
 * Whose budget burns: the broker's usage, answered from the audit records alone. Every
 * proxied call is a record with its identity, lane, task, quota bucket, budget owner, status,
 * bytes and units, so a report is a query by provider (the records' `tool`) and a sum.
 */
import type { DecisionRecord, QuotaUsage } from '../domain/model.ts';
import type { DecisionStore, QuotaStore } from '../ports/index.ts';
import { windowOf } from '../issuance/quota.ts';

export const USAGE_GROUPS = ['identity', 'lane', 'task', 'budgetOwner', 'quotaBucket'] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

export interface UsageLine {
  readonly key: string;
  /** Calls forwarded to the upstream (whatever it answered). */
  readonly calls: number;
  /** Calls the broker refused itself (quota, scope, revocation…). */
  readonly refused: number;
  readonly units: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

export interface UsageReport {
  readonly provider: string;
  readonly by: UsageGroup;
  readonly from?: string;
  readonly to?: string;
  readonly lines: readonly UsageLine[];
  /** True when more than `maxRecords` records matched and the report stopped there. */
  readonly truncated: boolean;
}

export interface UsageQuery {
  readonly provider: string;
  readonly by: UsageGroup;
  readonly from?: string;
  readonly to?: string;
  /** @default 100_000 */
  readonly maxRecords?: number;
}

export async function usageReport(store: Pick<DecisionStore, 'queryDecisions'>, query: UsageQuery): Promise<UsageReport> {
  const maxRecords = query.maxRecords ?? 100_000;
  const lines = new Map<string, { calls: number; refused: number; units: number; bytesIn: number; bytesOut: number }>();
  let seen = 0;
  let cursor: string | undefined;
  let truncated = false;
  do {
    const page = await store.queryDecisions({
      by: 'tool',
      value: query.provider,
      limit: 1000,
      ...(query.from !== undefined && { from: query.from }),
      ...(query.to !== undefined && { to: query.to }),
      ...(cursor !== undefined && { cursor }),
    });
    for (const record of page.items) {
      if (!record.proxy) continue;
      seen += 1;
      const key = groupKey(record, query.by);
      const line = lines.get(key) ?? { calls: 0, refused: 0, units: 0, bytesIn: 0, bytesOut: 0 };
      if (record.decision === 'proxied') line.calls += 1;
      else line.refused += 1;
      line.units += record.proxy.units ?? 0;
      line.bytesIn += record.proxy.bytesIn;
      line.bytesOut += record.proxy.bytesOut;
      lines.set(key, line);
    }
    cursor = page.cursor;
    if (seen >= maxRecords && cursor !== undefined) {
      truncated = true;
      break;
    }
  } while (cursor !== undefined);
  return {
    provider: query.provider,
    by: query.by,
    ...(query.from !== undefined && { from: query.from }),
    ...(query.to !== undefined && { to: query.to }),
    lines: [...lines].map(([key, line]) => ({ key, ...line })).sort((a, b) => b.units - a.units || b.calls - a.calls || (a.key < b.key ? -1 : 1)),
    truncated,
  };
}

function groupKey(record: DecisionRecord, by: UsageGroup): string {
  switch (by) {
    case 'identity':
      return record.identity ?? '(unauthenticated)';
    case 'lane':
      return record.lane ?? '(none)';
    case 'task':
      return record.task?.id ?? '(no task)';
    case 'budgetOwner':
      return record.budgetOwner ?? '(none)';
    case 'quotaBucket':
      return record.quotaBucket ?? '(none)';
  }
}

/** The current window of a bucket beside its limits: what is left before `quota_exhausted`. */
export async function quotaStatus(store: Pick<QuotaStore, 'getQuota' | 'getQuotaUsage'>, bucket: string, nowMs: number): Promise<{ limits?: { windowSeconds: number; requests?: number; units?: number }; usage?: QuotaUsage; resetsAt?: string }> {
  const policy = await store.getQuota(bucket);
  if (!policy) return {};
  const window = windowOf(policy, nowMs);
  const usage = await store.getQuotaUsage(bucket, window);
  return {
    limits: {
      windowSeconds: policy.windowSeconds,
      ...(policy.requests !== undefined && { requests: policy.requests }),
      ...(policy.units !== undefined && { units: policy.units }),
    },
    usage: usage ?? { bucket, windowStart: new Date(window.startMs).toISOString(), windowSeconds: window.seconds, requests: 0, units: 0 },
    resetsAt: new Date(window.startMs + window.seconds * 1000).toISOString(),
  };
}
