/**
 * The `QuotaStore` role port on the table: a bucket's policy and one counter item per window,
 * in the bucket's partition. A take is ONE conditional update, so a limit holds across processes.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { QuotaPolicy, QuotaUsage } from '../../domain/model.ts';
import { invalidRequest } from '../../domain/errors.ts';
import type { QuotaStore, QuotaTake, QuotaWindow } from '../../ports/index.ts';
import type { Item, TableItems } from './items.ts';
import { keys } from './keys.ts';
import { INDEXES, TTL_ATTRIBUTE, hasName } from './table.ts';

/** A quota window's counter item outlives the window by a day (late units, "what did we use"), then TTL removes it. */
const QUOTA_WINDOW_RETENTION_SECONDS = 24 * 3600;

export class DynamoQuotaStore implements QuotaStore {
  readonly #items: TableItems;

  constructor(items: TableItems) {
    this.#items = items;
  }

  async putQuota(policy: QuotaPolicy): Promise<void> {
    await this.#items.put({ ...policy, ...keys.quota(policy.bucket), [INDEXES.byType.partitionKey]: 'QUOTA' });
  }

  async getQuota(bucket: string): Promise<QuotaPolicy | undefined> {
    return this.#items.get<QuotaPolicy>(keys.quota(bucket));
  }

  async listQuotas(): Promise<QuotaPolicy[]> {
    return this.#items.listType<QuotaPolicy>('QUOTA');
  }

