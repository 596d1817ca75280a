/**
 * The one table (docs/architecture.md), its definition shared with the local engines: keys,
 * indexes, TTL attribute and stream view all come from shared/adapters/dynamodb/table.ts.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';
import { INDEXES, PARTITION_KEY, SORT_KEY, STREAM_VIEW_TYPE, TTL_ATTRIBUTE } from '../../shared/adapters/dynamodb/table.ts';
import type { ResolvedProps } from './props.ts';

/**
 * The stream view comes from table.ts like the keys and indexes. It must carry old images:
 * reinstating a target and removing a grant are deletes, and a REMOVE record holds the
 * deleted item only in its old image, so the publisher needs it to emit `Target Reinstated`
 * and `Grant Changed` (docs/events.md). `resolveProps` refuses a view without old images.
 */
export const STACK_STREAM_VIEW_TYPE: dynamodb.StreamViewType = dynamodb.StreamViewType[STREAM_VIEW_TYPE];

/** The table, `Table` under `scope`, with every index of table.ts. */
export function createTable(scope: Construct, config: ResolvedProps, tableName: string | undefined): dynamodb.Table {
  const table = new dynamodb.Table(scope, 'Table', {
    ...(tableName !== undefined && { tableName }),
    partitionKey: { name: PARTITION_KEY, type: dynamodb.AttributeType.STRING },
    sortKey: { name: SORT_KEY, type: dynamodb.AttributeType.STRING },
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    timeToLiveAttribute: TTL_ATTRIBUTE,
    stream: STACK_STREAM_VIEW_TYPE,
    encryption: config.tableEncryption,
    removalPolicy: config.removalPolicy,
    deletionProtection: config.removalPolicy === RemovalPolicy.RETAIN,
  });
  for (const index of Object.values(INDEXES)) {
    table.addGlobalSecondaryIndex({
      indexName: index.indexName,
      partitionKey: { name: index.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: index.sortKey, type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
  }
  return table;
}
