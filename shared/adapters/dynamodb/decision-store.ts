/**
 * The `DecisionStore` role port on the table: decision records (an issued credential under its
 * credential id, a refusal under its own id), indexed by identity, lane, tenant, task and tool
 * over time, kept `decisionRetentionDays` before TTL may delete them.
 */
import type { DecisionRecord } from '../../domain/model.ts';
import { invalidRequest } from '../../domain/errors.ts';
import type { DecisionQuery, DecisionStore, Page } from '../../ports/index.ts';
import { compact, toDomain, type Item, type TableItems } from './items.ts';
import { keys } from './keys.ts';
import { DECISION_INDEXES, INDEXES, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE } from './table.ts';
import { instantKey, queryLimit } from '../../ports/decision-query.ts';


export class DynamoDecisionStore implements DecisionStore {
  readonly #items: TableItems;
  readonly #retentionSeconds: number;

  constructor(items: TableItems, retentionSeconds: number) {
    this.#items = items;
    this.#retentionSeconds = retentionSeconds;
  }

  async putDecisions(records: readonly DecisionRecord[]): Promise<void> {
    // One request per key: BatchWriteItem refuses a batch naming an item twice; the last record wins.
    const byKey = new Map<string, Item>();
    for (const record of records) {
      const item = this.#decisionItem(record);
      byKey.set(`${String(item[PARTITION_KEY])}\u0000${String(item[SORT_KEY])}`, item);
    }
    await this.#items.batchWrite([...byKey.values()].map((item) => ({ PutRequest: { Item: item } })));
  }

  async getCredential(credentialId: string): Promise<DecisionRecord | undefined> {
    return this.#items.get<DecisionRecord>(keys.credential(credentialId));
  }

  /**
   * Decisions of one identity, lane, tenant or task, newest first, `from` and `to` inclusive.
   * `limit` defaults to 100 and is capped at 1000. The cursor is opaque and only valid for the
   * same query.
   */
  async queryDecisions(query: DecisionQuery): Promise<Page<DecisionRecord>> {
    const index = Object.hasOwn(DECISION_INDEXES, query.by) ? DECISION_INDEXES[query.by] : undefined;
    if (index === undefined) throw invalidRequest('by', 'decisions are queried by identity, lane, tenant or task');
    if (typeof query.value !== 'string' || query.value === '') throw invalidRequest('value', 'a value to query by is required');
    const from = query.from === undefined ? undefined : instantKey(query.from, 'from');
    const to = query.to === undefined ? undefined : instantKey(query.to, 'to');
    const limit = queryLimit(query.limit);
    if (from !== undefined && to !== undefined && from > to) return { items: [] };

    const names: Record<string, string> = { '#pk': index.partitionKey };
    const values: Record<string, string> = { ':value': query.value };
    let condition = '#pk = :value';
    if (from !== undefined || to !== undefined) {
      names['#at'] = index.sortKey;
      if (from !== undefined) values[':from'] = from;
      if (to !== undefined) values[':to'] = to;
      condition +=
        from !== undefined && to !== undefined ? ' AND #at BETWEEN :from AND :to' : from !== undefined ? ' AND #at >= :from' : ' AND #at <= :to';
    }
    const startKey = query.cursor === undefined ? undefined : decodeCursor(query.cursor, index, query.value, from, to);

    const { items, lastKey } = await this.#items.query(
      {
        IndexName: index.indexName,
        KeyConditionExpression: condition,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ScanIndexForward: false,
        ExclusiveStartKey: startKey,
      },
      limit,
    );
    const records = items.map((item) => toDomain<DecisionRecord>(item));
    return lastKey === undefined ? { items: records } : { items: records, cursor: encodeCursor(lastKey) };
  }

  #decisionItem(record: DecisionRecord): Item {
    const at = instantKey(record.at, 'at');
    const key = record.decision === 'issued' ? keys.credential(record.credentialId ?? record.id) : keys.deniedDecision(record.id);
    return compact({
      ...record,
      ...key,
      // Index keys only where present and non-empty: a key attribute may not be an empty string.
      [INDEXES.byIdentity.partitionKey]: record.identity || undefined,
      [INDEXES.byLane.partitionKey]: record.lane || undefined,
      [INDEXES.byTenant.partitionKey]: record.tenant || undefined,
      [INDEXES.byTask.partitionKey]: record.task?.id || undefined,
      [INDEXES.byTool.partitionKey]: record.tool || undefined,
      [INDEXES.byIdentity.sortKey]: at,
      [TTL_ATTRIBUTE]: Math.floor(Date.parse(at) / 1000) + this.#retentionSeconds,
    });
  }
}



function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/**
 * The LastEvaluatedKey a cursor carries, checked to belong to this query: DynamoDB would
 * otherwise answer a foreign or forged cursor with a ValidationException (a 503 after
 * `failClosed`) instead of a 400.
 */
function decodeCursor(
  cursor: string,
  index: { readonly partitionKey: string; readonly sortKey: string },
  value: string,
  from: string | undefined,
  to: string | undefined,
): Record<string, string> {
  const invalid = () => invalidRequest('cursor', 'the cursor does not belong to this query');
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (typeof key !== 'object' || key === null || Array.isArray(key)) throw invalid();
  const expected = [PARTITION_KEY, SORT_KEY, index.partitionKey, index.sortKey].sort();
  const entries = Object.entries(key);
  if (entries.length !== expected.length || !entries.every(([name, v]) => expected.includes(name) && typeof v === 'string')) throw invalid();
  const start = key as Record<string, string>;
  const at = start[index.sortKey]!;
  if (start[index.partitionKey] !== value || (from !== undefined && at < from) || (to !== undefined && at > to)) throw invalid();
  return start;
}
