/**
 * Where the issuer learns which signing keys to publish: one item in the Lanyard table per
 * alias, written by the rotation function after every run, read by the signers and the JWKS
 * in one consistent GetItem (cached like the alias, 60 s). Before this item, every container
 * listed every KMS key of the account and region and read each key's tags, one call per key,
 * so a foreign key whose policy denied the read failed signing and the JWKS closed; see
 * docs/decisions.md ("Signing keys are recorded in the table") for why the table and not SSM.
 *
 * The item names key ARNs and when each was first published, never key material:
 * `{ PK: SIGNING_KEYS, SK: <alias>, alias, keys: [{ arn, publishedAt }], updatedAt }`.
 * No item (rotation never ran) is an empty list: the signer still publishes the alias target.
 *
 * @example
 * ```ts
 * const registry = new SigningKeyRegistry({ client: new DynamoDBClient({}), tableName: 'lanyard' });
 * const arns = (await registry.read('alias/lanyard/Lanyard/signing')).map((key) => key.arn);
 * ```
 */
import { GetItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { keys as itemKeys, SIGNING_KEY_REGISTRY_PARTITION } from '../dynamodb/keys.ts';

/** Partition of the registry items (one per alias); the CDK grant to the JWKS function is scoped to it. */
export const SIGNING_KEY_REGISTRY_PK = SIGNING_KEY_REGISTRY_PARTITION;

export interface PublishedSigningKey {
  readonly arn: string;
  /** ISO instant the key first appeared in the registry: a staged key ripens from then. */
  readonly publishedAt: string;
}

export interface SigningKeyRegistryOptions {
  /** Created once by the caller, at module scope. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
}

export class SigningKeyRegistry {
  readonly #client: DynamoDBClient;
  readonly #table: string;

  constructor(options: SigningKeyRegistryOptions) {
    if (options.tableName.trim() === '') throw new Error('SigningKeyRegistry: tableName must not be empty');
    this.#client = options.client;
    this.#table = options.tableName;
  }

  /** The published keys of `alias`; `[]` when rotation has not written them yet. A malformed item throws (the caller fails closed). */
  async read(alias: string): Promise<PublishedSigningKey[]> {
    const output = await this.#client.send(new GetItemCommand({ TableName: this.#table, Key: marshall(key(alias)), ConsistentRead: true }));
    if (output.Item === undefined) return [];
    const keys = unmarshall(output.Item)['keys'] as unknown;
    if (!Array.isArray(keys) || !keys.every(isPublishedKey)) throw new Error(`signing-key registry item of ${alias} is malformed`);
    return keys.map((entry) => ({ arn: entry.arn, publishedAt: entry.publishedAt }));
  }

  /** Replaces the published keys of `alias` (rotation runs one at a time: the whole set, not a merge). */
  async write(alias: string, keys: readonly PublishedSigningKey[], at: string): Promise<void> {
    const item = { ...key(alias), alias, keys: keys.map((entry) => ({ arn: entry.arn, publishedAt: entry.publishedAt })), updatedAt: at };
    await this.#client.send(new PutItemCommand({ TableName: this.#table, Item: marshall(item) }));
  }
}

function key(alias: string): Record<string, string> {
  return { ...itemKeys.signingKeyRegistry(alias) };
}

function isPublishedKey(value: unknown): value is PublishedSigningKey {
  const entry = value as Partial<PublishedSigningKey> | null;
  return typeof entry?.arn === 'string' && entry.arn.startsWith('arn:') && typeof entry.publishedAt === 'string' && !Number.isNaN(Date.parse(entry.publishedAt));
}
