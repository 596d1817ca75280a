/**
 * The `RevocationStore` role port on the table: the feed (one counter item, and one item per
 * revocation under the next sequence number, removed by TTL once it no longer matters) and the
 * standing issuance blocks (a reinstated block is kept, marked, for the change stream).
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { IssuanceBlock, Reinstatement, Revocation } from '../../domain/model.ts';
import { invalidRequest } from '../../domain/errors.ts';
import type { RevocationStore } from '../../ports/index.ts';
import { compact, toDomain, type TableItems } from './items.ts';
import { REVOCATION_PARTITION as REVOCATIONS, keys, pad } from './keys.ts';
import { PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE, hasName } from './table.ts';

/** A reinstated block's marked item is kept this long (for the change stream), then TTL removes it. */
const REINSTATED_BLOCK_RETENTION_SECONDS = 7 * 24 * 3600;

export class DynamoRevocationStore implements RevocationStore {
  readonly #items: TableItems;

  constructor(items: TableItems) {
    this.#items = items;
  }

  async appendRevocation(revocation: Omit<Revocation, 'seq'>): Promise<Revocation> {
    const counter = await this.#items.doc.send(
      new UpdateCommand({
        TableName: this.#items.table,
        Key: keys.revocationCounter,
        UpdateExpression: 'ADD #seq :one',
        ExpressionAttributeNames: { '#seq': 'seq' },
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const seq = counter.Attributes?.['seq'] as unknown;
    if (typeof seq !== 'number') throw new TypeError('the revocation counter did not return a number');
    // A seq whose write fails is a gap in the feed, never a duplicate: the counter only grows.
    const stored = compact({ ...revocation, seq }) as Revocation;
    // DynamoDB TTL removes the record once no credential it covers can be alive (pruneRevocations does it at once).
    const expires = Math.ceil(Date.parse(stored.relevantUntil) / 1000);
    await this.#items.put({ ...stored, ...keys.revocation(seq), [TTL_ATTRIBUTE]: Number.isFinite(expires) ? expires : undefined }, 'attribute_not_exists(PK)');
    return stored;
  }

  async listRevocations(afterSeq: number, limit: number): Promise<Revocation[]> {
    const wanted = Math.floor(limit);
    if (!(wanted > 0)) return [];
    const after = Number.isFinite(afterSeq) ? Math.max(0, Math.floor(afterSeq)) : 0;
    const { items } = await this.#items.query(
      {
        KeyConditionExpression: '#pk = :pk AND #sk > :after',
        ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#sk': SORT_KEY },
        ExpressionAttributeValues: { ':pk': REVOCATIONS, ':after': pad(after, 16) },
        ConsistentRead: true,
      },
      wanted,
    );
    return items.map((item) => toDomain<Revocation>(item));
  }

  async pruneRevocations(now: string): Promise<number> {
    const cutoff = Date.parse(now);
    if (Number.isNaN(cutoff)) throw invalidRequest('now', 'now must be an ISO instant');
    const items = await this.#items.queryAll({
      KeyConditionExpression: '#pk = :pk',
      ProjectionExpression: '#pk, #sk, relevantUntil',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#sk': SORT_KEY },
      ExpressionAttributeValues: { ':pk': REVOCATIONS },
      ConsistentRead: true,
    });
    // Compared as instants, not strings: `…00Z` and `…00.000Z` are the same instant.
    const expired = items.filter((item) => Date.parse(String(item['relevantUntil'])) < cutoff);
    await this.#items.batchWrite(expired.map((item) => ({ DeleteRequest: { Key: { PK: item[PARTITION_KEY], SK: item[SORT_KEY] } } })));
    return expired.length;
  }

  async putBlock(block: IssuanceBlock): Promise<void> {
    await this.#items.put({ ...block, ...keys.block(block.targetKey) });
  }

  async reinstateBlock(targetKey: string, reinstatement: Reinstatement): Promise<IssuanceBlock | undefined> {
    try {
      const out = await this.#items.doc.send(
        new UpdateCommand({
          TableName: this.#items.table,
          Key: keys.block(targetKey),
          UpdateExpression: 'SET reinstatedAt = :at, reinstatedBy = :actor, reinstateReason = :reason, reinstateRequestId = :rid, #ttl = :ttl',
          ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(reinstatedAt)',
          ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
          ExpressionAttributeValues: {
            ':at': reinstatement.at,
            ':actor': reinstatement.actor,
            ':reason': reinstatement.reason,
            ':rid': reinstatement.requestId,
            // The marked item only has to outlive the stream that reports it.
            ':ttl': Math.floor(Date.parse(reinstatement.at) / 1000) + REINSTATED_BLOCK_RETENTION_SECONDS,
          },
          ReturnValues: 'ALL_OLD',
        }),
      );
      return out.Attributes === undefined ? undefined : toDomain<IssuanceBlock>(out.Attributes);
    } catch (error) {
      if (hasName(error, 'ConditionalCheckFailedException')) return undefined;
      throw error;
    }
  }

  async listBlocks(): Promise<IssuanceBlock[]> {
    const items = await this.#items.queryAll({
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY },
      ExpressionAttributeValues: { ':pk': 'BLOCK' },
      FilterExpression: 'attribute_not_exists(reinstatedAt)',
      ConsistentRead: true,
    });
    return items.map((item) => toDomain<IssuanceBlock>(item));
  }
}
