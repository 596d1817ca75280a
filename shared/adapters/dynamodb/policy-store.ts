/**
 * The `PolicyStore` role port on the table: tools, role versions, identities with their grants
 * (one partition, so one query reads both), and principals with the keys that authenticate them.
 */
import { isDeepStrictEqual } from 'node:util';
import { DeleteCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Grant, Identity, Principal, PrincipalKeyKind, QuotaPolicy, RoleVersion, Tool } from '../../domain/model.ts';
import { conflict, invalidRequest, notFound } from '../../domain/errors.ts';
import { roleVersionKey, type PolicyItemKeys, type PolicyItems, type PolicyStore } from '../../ports/index.ts';
import { compact, itemKeyOf, toDomain, type TableItems } from './items.ts';
import { keys, type ItemKey } from './keys.ts';
import { INDEXES, PARTITION_KEY, SORT_KEY, hasName } from './table.ts';

type KeyKind = PrincipalKeyKind;

export class DynamoPolicyStore implements PolicyStore {
  readonly #items: TableItems;

  constructor(items: TableItems) {
    this.#items = items;
  }

  // Tools

  async putTool(tool: Tool): Promise<void> {
    await this.#items.put({ ...tool, ...keys.tool(tool.id), [INDEXES.byType.partitionKey]: 'TOOL' });
  }

  async getTool(id: string): Promise<Tool | undefined> {
    return this.#items.get<Tool>(keys.tool(id));
  }

  async listTools(): Promise<Tool[]> {
    return this.#items.listType<Tool>('TOOL');
  }

  // Roles

  async publishRoleVersion(role: RoleVersion): Promise<'created' | 'unchanged'> {
    if (!Number.isSafeInteger(role.version) || role.version < 0) {
      throw invalidRequest('version', 'a role version is a non-negative integer', { role: role.id });
    }
    const key = keys.role(role.id, role.version);
    try {
      await this.#items.put({ ...role, ...key, [INDEXES.byType.partitionKey]: 'ROLE' }, 'attribute_not_exists(PK)');
      return 'created';
    } catch (error) {
      if (!hasName(error, 'ConditionalCheckFailedException')) throw error;
    }
    // A published version never changes (docs/domain.md): the same actions again is a no-op, others a conflict.
    const existing = await this.#items.get<RoleVersion>(key);
    if (existing !== undefined && sameActions(existing.actions, role.actions)) return 'unchanged';
    throw conflict(`role ${role.id} version ${role.version} is already published with other actions`, {
      role: role.id,
      version: role.version,
    });
  }

  async getRoleVersion(id: string, version: number): Promise<RoleVersion | undefined> {
    if (!Number.isSafeInteger(version) || version < 0) return undefined;
    return this.#items.get<RoleVersion>(keys.role(id, version));
  }

  async listRoleVersions(): Promise<RoleVersion[]> {
    const roles = await this.#items.listType<RoleVersion>('ROLE');
    return roles.sort((a, b) => (a.id === b.id ? a.version - b.version : a.id < b.id ? -1 : 1));
  }

  // Tools, role versions and quota policies at once (the issuance path's second read)

  async getPolicyItems(wanted: PolicyItemKeys): Promise<PolicyItems> {
    // Same refusal as getRoleVersion: a version that cannot exist is not asked for.
    const roles = (wanted.roles ?? []).filter((role) => Number.isSafeInteger(role.version) && role.version >= 0);
    const requested: { key: ItemKey; into: Map<string, unknown>; name: string }[] = [];
    const tools = new Map<string, Tool>();
    const roleVersions = new Map<string, RoleVersion>();
    const quotas = new Map<string, QuotaPolicy>();
    for (const id of wanted.tools ?? []) requested.push({ key: keys.tool(id), into: tools, name: id });
    for (const role of roles) requested.push({ key: keys.role(role.id, role.version), into: roleVersions, name: roleVersionKey(role.id, role.version) });
    for (const bucket of wanted.quotas ?? []) requested.push({ key: keys.quota(bucket), into: quotas, name: bucket });
    if (requested.length === 0) return { tools, roles: roleVersions, quotas };
    const found = await this.#items.batchGet(requested.map((r) => r.key));
    for (const { key, into, name } of requested) {
      const item = found.get(itemKeyOf(key));
      if (item !== undefined) into.set(name, toDomain(item));
    }
    return { tools, roles: roleVersions, quotas };
  }

