/**
 * The `RefreshTokenStore` role port on the table: one item per token, `REFRESH#<sha-256 hex>`,
 * never the token itself. A spend is ONE conditional update, so of two racing spends one wins.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { conflict, invalidRequest } from '../../domain/errors.ts';
import type { RefreshTokenRecord, RefreshTokenSpend, RefreshTokenStore } from '../../ports/index.ts';
import { toDomain, type TableItems } from './items.ts';
import { keys } from './keys.ts';
import { TTL_ATTRIBUTE, hasName } from './table.ts';

/** Spent tokens are kept this long past their expiry (reuse detection, audit), then TTL removes them. */
const REFRESH_RETENTION_SECONDS = 24 * 3600;

export class DynamoRefreshTokenStore implements RefreshTokenStore {
  readonly #items: TableItems;

  constructor(items: TableItems) {
    this.#items = items;
  }

  async putRefreshToken(token: RefreshTokenRecord): Promise<void> {
    const expires = Math.ceil(Date.parse(token.expiresAt) / 1000);
    if (!Number.isFinite(expires)) throw invalidRequest('expiresAt', 'expiresAt must be an ISO instant');
    try {
      await this.#items.put(
        { ...token, ...keys.refreshToken(token.hash), [TTL_ATTRIBUTE]: expires + REFRESH_RETENTION_SECONDS },
        'attribute_not_exists(PK)',
      );
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
      throw conflict('this refresh token is already stored');
    }
  }

  async getRefreshToken(hash: string): Promise<RefreshTokenRecord | undefined> {
    return this.#items.get<RefreshTokenRecord>(keys.refreshToken(hash));
  }

  async spendRefreshToken(hash: string, nextHash: string, at: string): Promise<RefreshTokenSpend> {
    return this.#spend(hash, nextHash, at, false);
  }

  async supersedeRefreshToken(hash: string, nextHash: string, at: string): Promise<RefreshTokenSpend> {
    return this.#spend(hash, nextHash, at, true);
  }

  async #spend(hash: string, nextHash: string, at: string, superseded: boolean): Promise<RefreshTokenSpend> {
    try {
      const out = await this.#items.doc.send(
        new UpdateCommand({
          TableName: this.#items.table,
          Key: keys.refreshToken(hash),
          UpdateExpression: `SET spentAt = :at, replacedBy = :next${superseded ? ', supersededAt = :at' : ''}`,
          ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(spentAt)',
          ExpressionAttributeValues: { ':at': at, ':next': nextHash },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { status: 'spent-now', token: toDomain<RefreshTokenRecord>(out.Attributes ?? {}) };
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
      // The write decided the race; this read only tells a reuse from an unknown token (dynalite
      // does not support ReturnValuesOnConditionCheckFailure). A spent item never becomes unspent.
      const token = await this.getRefreshToken(hash);
      return token === undefined ? { status: 'unknown' } : { status: 'already-spent', token };
    }
  }
}
