/**
 * The single DynamoDB table behind the store (docs/architecture.md), as plain data: the same definition
 * feeds `CreateTableCommand` (local server, tests) and the CDK construct, so the engines and
 * AWS never disagree on key names or indexes.
 *
 * Item layout (the keys are built in `keys.ts`, the items written by the role-port modules `dynamo-store.ts` composes):
 *
 * | item | PK | SK | GSIs |
 * | --- | --- | --- | --- |
 * | tool | `TOOL#<id>` | `TOOL` | byType (`TOOL`) |
 * | role version | `ROLE#<id>` | `V#<version, 10 digits>` | byType (`ROLE`) |
 * | identity | `IDENTITY#<id>` | `IDENTITY` | byType (`IDENTITY`) |
 * | grant | `IDENTITY#<identity>` | `GRANT#<grant id>` | — |
 * | principal | `PRINCIPAL#<id>` | `PRINCIPAL` | byType (`PRINCIPAL`) |
 * | principal's key pointer | `PRINCIPAL#<id>` | `KEYREF#<apiKey or arn>` | — |
 * | principal key | `KEY#<apiKey or arn>#<value>` | `KEY` | — |
 * | issued decision (credential) | `CRED#<credential id>` | `DECISION` | byIdentity, byLane, byTenant, byTask, byTool |
 * | denied decision | `DECISION#<id>` | `DECISION` | byIdentity, byLane, byTenant, byTask, byTool |
 * | revocation feed counter | `COUNTER` | `REVOCATION` | — |
 * | revocation | `REVOCATION` | `<seq, 16 digits>` | — |
 * | issuance block (kept, marked, once reinstated) | `BLOCK` | `<target key>` | — |
 * | refresh token (SHA-256 only) | `REFRESH#<hash>` | `REFRESH` | — |
 * | quota policy of a bucket | `QUOTA#<bucket>` | `QUOTA` | byType (`QUOTA`) |
 * | quota counter of one window (TTL: window end + 1 day) | `QUOTA#<bucket>` | `W#<window seconds, 8 digits>#<window start ms, 16 digits>` | — |
 * | upstream secret pointer (version ids, never the secret) | `UPSTREAM#<provider>` | `SECRETREF` | byType (`UPSTREAM_SECRET`) |
 * | STS revocation statements of a tool role, with their version (`sts-revocation.ts`) | `STSDENY#<role ARN>` | `STSDENY` | — |
 * | signing-key registry (key ARNs to publish; signing-key-registry.ts) | `SIGNING_KEYS` | `<alias>` | — |
 *
 * @example
 * ```ts
 * await client.send(new CreateTableCommand(createTableInput('lanyard')));
 * // or, idempotently, waiting for ACTIVE:
 * await ensureTable(client, 'lanyard');
 * ```
 */
import { CreateTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import type { CreateTableCommandInput, DynamoDBClient, TableDescription } from '@aws-sdk/client-dynamodb';

/** @default table name when none is configured. */
export const DEFAULT_TABLE_NAME = 'lanyard';

export const PARTITION_KEY = 'PK';
export const SORT_KEY = 'SK';

/** DynamoDB TTL attribute (epoch seconds). Enabled by the CDK construct; the local engines ignore it. */
export const TTL_ATTRIBUTE = 'ttl';

/**
 * Streams carry both images: the event publisher derives events from committed state
 * (docs/events.md), and a grant change or a reinstatement is told apart by comparing them.
 */
export const STREAM_VIEW_TYPE = 'NEW_AND_OLD_IMAGES';

export interface IndexDefinition {
  readonly indexName: string;
  /** String attribute. */
  readonly partitionKey: string;
  /** String attribute. */
  readonly sortKey: string;
}

/**
 * Global secondary indexes, all projecting every attribute. They are sparse: an item carries an
 * index's key attributes only when it belongs in that index.
 */
export const INDEXES = {
  /** Entity listings (`TOOL`, `ROLE`, `IDENTITY`, `PRINCIPAL`, `QUOTA`, `UPSTREAM_SECRET`), ordered by PK. */
  byType: { indexName: 'byType', partitionKey: 'GSI_TYPE', sortKey: PARTITION_KEY },
  /** Decisions by identity, over time (`GSI_AT` is the decision instant as a normalised ISO string). */
  byIdentity: { indexName: 'byIdentity', partitionKey: 'GSI_IDENTITY', sortKey: 'GSI_AT' },
  byLane: { indexName: 'byLane', partitionKey: 'GSI_LANE', sortKey: 'GSI_AT' },
  byTenant: { indexName: 'byTenant', partitionKey: 'GSI_TENANT', sortKey: 'GSI_AT' },
  byTask: { indexName: 'byTask', partitionKey: 'GSI_TASK', sortKey: 'GSI_AT' },
  /** Decisions about a tool, notably its kill switches, over time. */
  byTool: { indexName: 'byTool', partitionKey: 'GSI_TOOL', sortKey: 'GSI_AT' },
} as const satisfies Record<string, IndexDefinition>;

/** The index that answers each `DecisionQuery.by`. */
export const DECISION_INDEXES = {
  identity: INDEXES.byIdentity,
  lane: INDEXES.byLane,
  tenant: INDEXES.byTenant,
  task: INDEXES.byTask,
  tool: INDEXES.byTool,
} as const satisfies Record<'identity' | 'lane' | 'tenant' | 'task' | 'tool', IndexDefinition>;

/** Every attribute the store adds to an item for keys and indexes; none is part of the domain. */
export const KEY_ATTRIBUTES: readonly string[] = [
  ...new Set([
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
    ...Object.values(INDEXES).flatMap((index) => [index.partitionKey, index.sortKey]),
  ]),
];

/**
 * The `CreateTableCommand` input: on-demand billing, string keys, the GSIs above, a stream of
 * new images. TTL is not part of CreateTable (it is `UpdateTimeToLive`, which dynalite lacks);
 * the CDK construct sets `timeToLiveAttribute: TTL_ATTRIBUTE`.
 */
export function createTableInput(tableName: string = DEFAULT_TABLE_NAME): CreateTableCommandInput {
  const attributes = new Set<string>([PARTITION_KEY, SORT_KEY]);
  for (const index of Object.values(INDEXES)) {
    attributes.add(index.partitionKey);
    attributes.add(index.sortKey);
  }
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [...attributes].map((name) => ({ AttributeName: name, AttributeType: 'S' })),
    KeySchema: [
      { AttributeName: PARTITION_KEY, KeyType: 'HASH' },
      { AttributeName: SORT_KEY, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: Object.values(INDEXES).map((index) => ({
      IndexName: index.indexName,
      KeySchema: [
        { AttributeName: index.partitionKey, KeyType: 'HASH' },
        { AttributeName: index.sortKey, KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'ALL' },
    })),
    StreamSpecification: { StreamEnabled: true, StreamViewType: STREAM_VIEW_TYPE },
  };
}

export interface EnsureTableOptions {
  /** @default 60_000 */
  readonly timeoutMs?: number;
}

/**
 * Creates the table if it is missing and waits until it and its indexes are ACTIVE. Idempotent,
 * and safe when several processes race to create it. An existing table without one of the
 * indexes above is a configuration mistake and throws rather than failing later on a query.
 */
export async function ensureTable(
  client: DynamoDBClient,
  tableName: string = DEFAULT_TABLE_NAME,
  options: EnsureTableOptions = {},
): Promise<TableDescription> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let table = await describeTable(client, tableName);
  if (table === undefined) {
    try {
      await client.send(new CreateTableCommand(createTableInput(tableName)));
    } catch (error) {
      // Another process created it first: fine, wait for it like for our own.
      if (!hasName(error, 'ResourceInUseException')) throw error;
    }
  }
  for (let delay = 25; ; delay = Math.min(delay * 2, 1_000)) {
    table = await describeTable(client, tableName);
    if (table !== undefined && isActive(table)) break;
    if (Date.now() > deadline) throw new Error(`table ${tableName} is not ACTIVE after ${options.timeoutMs ?? 60_000} ms`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  const present = new Set((table.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName));
  const missing = Object.values(INDEXES).filter((index) => !present.has(index.indexName));
  if (missing.length > 0) {
    throw new Error(`table ${tableName} lacks the indexes ${missing.map((index) => index.indexName).join(', ')}`);
  }
  return table;
}

async function describeTable(client: DynamoDBClient, tableName: string): Promise<TableDescription | undefined> {
  try {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }));
    return out.Table;
  } catch (error) {
    if (hasName(error, 'ResourceNotFoundException')) return undefined;
    throw error;
  }
}

function isActive(table: TableDescription): boolean {
  return table.TableStatus === 'ACTIVE' && (table.GlobalSecondaryIndexes ?? []).every((index) => index.IndexStatus === undefined || index.IndexStatus === 'ACTIVE');
}

/** AWS SDK v3 errors are told apart by `name` (the service's error code). */
export function hasName(error: unknown, name: string): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === name;
}
