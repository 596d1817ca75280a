/**
 * The `SecretPointerStore` role port on the table: the pointer to each broker provider's current
 * secret version (version ids only; the secret is in the vault), moved by a conditional put.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { UpstreamSecretRef } from '../../domain/model.ts';
import { conflict } from '../../domain/errors.ts';
import type { SecretPointerStore } from '../../ports/index.ts';
import { compact, type TableItems } from './items.ts';
import { keys } from './keys.ts';
import { INDEXES, hasName } from './table.ts';

export class DynamoSecretPointerStore implements SecretPointerStore {
  readonly #items: TableItems;

  constructor(items: TableItems) {
    this.#items = items;
  }

  async putUpstreamSecretRef(ref: UpstreamSecretRef, options: { readonly expectVersion?: string | null } = {}): Promise<void> {
    const item = { ...ref, ...keys.upstreamSecretRef(ref.provider), [INDEXES.byType.partitionKey]: 'UPSTREAM_SECRET' };
    const expected = options.expectVersion;
    if (expected === undefined) {
      await this.#items.put(item);
      return;
    }
    try {
      await this.#items.doc.send(
        new PutCommand({
          TableName: this.#items.table,
          Item: compact(item),
          ...(expected === null
            ? { ConditionExpression: 'attribute_not_exists(PK)' }
            : { ConditionExpression: '#version = :expected', ExpressionAttributeNames: { '#version': 'version' }, ExpressionAttributeValues: { ':expected': expected } }),
        }),
      );
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
      throw conflict(`the secret pointer of provider ${ref.provider} was changed concurrently`, { provider: ref.provider });
    }
  }

  async getUpstreamSecretRef(provider: string): Promise<UpstreamSecretRef | undefined> {
    return this.#items.get<UpstreamSecretRef>(keys.upstreamSecretRef(provider));
  }

  async listUpstreamSecretRefs(): Promise<UpstreamSecretRef[]> {
    return this.#items.listType<UpstreamSecretRef>('UPSTREAM_SECRET');
  }
}
