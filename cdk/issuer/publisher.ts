/**
 * The event publisher's wiring (docs/events.md): DynamoDB Streams → the publish-events function
 * → the bus, with a dead-letter queue for the records it gives up on.
 */
import { Duration } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { PUBLISHED_RECORD_FILTERS } from '../../lambdas/publish-events.ts';
import type { LanyardFunction } from '../lanyard-function.ts';
import { acknowledge } from './nag.ts';

export function createPublisherDlq(scope: Construct): sqs.Queue {
  const dlq = new sqs.Queue(scope, 'PublisherDlq', {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  acknowledge(dlq, 'AwsSolutions-SQS3', 'This queue is itself the on-failure destination of the stream publisher; a DLQ of a DLQ would only move the problem');
  return dlq;
}

/** Feeds `fn` from the table's stream and lets it put events on `bus`. */
export function wirePublisher(fn: LanyardFunction, table: dynamodb.Table, bus: events.EventBus, dlq: sqs.Queue): void {
  fn.addEventSource(
    new DynamoEventSource(table, {
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: 100,
      maxBatchingWindow: Duration.seconds(1),
      bisectBatchOnError: true,
      // The publisher answers { batchItemFailures }: only the records whose events failed are retried.
      reportBatchItemFailures: true,
      retryAttempts: 10,
      maxRecordAge: Duration.days(1),
      // One batch at a time per shard: events leave in commit order.
      parallelizationFactor: 1,
      onFailure: new SqsDlq(dlq),
      // Only the records that can become events invoke it (decision records never do).
      filters: PUBLISHED_RECORD_FILTERS.map((pattern) => lambda.FilterCriteria.filter({ ...pattern })),
    }),
  );
  bus.grantPutEventsTo(fn);
}
