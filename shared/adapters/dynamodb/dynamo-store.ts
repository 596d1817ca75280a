/**
 * The `Store` port on one DynamoDB table (docs/architecture.md), on AWS and on the embedded engines alike.
 * The layout is documented in `table.ts`. Every write is a single-item (conditional) write or a
 * batch of independent writes: no transactions, which dynalite lacks.
 *
 * Foreign failures propagate as they are (the core wraps them with `failClosed`); the store's
 * own refusals are `LanyardError`s: `conflict` for a role version published twice with other
 * actions or a key changed concurrently, `invalid_request` for a bad query or cursor.
 *
 * Reads of the table are strongly consistent. Listings of tools, roles, identities and
 * principals and decision queries read global secondary indexes, which DynamoDB keeps
 * eventually consistent (typically well under a second behind a write).
 *
 * @example
 * ```ts
 * const store = new DynamoStore({ client: new DynamoDBClient({}), tableName: 'lanyard' });
 * await store.putTool(tool);
 * const page = await store.queryDecisions({ by: 'identity', value: 'support-triage/prod', limit: 50 });
 * ```
 */
import { isDeepStrictEqual } from 'node:util';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { BatchWriteCommandInput, QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import type {
  DecisionRecord,
  Grant,
  Identity,
  IssuanceBlock,
  Principal,
  QuotaPolicy,
  QuotaUsage,
  Revocation,
  RoleVersion,
  Tool,
  UpstreamSecretRef,
} from '../../domain/model.ts';
import type { PrincipalKeyKind, Reinstatement } from '../../domain/model.ts';
import { conflict, invalidRequest, issuerUnavailable, notFound } from '../../domain/errors.ts';
import type { DecisionQuery, Page, QuotaTake, QuotaWindow, RefreshTokenRecord, RefreshTokenSpend, Store } from '../../ports/index.ts';
import {
  DECISION_INDEXES,
  DEFAULT_TABLE_NAME,
  INDEXES,
  KEY_ATTRIBUTES,
  PARTITION_KEY,
  SORT_KEY,
  TTL_ATTRIBUTE,
  hasName,
} from './table.ts';
import { BLOCK_PARTITION, keys, pad, REVOCATION_PARTITION as REVOCATIONS, type ItemKey } from './keys.ts';

export interface DynamoStoreOptions {
  /** A plain client is wrapped in a document client; a document client is used as given. */
  readonly client: DynamoDBDocumentClient | DynamoDBClient;
  /** @default 'lanyard' */
  readonly tableName?: string;
  /** How long decision records are kept before DynamoDB TTL may delete them. @default 400 */
  readonly decisionRetentionDays?: number;
  /** Attempts of a BatchWriteItem chunk while items come back unprocessed. @default 8 */
  readonly maxBatchAttempts?: number;
}

type Item = Record<string, unknown>;
type Key = ItemKey;
type KeyKind = PrincipalKeyKind;
type WriteRequest = NonNullable<BatchWriteCommandInput['RequestItems']>[string][number];

const DEFAULT_QUERY_LIMIT = 100;
const MAX_QUERY_LIMIT = 1000;
/** BatchWriteItem takes at most 25 requests. */
const BATCH_SIZE = 25;
/** Chunks written at once by `putDecisions`. */
const BATCH_CONCURRENCY = 4;
const INTERNAL_ATTRIBUTES = new Set(KEY_ATTRIBUTES);

/** A reinstated block's marked item is kept this long (for the change stream), then TTL removes it. */
const REINSTATED_BLOCK_RETENTION_SECONDS = 7 * 24 * 3600;
/** A quota window's counter item outlives the window by a day (late units, "what did we use"), then TTL removes it. */
const QUOTA_WINDOW_RETENTION_SECONDS = 24 * 3600;

export class DynamoStore implements Store {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #retentionSeconds: number;
  readonly #maxBatchAttempts: number;

  constructor(options: DynamoStoreOptions) {
    const retentionDays = options.decisionRetentionDays ?? 400;
    if (!(retentionDays > 0)) throw new RangeError('decisionRetentionDays must be positive');
    const maxBatchAttempts = options.maxBatchAttempts ?? 8;
    if (!Number.isInteger(maxBatchAttempts) || maxBatchAttempts < 1) throw new RangeError('maxBatchAttempts must be a positive integer');
    this.#doc =
      options.client instanceof DynamoDBDocumentClient
        ? options.client
        : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });
    this.#table = options.tableName ?? DEFAULT_TABLE_NAME;
    this.#retentionSeconds = Math.round(retentionDays * 86_400);
    this.#maxBatchAttempts = maxBatchAttempts;
  }

  // Tools

  async putTool(tool: Tool): Promise<void> {
    await this.#put({ ...tool, ...keys.tool(tool.id), [INDEXES.byType.partitionKey]: 'TOOL' });
  }

  async getTool(id: string): Promise<Tool | undefined> {
    return this.#get<Tool>(keys.tool(id));
  }

  async listTools(): Promise<Tool[]> {
    return this.#listType<Tool>('TOOL');
  }

  // Roles

  async publishRoleVersion(role: RoleVersion): Promise<'created' | 'unchanged'> {
    if (!Number.isSafeInteger(role.version) || role.version < 0) {
      throw invalidRequest('version', 'a role version is a non-negative integer', { role: role.id });
    }
    const key = keys.role(role.id, role.version);
    try {
      await this.#put({ ...role, ...key, [INDEXES.byType.partitionKey]: 'ROLE' }, 'attribute_not_exists(PK)');
      return 'created';
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
    }
    // A published version never changes (docs/domain.md): the same actions again is a no-op, others a conflict.
    const existing = await this.#get<RoleVersion>(key);
    if (existing !== undefined && sameActions(existing.actions, role.actions)) return 'unchanged';
    throw conflict(`role ${role.id} version ${role.version} is already published with other actions`, {
      role: role.id,
      version: role.version,
    });
  }

  async getRoleVersion(id: string, version: number): Promise<RoleVersion | undefined> {
    if (!Number.isSafeInteger(version) || version < 0) return undefined;
    return this.#get<RoleVersion>(keys.role(id, version));
  }

  async listRoleVersions(): Promise<RoleVersion[]> {
    const roles = await this.#listType<RoleVersion>('ROLE');
    return roles.sort((a, b) => (a.id === b.id ? a.version - b.version : a.id < b.id ? -1 : 1));
  }

  // Identities and grants

  async putIdentity(identity: Identity): Promise<void> {
    await this.#put({ ...identity, ...keys.identity(identity.id), [INDEXES.byType.partitionKey]: 'IDENTITY' });
  }

  async getIdentity(id: string): Promise<Identity | undefined> {
    return this.#get<Identity>(keys.identity(id));
  }

  async getIdentityWithGrants(id: string): Promise<{ identity: Identity; grants: Grant[] } | undefined> {
    const { PK } = keys.identity(id);
    const items = await this.#queryAll({
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY },
      ExpressionAttributeValues: { ':pk': PK },
      ConsistentRead: true,
    });
    let identity: Identity | undefined;
    const grants: Grant[] = [];
    for (const item of items) {
      const sk = item[SORT_KEY];
      if (sk === 'IDENTITY') identity = toDomain<Identity>(item);
      else if (typeof sk === 'string' && sk.startsWith(keys.grantPrefix)) grants.push(toDomain<Grant>(item));
    }
    return identity === undefined ? undefined : { identity, grants };
  }

  async listIdentities(): Promise<Identity[]> {
    return this.#listType<Identity>('IDENTITY');
  }

  async putGrant(grant: Grant): Promise<void> {
    await this.#put({ ...grant, ...keys.grant(grant.identity, grant.id) });
  }

  async deleteGrant(identity: string, grantId: string): Promise<void> {
    await this.#doc.send(new DeleteCommand({ TableName: this.#table, Key: keys.grant(identity, grantId) }));
  }

  async listGrants(identity: string): Promise<Grant[]> {
    const items = await this.#queryAll({
      KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :grant)',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#sk': SORT_KEY },
      ExpressionAttributeValues: { ':pk': keys.identity(identity).PK, ':grant': keys.grantPrefix },
      ConsistentRead: true,
    });
    return items.map((item) => toDomain<Grant>(item));
  }

  // Principals and their keys

  /** Writes the principal, then refreshes the copy each of its keys carries. */
  async putPrincipal(principal: Principal): Promise<void> {
    await this.#put({ ...principal, ...keys.principal(principal.id), [INDEXES.byType.partitionKey]: 'PRINCIPAL' });
    const refs = await this.#queryAll({
      KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :ref)',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#sk': SORT_KEY },
      ExpressionAttributeValues: { ':pk': keys.principal(principal.id).PK, ':ref': 'KEYREF#' },
      ConsistentRead: true,
    });
    for (const ref of refs) {
      await this.#refreshKeyCopy(ref['keyKind'] as KeyKind, ref['keyValue'] as string, principal);
    }
  }

  async getPrincipal(id: string): Promise<Principal | undefined> {
    return this.#get<Principal>(keys.principal(id));
  }

  async listPrincipals(): Promise<Principal[]> {
    return this.#listType<Principal>('PRINCIPAL');
  }

  /**
   * Binds a key to a principal and retires the principal's previous key of that kind.
   *
   * Without transactions the steps are ordered to fail closed: the old key stops
   * authenticating before the new one is written, so a crash in between leaves the principal
   * with no working key of that kind (retrying repairs it), never with two. The pointer is
   * moved with a condition on its old value, so two concurrent calls cannot both win and
   * leave an orphaned key behind: the loser removes its key again and throws `conflict`.
   * A key already bound to another principal moves to this one.
   */
  async setPrincipalKey(principalId: string, keyKind: KeyKind, keyValue: string): Promise<void> {
    const principal = await this.getPrincipal(principalId);
    if (principal === undefined) throw notFound(`principal ${principalId}`);
    const ref = await this.#getItem(keys.keyRef(principalId, keyKind));
    const previous = typeof ref?.['keyValue'] === 'string' ? ref['keyValue'] : undefined;
    if (previous !== undefined && previous !== keyValue) await this.#deleteKeyOf(principalId, keyKind, previous);

    const moved = await this.#doc.send(
      new PutCommand({
        TableName: this.#table,
        Item: { ...keys.principalKey(keyKind, keyValue), principalId, keyKind, principal: compact(principal) },
        ReturnValues: 'ALL_OLD',
      }),
    );
    const formerOwner = moved.Attributes?.['principalId'] as unknown;
    if (typeof formerOwner === 'string' && formerOwner !== principalId) {
      await this.#clearKeyRef(formerOwner, keyKind, keyValue);
    }

    try {
      await this.#doc.send(
        new PutCommand({
          TableName: this.#table,
          Item: { ...keys.keyRef(principalId, keyKind), keyKind, keyValue },
          ConditionExpression: previous === undefined ? 'attribute_not_exists(PK)' : 'keyValue = :previous',
          ...(previous === undefined ? {} : { ExpressionAttributeValues: { ':previous': previous } }),
        }),
      );
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
      await this.#deleteKeyOf(principalId, keyKind, keyValue);
      throw conflict(`the ${keyKind} of principal ${principalId} was changed concurrently`, { principal: principalId, keyKind });
    }

    // A putPrincipal that ran between our read and the pointer write could not see the new key.
    const current = await this.getPrincipal(principalId);
    if (current !== undefined && !isDeepStrictEqual(current, compact(principal))) {
      await this.#refreshKeyCopy(keyKind, keyValue, current);
    }
  }

  async getPrincipalByKey(keyKind: KeyKind, keyValue: string): Promise<Principal | undefined> {
    const item = await this.#getItem(keys.principalKey(keyKind, keyValue));
    const principal = item?.['principal'];
    return typeof principal === 'object' && principal !== null ? (principal as Principal) : undefined;
  }

  async hasPrincipalKey(principalId: string, keyKind: KeyKind): Promise<boolean> {
    return (await this.#getItem(keys.keyRef(principalId, keyKind))) !== undefined;
  }

  // Decisions

  async putDecisions(records: readonly DecisionRecord[]): Promise<void> {
    // One request per key: BatchWriteItem refuses a batch naming an item twice; the last record wins.
    const byKey = new Map<string, Item>();
    for (const record of records) {
      const item = this.#decisionItem(record);
      byKey.set(`${String(item[PARTITION_KEY])}\u0000${String(item[SORT_KEY])}`, item);
    }
    await this.#batchWrite([...byKey.values()].map((item) => ({ PutRequest: { Item: item } })));
  }

  async getCredential(credentialId: string): Promise<DecisionRecord | undefined> {
    return this.#get<DecisionRecord>(keys.credential(credentialId));
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

    const { items, lastKey } = await this.#query(
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

  // Revocations and blocks

  async appendRevocation(revocation: Omit<Revocation, 'seq'>): Promise<Revocation> {
    const counter = await this.#doc.send(
      new UpdateCommand({
        TableName: this.#table,
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
    await this.#put({ ...stored, ...keys.revocation(seq), [TTL_ATTRIBUTE]: Number.isFinite(expires) ? expires : undefined }, 'attribute_not_exists(PK)');
    return stored;
  }

  async listRevocations(afterSeq: number, limit: number): Promise<Revocation[]> {
    const wanted = Math.floor(limit);
    if (!(wanted > 0)) return [];
    const after = Number.isFinite(afterSeq) ? Math.max(0, Math.floor(afterSeq)) : 0;
    const { items } = await this.#query(
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
    const items = await this.#queryAll({
      KeyConditionExpression: '#pk = :pk',
      ProjectionExpression: '#pk, #sk, relevantUntil',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#sk': SORT_KEY },
      ExpressionAttributeValues: { ':pk': REVOCATIONS },
      ConsistentRead: true,
    });
    // Compared as instants, not strings: `…00Z` and `…00.000Z` are the same instant.
    const expired = items.filter((item) => Date.parse(String(item['relevantUntil'])) < cutoff);
    await this.#batchWrite(expired.map((item) => ({ DeleteRequest: { Key: { PK: item[PARTITION_KEY], SK: item[SORT_KEY] } } })));
    return expired.length;
  }

  async putBlock(block: IssuanceBlock): Promise<void> {
    await this.#put({ ...block, ...keys.block(block.targetKey) });
  }

  async reinstateBlock(targetKey: string, reinstatement: Reinstatement): Promise<IssuanceBlock | undefined> {
    try {
      const out = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
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
    const items = await this.#queryAll({
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY },
      ExpressionAttributeValues: { ':pk': BLOCK_PARTITION },
      FilterExpression: 'attribute_not_exists(reinstatedAt)',
      ConsistentRead: true,
    });
    return items.map((item) => toDomain<IssuanceBlock>(item));
  }

  // Quotas of the broker: the bucket's policy and one counter item per window, in one partition.

  async putQuota(policy: QuotaPolicy): Promise<void> {
    await this.#put({ ...policy, ...keys.quota(policy.bucket), [INDEXES.byType.partitionKey]: 'QUOTA' });
  }

  async getQuota(bucket: string): Promise<QuotaPolicy | undefined> {
    return this.#get<QuotaPolicy>(keys.quota(bucket));
  }

  async listQuotas(): Promise<QuotaPolicy[]> {
    return this.#listType<QuotaPolicy>('QUOTA');
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
      const out = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
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
    await this.#doc.send(
      new UpdateCommand({
        TableName: this.#table,
        Key: keys.quotaWindow(bucket, window),
        UpdateExpression: `ADD #units :units SET ${WINDOW_SET}`,
        ExpressionAttributeNames: { ...WINDOW_ATTRIBUTE_NAMES, '#units': 'units' },
        ExpressionAttributeValues: { ...this.#windowValues(bucket, window), ':units': units },
      }),
    );
  }

  async getQuotaUsage(bucket: string, window: QuotaWindow): Promise<QuotaUsage | undefined> {
    checkWindow(window);
    const item = await this.#getItem(keys.quotaWindow(bucket, window));
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
    const item = await this.#getItem(keys.quotaWindow(bucket, window));
    return usageOf(item ?? {}, bucket, window);
  }

  // Upstream secret pointers (the broker's providers)

  async putUpstreamSecretRef(ref: UpstreamSecretRef, options: { readonly expectVersion?: string | null } = {}): Promise<void> {
    const item = { ...ref, ...keys.upstreamSecretRef(ref.provider), [INDEXES.byType.partitionKey]: 'UPSTREAM_SECRET' };
    const expected = options.expectVersion;
    if (expected === undefined) {
      await this.#put(item);
      return;
    }
    try {
      await this.#doc.send(
        new PutCommand({
          TableName: this.#table,
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
    return this.#get<UpstreamSecretRef>(keys.upstreamSecretRef(provider));
  }

  async listUpstreamSecretRefs(): Promise<UpstreamSecretRef[]> {
    return this.#listType<UpstreamSecretRef>('UPSTREAM_SECRET');
  }

  // Helpers

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

  async #put(item: Item, condition?: string): Promise<void> {
    await this.#doc.send(
      new PutCommand({
        TableName: this.#table,
        Item: compact(item),
        ...(condition === undefined ? {} : { ConditionExpression: condition }),
      }),
    );
  }

  async #getItem(key: Key): Promise<Item | undefined> {
    const out = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: key, ConsistentRead: true }));
    return out.Item;
  }

  async #get<T>(key: Key): Promise<T | undefined> {
    const item = await this.#getItem(key);
    return item === undefined ? undefined : toDomain<T>(item);
  }

  /**
   * Up to `limit` items of a query, following LastEvaluatedKey: a page can end early at 1 MB.
   * `lastKey` is where a next call would start, absent when the query is exhausted.
   */
  async #query(
    input: Omit<QueryCommandInput, 'TableName' | 'Limit'>,
    limit = Infinity,
  ): Promise<{ items: Item[]; lastKey?: Record<string, unknown> }> {
    const items: Item[] = [];
    let startKey = input.ExclusiveStartKey;
    do {
      const out = await this.#doc.send(
        new QueryCommand({
          ...input,
          TableName: this.#table,
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
  async #queryAll(input: Omit<QueryCommandInput, 'TableName' | 'Limit' | 'ExclusiveStartKey'>): Promise<Item[]> {
    return (await this.#query(input)).items;
  }

  async #listType<T>(type: string): Promise<T[]> {
    const items = await this.#queryAll({
      IndexName: INDEXES.byType.indexName,
      KeyConditionExpression: '#type = :type',
      ExpressionAttributeNames: { '#type': INDEXES.byType.partitionKey },
      ExpressionAttributeValues: { ':type': type },
    });
    return items.map((item) => toDomain<T>(item));
  }

  /** Deletes a key item if it still belongs to the principal (it may have moved to another). */
  async #deleteKeyOf(principalId: string, keyKind: KeyKind, keyValue: string): Promise<void> {
    try {
      await this.#doc.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: keys.principalKey(keyKind, keyValue),
          ConditionExpression: 'attribute_not_exists(PK) OR principalId = :principal',
          ExpressionAttributeValues: { ':principal': principalId },
        }),
      );
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
    }
  }

  /** Drops another principal's pointer to a key that moved away from it. */
  async #clearKeyRef(principalId: string, keyKind: KeyKind, keyValue: string): Promise<void> {
    try {
      await this.#doc.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: keys.keyRef(principalId, keyKind),
          ConditionExpression: 'keyValue = :value',
          ExpressionAttributeValues: { ':value': keyValue },
        }),
      );
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
    }
  }

  async #refreshKeyCopy(keyKind: KeyKind, keyValue: string, principal: Principal): Promise<void> {
    try {
      await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: keys.principalKey(keyKind, keyValue),
          UpdateExpression: 'SET principal = :principal',
          ConditionExpression: 'principalId = :id',
          ExpressionAttributeValues: { ':principal': compact(principal), ':id': principal.id },
        }),
      );
    } catch (error) {
      // The key was replaced or moved meanwhile: nothing of this principal's to refresh.
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
    }
  }

  /**
   * BatchWriteItem in chunks of 25, a few chunks at a time. Unprocessed items (throttling) are
   * resent with exponential backoff and jitter; after `maxBatchAttempts` the write fails.
   */
  async #batchWrite(requests: readonly WriteRequest[]): Promise<void> {
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
      const out = await this.#doc.send(new BatchWriteCommand({ RequestItems: { [this.#table]: pending } }));
      pending = out.UnprocessedItems?.[this.#table] ?? [];
      if (pending.length === 0) return;
      if (attempt >= this.#maxBatchAttempts) {
        throw issuerUnavailable(new Error(`${pending.length} writes still unprocessed after ${attempt} BatchWriteItem attempts`));
      }
      const delay = Math.min(1_000, 25 * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, delay / 2 + Math.random() * (delay / 2)));
    }
  }

  // Refresh tokens: item `REFRESH#<sha-256 hex>` / `REFRESH`, one per token, never the token itself.

  /** Spent tokens are kept this long past their expiry (reuse detection, audit), then TTL removes them. */
  static readonly #REFRESH_RETENTION_SECONDS = 24 * 3600;

  static #refreshKey(hash: string): Key {
    return { PK: `REFRESH#${hash}`, SK: 'REFRESH' };
  }

  async putRefreshToken(token: RefreshTokenRecord): Promise<void> {
    const expires = Math.ceil(Date.parse(token.expiresAt) / 1000);
    if (!Number.isFinite(expires)) throw invalidRequest('expiresAt', 'expiresAt must be an ISO instant');
    try {
      await this.#put(
        { ...token, ...DynamoStore.#refreshKey(token.hash), [TTL_ATTRIBUTE]: expires + DynamoStore.#REFRESH_RETENTION_SECONDS },
        'attribute_not_exists(PK)',
      );
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
      throw conflict('this refresh token is already stored');
    }
  }

  async getRefreshToken(hash: string): Promise<RefreshTokenRecord | undefined> {
    return this.#get<RefreshTokenRecord>(DynamoStore.#refreshKey(hash));
  }

  async spendRefreshToken(hash: string, nextHash: string, at: string): Promise<RefreshTokenSpend> {
    return this.#spendRefreshToken(hash, nextHash, at, false);
  }

  async supersedeRefreshToken(hash: string, nextHash: string, at: string): Promise<RefreshTokenSpend> {
    return this.#spendRefreshToken(hash, nextHash, at, true);
  }

  async #spendRefreshToken(hash: string, nextHash: string, at: string, superseded: boolean): Promise<RefreshTokenSpend> {
    try {
      const out = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: DynamoStore.#refreshKey(hash),
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

/** An item without the store's key and index attributes: the domain object as it was put. */
function toDomain<T>(item: Item): T {
  const out: Item = {};
  for (const [name, value] of Object.entries(item)) {
    if (!INTERNAL_ATTRIBUTES.has(name)) out[name] = value;
  }
  return out as T;
}

/** A deep copy without `undefined`-valued properties, so no optional field comes back as an explicit `undefined`. */
function compact<T>(value: T): T {
  if (Array.isArray(value)) return value.map((entry: unknown) => compact(entry)) as T;
  if (typeof value !== 'object' || value === null) return value;
  const out: Item = {};
  for (const [name, entry] of Object.entries(value)) {
    if (entry !== undefined) out[name] = compact(entry);
  }
  return out as T;
}

/** The same set of actions, in whatever order. */
function sameActions(a: readonly string[], b: readonly string[]): boolean {
  const left = [...new Set(a)].sort();
  const right = [...new Set(b)].sort();
  return left.length === right.length && left.every((action, i) => action === right[i]);
}

/**
 * An instant as the fixed-width ISO string the decision indexes sort by: ISO strings of mixed
 * precision (`…00Z`, `…00.5Z`) do not sort as the instants they name.
 */
function instantKey(value: string, field: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw invalidRequest(field, `${field} must be an ISO instant`);
  return new Date(ms).toISOString();
}

function queryLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_QUERY_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw invalidRequest('limit', 'limit must be a positive integer');
  return Math.min(limit, MAX_QUERY_LIMIT);
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