  // Identities and grants

  async putIdentity(identity: Identity): Promise<void> {
    await this.#items.put({ ...identity, ...keys.identity(identity.id), [INDEXES.byType.partitionKey]: 'IDENTITY' });
  }

  async getIdentity(id: string): Promise<Identity | undefined> {
    return this.#items.get<Identity>(keys.identity(id));
  }

  async getIdentityWithGrants(id: string): Promise<{ identity: Identity; grants: Grant[] } | undefined> {
    const { PK } = keys.identity(id);
    const items = await this.#items.queryAll({
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
      else if (typeof sk === 'string' && sk.startsWith('GRANT#')) grants.push(toDomain<Grant>(item));
    }
    return identity === undefined ? undefined : { identity, grants };
  }

  async listIdentities(): Promise<Identity[]> {
    return this.#items.listType<Identity>('IDENTITY');
  }

  async putGrant(grant: Grant): Promise<void> {
    await this.#items.put({ ...grant, ...keys.grant(grant.identity, grant.id) });
  }

  async deleteGrant(identity: string, grantId: string): Promise<void> {
    await this.#items.doc.send(new DeleteCommand({ TableName: this.#items.table, Key: keys.grant(identity, grantId) }));
  }

  async listGrants(identity: string): Promise<Grant[]> {
    const items = await this.#items.queryAll({
      KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :grant)',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#sk': SORT_KEY },
      ExpressionAttributeValues: { ':pk': keys.identity(identity).PK, ':grant': 'GRANT#' },
      ConsistentRead: true,
    });
    return items.map((item) => toDomain<Grant>(item));
  }

  // Principals and their keys

  /** Writes the principal, then refreshes the copy each of its keys carries. */
  async putPrincipal(principal: Principal): Promise<void> {
    await this.#items.put({ ...principal, ...keys.principal(principal.id), [INDEXES.byType.partitionKey]: 'PRINCIPAL' });
    const refs = await this.#items.queryAll({
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
    return this.#items.get<Principal>(keys.principal(id));
  }

  async listPrincipals(): Promise<Principal[]> {
    return this.#items.listType<Principal>('PRINCIPAL');
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
    const ref = await this.#items.getItem(keys.keyRef(principalId, keyKind));
    const previous = typeof ref?.['keyValue'] === 'string' ? ref['keyValue'] : undefined;
    if (previous !== undefined && previous !== keyValue) await this.#deleteKeyOf(principalId, keyKind, previous);

    const moved = await this.#items.doc.send(
      new PutCommand({
        TableName: this.#items.table,
        Item: { ...keys.principalKey(keyKind, keyValue), principalId, keyKind, principal: compact(principal) },
        ReturnValues: 'ALL_OLD',
      }),
    );
    const formerOwner = moved.Attributes?.['principalId'] as unknown;
    if (typeof formerOwner === 'string' && formerOwner !== principalId) {
      await this.#clearKeyRef(formerOwner, keyKind, keyValue);
    }

    try {
      await this.#items.doc.send(
        new PutCommand({
          TableName: this.#items.table,
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
    const item = await this.#items.getItem(keys.principalKey(keyKind, keyValue));
    const principal = item?.['principal'];
    return typeof principal === 'object' && principal !== null ? (principal as Principal) : undefined;
  }

  async hasPrincipalKey(principalId: string, keyKind: KeyKind): Promise<boolean> {
    return (await this.#items.getItem(keys.keyRef(principalId, keyKind))) !== undefined;
  }

  /** Deletes a key item if it still belongs to the principal (it may have moved to another). */
  async #deleteKeyOf(principalId: string, keyKind: KeyKind, keyValue: string): Promise<void> {
    try {
      await this.#items.doc.send(
        new DeleteCommand({
          TableName: this.#items.table,
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
      await this.#items.doc.send(
        new DeleteCommand({
          TableName: this.#items.table,
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
      await this.#items.doc.send(
        new UpdateCommand({
          TableName: this.#items.table,
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
}

/** The same set of actions, in whatever order. */
function sameActions(a: readonly string[], b: readonly string[]): boolean {
  const left = [...new Set(a)].sort();
  const right = [...new Set(b)].sort();
  return left.length === right.length && left.every((action, i) => action === right[i]);
}
