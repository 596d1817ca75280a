/**
 * Reads and writes of whole items on the store's table, shared by the aggregate modules: puts
 * with an optional condition, strongly consistent gets, queries that follow LastEvaluatedKey,
 * listings by type, and batched writes that resend unprocessed items.
 */
import {
  BatchGetCommand,
  BatchWriteCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  type BatchWriteCommandInput,
  type DynamoDBDocumentClient,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { issuerUnavailable } from '../../domain/errors.ts';
import type { ItemKey as Key } from './keys.ts';
import { INDEXES, KEY_ATTRIBUTES } from './table.ts';

export type Item = Record<string, unknown>;
export type WriteRequest = NonNullable<BatchWriteCommandInput['RequestItems']>[string][number];

/** BatchWriteItem takes at most 25 requests. */
const BATCH_SIZE = 25;
/** BatchGetItem takes at most 100 keys (and refuses a list with a key twice). */
const BATCH_GET_SIZE = 100;
/** Chunks written at once by `batchWrite`. */
const BATCH_CONCURRENCY = 4;
const INTERNAL_ATTRIBUTES = new Set(KEY_ATTRIBUTES);

export class TableItems {
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly #maxBatchAttempts: number;

  constructor(options: { doc: DynamoDBDocumentClient; table: string; maxBatchAttempts: number }) {
    this.doc = options.doc;
    this.table = options.table;
    this.#maxBatchAttempts = options.maxBatchAttempts;
  }

  async put(item: Item, condition?: string): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: compact(item),
        ...(condition === undefined ? {} : { ConditionExpression: condition }),
      }),
    );
  }

  async getItem(key: Key): Promise<Item | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }));
    return out.Item;
  }

  async get<T>(key: Key): Promise<T | undefined> {
    const item = await this.getItem(key);
    return item === undefined ? undefined : toDomain<T>(item);
  }

  /**
   * Strongly consistent BatchGetItem of these keys, 100 at a time, duplicates sent once.
   * Unprocessed keys (throttling, or the 16 MB answer limit) are asked again with backoff;
   * after `maxBatchAttempts` the read fails. Found items by `itemKeyOf`; missing keys are absent.
   */
  async batchGet(wanted: readonly Key[]): Promise<Map<string, Item>> {
    const unique = [...new Map(wanted.map((key) => [itemKeyOf(key), { PK: key.PK, SK: key.SK }])).values()];
    const found = new Map<string, Item>();
    for (let i = 0; i < unique.length; i += BATCH_GET_SIZE) {
      for (const item of await this.#getChunk(unique.slice(i, i + BATCH_GET_SIZE))) found.set(itemKeyOf(item as Key), item);
    }
    return found;
  }

  async #getChunk(chunk: Key[]): Promise<Item[]> {
    const items: Item[] = [];
    let pending: Record<string, unknown>[] = chunk;
    for (let attempt = 1; ; attempt++) {
      const out = await this.doc.send(new BatchGetCommand({ RequestItems: { [this.table]: { Keys: pending, ConsistentRead: true } } }));
      items.push(...(out.Responses?.[this.table] ?? []));
      pending = out.UnprocessedKeys?.[this.table]?.Keys ?? [];
      if (pending.length === 0) return items;
      if (attempt >= this.#maxBatchAttempts) {
        throw issuerUnavailable(new Error(`${pending.length} keys still unprocessed after ${attempt} BatchGetItem attempts`));
      }
      const delay = Math.min(1_000, 25 * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, delay / 2 + Math.random() * (delay / 2)));
    }
  }

  /**
   * Up to `limit` items of a query, following LastEvaluatedKey: a page can end early at 1 MB.
   * `lastKey` is where a next call would start, absent when the query is exhausted.
   */
  async query(
    input: Omit<QueryCommandInput, 'TableName' | 'Limit'>,
    limit = Infinity,
  ): Promise<{ items: Item[]; lastKey?: Record<string, unknown> }> {
    const items: Item[] = [];
    let startKey = input.ExclusiveStartKey;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          ...input,
          TableName: this.table,
          ExclusiveStartKey: startKey,
          ...(limit === Infinity ? {} : { Limit: limit - items.length }),
        }),
      );
      items.push(...(out.Items ?? []));
      startKey = out.LastEvaluatedKey;
    } while (startKey !== undefined && items.length < limit);
    return startKey === undefined ? { items } : { items, lastKey: startKey };
  }

  /** Every item of a query. */
  async queryAll(input: Omit<QueryCommandInput, 'TableName' | 'Limit' | 'ExclusiveStartKey'>): Promise<Item[]> {
    return (await this.query(input)).items;
  }

  async listType<T>(type: string): Promise<T[]> {
    const items = await this.queryAll({
      IndexName: INDEXES.byType.indexName,
      KeyConditionExpression: '#type = :type',
      ExpressionAttributeNames: { '#type': INDEXES.byType.partitionKey },
      ExpressionAttributeValues: { ':type': type },
    });
    return items.map((item) => toDomain<T>(item));
  }

  /**
   * BatchWriteItem in chunks of 25, a few chunks at a time. Unprocessed items (throttling) are
   * resent with exponential backoff and jitter; after `maxBatchAttempts` the write fails.
   */
  async batchWrite(requests: readonly WriteRequest[]): Promise<void> {
    const chunks: WriteRequest[][] = [];
    for (let i = 0; i < requests.length; i += BATCH_SIZE) chunks.push(requests.slice(i, i + BATCH_SIZE));
    for (let i = 0; i < chunks.length; i += BATCH_CONCURRENCY) {
      // allSettled: no write is still in flight when this call rejects.
      const results = await Promise.allSettled(chunks.slice(i, i + BATCH_CONCURRENCY).map((chunk) => this.#writeChunk(chunk)));
      const failure = results.find((result) => result.status === 'rejected');
      if (failure !== undefined) throw failure.reason;
    }
  }

  async #writeChunk(chunk: WriteRequest[]): Promise<void> {
    let pending = chunk;
    for (let attempt = 1; ; attempt++) {
      const out = await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.table]: pending } }));
      pending = out.UnprocessedItems?.[this.table] ?? [];
      if (pending.length === 0) return;
      if (attempt >= this.#maxBatchAttempts) {
        throw issuerUnavailable(new Error(`${pending.length} writes still unprocessed after ${attempt} BatchWriteItem attempts`));
      }
      const delay = Math.min(1_000, 25 * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, delay / 2 + Math.random() * (delay / 2)));
    }
  }
}

/** One string per item key, for the maps `batchGet` answers. */
export function itemKeyOf(key: Key): string {
  return `${key.PK}\u0000${key.SK}`;
}

/** An item without the store's key and index attributes: the domain object as it was put. */
export function toDomain<T>(item: Item): T {
  const out: Item = {};
  for (const [name, value] of Object.entries(item)) {
    if (!INTERNAL_ATTRIBUTES.has(name)) out[name] = value;
  }
  return out as T;
}

/** A deep copy without `undefined`-valued properties, so no optional field comes back as an explicit `undefined`. */
export function compact<T>(value: T): T {
  if (Array.isArray(value)) return value.map((entry: unknown) => compact(entry)) as T;
  if (typeof value !== 'object' || value === null) return value;
  const out: Item = {};
  for (const [name, entry] of Object.entries(value)) {
    if (entry !== undefined) out[name] = compact(entry);
  }
  return out as T;
}