  /**
   * ONE conditional UpdateItem: `ADD requests <count>` (default 1) when the window still has
   * room for `count` more requests and holds fewer units than the limits given. Concurrent takes are serialised by DynamoDB on the
   * item, so a limit of N admits exactly N however many race. A refused take counts nothing;
   * the read that follows only reports the usage (dynalite lacks
   * ReturnValuesOnConditionCheckFailure). A limit of 0 or less refuses without a write.
   */
  async takeQuota(bucket: string, window: QuotaWindow, limits: { readonly requests?: number; readonly units?: number }, count = 1): Promise<QuotaTake> {
    checkWindow(window);
    if (!Number.isSafeInteger(count) || count < 1) throw invalidRequest('count', 'a quota take counts a positive whole number of requests');
    const names: Record<string, string> = { ...WINDOW_ATTRIBUTE_NAMES, '#requests': 'requests' };
    const values: Record<string, unknown> = { ...this.#windowValues(bucket, window), ':count': count };
    const clauses: string[] = [];
    for (const [metric, limit] of [
      ['requests', limits.requests],
      ['units', limits.units],
    ] as const) {
      if (limit === undefined) continue;
      if (typeof limit !== 'number' || Number.isNaN(limit)) throw invalidRequest(`limits.${metric}`, `the ${metric} limit must be a number`);
      // Room for `count` more requests: used + count <= limit. Units are known only afterwards: used < limit.
      const ceiling = metric === 'requests' ? limit - count : limit;
      if (limit <= 0 || ceiling < 0) return { status: 'exhausted', usage: await this.#usageOrZero(bucket, window) };
      names[`#${metric}`] = metric;
      values[`:max_${metric}`] = ceiling;
      clauses.push(metric === 'requests' ? `(attribute_not_exists(#${metric}) OR #${metric} <= :max_${metric})` : `(attribute_not_exists(#${metric}) OR #${metric} < :max_${metric})`);
    }
    try {
      const out = await this.#items.doc.send(
        new UpdateCommand({
          TableName: this.#items.table,
          Key: keys.quotaWindow(bucket, window),
          UpdateExpression: `ADD #requests :count SET ${WINDOW_SET}`,
          ...(clauses.length === 0 ? {} : { ConditionExpression: clauses.join(' AND ') }),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { status: 'taken', usage: usageOf(out.Attributes ?? {}, bucket, window) };
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
      return { status: 'exhausted', usage: await this.#usageOrZero(bucket, window) };
    }
  }

  /** Unconditional: the upstream call already happened, so its units count even past the limit. Nothing that is not a positive number is written. */
  async addQuotaUnits(bucket: string, window: QuotaWindow, units: number): Promise<void> {
    checkWindow(window);
    if (!(typeof units === 'number' && units > 0 && Number.isFinite(units))) return;
    await this.#items.doc.send(
      new UpdateCommand({
        TableName: this.#items.table,
        Key: keys.quotaWindow(bucket, window),
        UpdateExpression: `ADD #units :units SET ${WINDOW_SET}`,
        ExpressionAttributeNames: { ...WINDOW_ATTRIBUTE_NAMES, '#units': 'units' },
        ExpressionAttributeValues: { ...this.#windowValues(bucket, window), ':units': units },
      }),
    );
  }

  async getQuotaUsage(bucket: string, window: QuotaWindow): Promise<QuotaUsage | undefined> {
    checkWindow(window);
    const item = await this.#items.getItem(keys.quotaWindow(bucket, window));
    return item === undefined ? undefined : usageOf(item, bucket, window);
  }

  /** The values `WINDOW_SET` refers to: what a window's counter item says about itself, and its TTL. */
  #windowValues(bucket: string, window: QuotaWindow): Record<string, unknown> {
    return {
      ':bucket': bucket,
      ':windowStart': new Date(window.startMs).toISOString(),
      ':windowSeconds': window.seconds,
      // Epoch seconds: the window's end, rounded up, plus the retention.
      ':ttl': Math.ceil((window.startMs + window.seconds * 1000) / 1000) + QUOTA_WINDOW_RETENTION_SECONDS,
    };
  }

  async #usageOrZero(bucket: string, window: QuotaWindow): Promise<QuotaUsage> {
    const item = await this.#items.getItem(keys.quotaWindow(bucket, window));
    return usageOf(item ?? {}, bucket, window);
  }
}

/**
 * Names of the attributes `WINDOW_SET` writes (`bucket` is a DynamoDB reserved word; all go
 * through names alike). DynamoDB refuses a name an expression does not use, so the counters
 * are added by each write that uses them.
 */
const WINDOW_ATTRIBUTE_NAMES = {
  '#bucket': 'bucket',
  '#windowStart': 'windowStart',
  '#windowSeconds': 'windowSeconds',
  '#ttl': TTL_ATTRIBUTE,
} as const;

/** The first write of a window describes it; later writes keep that description. */
const WINDOW_SET =
  '#bucket = if_not_exists(#bucket, :bucket), #windowStart = if_not_exists(#windowStart, :windowStart), ' +
  '#windowSeconds = if_not_exists(#windowSeconds, :windowSeconds), #ttl = :ttl';

/** A window starts at a non-negative whole millisecond and lasts a positive whole number of seconds. */
function checkWindow(window: QuotaWindow): void {
  if (!Number.isSafeInteger(window.startMs) || window.startMs < 0) throw invalidRequest('window.startMs', 'a window starts at a non-negative integer of milliseconds');
  if (!Number.isSafeInteger(window.seconds) || window.seconds < 1) throw invalidRequest('window.seconds', 'a window lasts a positive integer of seconds');
}

/** A counter item as usage: exactly the `QuotaUsage` fields, a missing count read as 0. */
function usageOf(item: Item, bucket: string, window: QuotaWindow): QuotaUsage {
  const count = (value: unknown) => (typeof value === 'number' ? value : 0);
  return {
    bucket: typeof item['bucket'] === 'string' ? item['bucket'] : bucket,
    windowStart: typeof item['windowStart'] === 'string' ? item['windowStart'] : new Date(window.startMs).toISOString(),
    windowSeconds: typeof item['windowSeconds'] === 'number' ? item['windowSeconds'] : window.seconds,
    requests: count(item['requests']),
    units: count(item['units']),
  };
}
