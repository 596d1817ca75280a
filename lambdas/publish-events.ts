/**
 * DynamoDB Streams → EventBridge (docs/events.md): events are derived from committed state only.
 *
 * Each stream record is one committed item change. The item is recognised by its key (the
 * layout's own recogniser, `eventSourceItemOf` in `shared/adapters/dynamodb/keys.ts`): a revocation INSERT, a block change (the MODIFY that
 * marks it reinstated is the one that yields an event), a grant INSERT/MODIFY/REMOVE, an
 * upstream secret pointer INSERT/MODIFY that moves it to another version. The
 * store's key and index attributes (`KEY_ATTRIBUTES`) are stripped, and the resulting
 * `StoreChange` goes through `eventsFromChange`, the mapping the embedded default uses too,
 * so both publish the same events. Every other item (decisions, tools, principals, keys,
 * refresh tokens, …) yields nothing: its content never reaches the bus.
 *
 * Failures are reported per record (`batchItemFailures`, the event source mapping has
 * `reportBatchItemFailures`): Lambda retries from the lowest failed sequence number, bisects,
 * and after its retries sends the record to the DLQ (an alarm). A record whose images cannot be
 * read is a failure too, never silently dropped: no revocation without its event.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { Grant, Revocation, UpstreamSecretRef } from '../shared/domain/model.ts';
import { isLanyardError } from '../shared/domain/errors.ts';
import { eventsFromChange, type BlockImage, type StoreChange } from '../shared/domain/events.ts';
import { describeError, type Log } from '../shared/ports/log.ts';
import type { EventPublisher, LanyardEvent } from '../shared/ports/index.ts';
import { EventBridgePublisher } from '../shared/adapters/aws/eventbridge-publisher.ts';
import { KEY_ATTRIBUTES, PARTITION_KEY, SORT_KEY } from '../shared/adapters/dynamodb/table.ts';
import { EVENT_SOURCE_KEY_PATTERNS, eventSourceItemOf } from '../shared/adapters/dynamodb/keys.ts';
import { eventBridgeClient, lambdaLog } from '../shared/bootstrap/aws/clients.ts';

export interface PublishEventsOptions {
  readonly publisher: EventPublisher;
  readonly log: Log;
}

/**
 * The event source mapping's filter (Lambda event filtering, `FilterCriteria`; the patterns are
 * ORed): only the stream records that can become an event invoke the publisher, so the decision
 * records (most writes) and every other item cost no invocation. One pattern per branch of
 * `changeOf`, as narrow as the filter syntax allows: a revocation INSERT; a block change whose
 * new image carries `reinstatedAt`; any grant change; an upstream secret pointer INSERT or
 * MODIFY. The handler still decides: the filter cannot compare two fields, so a block MODIFY
 * that was already reinstated and a pointer rewritten with the same version pass it and yield
 * nothing (test/lambdas/publish-events-filter.test.ts runs sample records through both).
 */
export const PUBLISHED_RECORD_FILTERS: readonly Readonly<Record<string, unknown>>[] = [
  { eventName: ['INSERT'], dynamodb: { Keys: EVENT_SOURCE_KEY_PATTERNS.revocation } },
  { dynamodb: { Keys: EVENT_SOURCE_KEY_PATTERNS.block, NewImage: { reinstatedAt: { S: [{ exists: true }] } } } },
  { dynamodb: { Keys: EVENT_SOURCE_KEY_PATTERNS.grant } },
  { eventName: ['INSERT', 'MODIFY'], dynamodb: { Keys: EVENT_SOURCE_KEY_PATTERNS.upstreamSecretRef } },
];

type Item = Record<string, unknown>;
type StreamImage = NonNullable<NonNullable<DynamoDBRecord['dynamodb']>['NewImage']>;

const INTERNAL_ATTRIBUTES = new Set(KEY_ATTRIBUTES);

/**
 * @example
 * ```ts
 * const handle = createPublishEventsHandler({ publisher: new EventBridgePublisher({ client, busName }), log });
 * const { batchItemFailures } = await handle(streamEvent);
 * ```
 */
export function createPublishEventsHandler(options: PublishEventsOptions): (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse> {
  const { publisher, log } = options;
  return async (event) => {
    const failed = new Set<string>();
    /** Event id → the records it came from (a change delivered twice in one batch has one id). */
    const origin = new Map<string, string[]>();
    const events: LanyardEvent[] = [];

    for (const record of event.Records) {
      const sequence = record.dynamodb?.SequenceNumber;
      if (sequence === undefined) continue; // Nothing to report against; never happens on a real stream.
      let produced: LanyardEvent[];
      try {
        const change = changeOf(record);
        produced = change === undefined ? [] : eventsFromChange(change);
      } catch (error) {
        log.error('stream record not readable; reported as failed', { sequenceNumber: sequence, eventName: record.eventName, error: describeError(error) });
        failed.add(sequence);
        continue;
      }
      for (const produce of produced) {
        events.push(produce);
        origin.set(produce.id, [...(origin.get(produce.id) ?? []), sequence]);
      }
    }

    if (events.length > 0) {
      try {
        await publisher.publish(events);
      } catch (error) {
        // The publisher names the events it could not put; anything else fails every record that had one.
        const ids = isLanyardError(error) && Array.isArray(error.context['eventIds']) ? (error.context['eventIds'] as readonly string[]) : [...origin.keys()];
        for (const id of ids) for (const sequence of origin.get(id) ?? []) failed.add(sequence);
        log.error('events not published; their records are reported as failed', { eventIds: ids, error: describeError(error) });
      }
    }

    log.info('stream batch', { records: event.Records.length, events: events.length, failed: failed.size });
    return { batchItemFailures: [...failed].map((itemIdentifier) => ({ itemIdentifier })) };
  };
}

/** The store change a record carries, or undefined for items that yield no event. */
export function changeOf(record: DynamoDBRecord): StoreChange | undefined {
  const newImage = imageOf(record.dynamodb?.NewImage);
  const oldImage = imageOf(record.dynamodb?.OldImage);
  const keys: Item | undefined = record.dynamodb?.Keys === undefined ? (newImage ?? oldImage) : unmarshall(record.dynamodb.Keys as Record<string, AttributeValue>);
  const pk = keys?.[PARTITION_KEY];
  const sk = keys?.[SORT_KEY];
  if (typeof pk !== 'string' || typeof sk !== 'string') return undefined;

  const item = eventSourceItemOf({ PK: pk, SK: sk });
  if (item === 'revocation') {
    // Only the append is an event; pruning (REMOVE) is housekeeping.
    if (record.eventName !== 'INSERT') return undefined;
    return { entity: 'revocation', newImage: checked<Revocation>(newImage, ['id', 'targetType', 'targetKey', 'cutoff'], 'revocation') };
  }
  if (item === 'block') {
    return {
      entity: 'block',
      ...(oldImage && { oldImage: checked<BlockImage>(oldImage, ['targetKey', 'targetType', 'revocationId'], 'block') }),
      ...(newImage && { newImage: checked<BlockImage>(newImage, ['targetKey', 'targetType', 'revocationId'], 'block') }),
    };
  }
  if (item === 'grant') {
    return {
      entity: 'grant',
      ...(oldImage && { oldImage: checked<Grant>(oldImage, ['id', 'identity', 'role'], 'grant') }),
      ...(newImage && { newImage: checked<Grant>(newImage, ['id', 'identity', 'role'], 'grant') }),
    };
  }
  if (item === 'upstreamSecretRef') {
    // Only a write of a pointer rotates; a removed provider has nothing to announce.
    if (newImage === undefined) return undefined;
    const fields = ['provider', 'version', 'rotatedAt', 'actor', 'reason', 'requestId'];
    return {
      entity: 'upstreamSecret',
      ...(oldImage && { oldImage: checked<UpstreamSecretRef>(oldImage, fields, 'upstream secret pointer') }),
      newImage: checked<UpstreamSecretRef>(newImage, fields, 'upstream secret pointer'),
    };
  }
  return undefined;
}

/** An image as the domain object the store put: unmarshalled, without key and index attributes. */
function imageOf(image: StreamImage | undefined): Item | undefined {
  if (image === undefined) return undefined;
  // The Lambda event types declare their own AttributeValue; the wire format is the SDK's.
  const item: Item = unmarshall(image as Record<string, AttributeValue>);
  const out: Item = {};
  for (const [name, value] of Object.entries(item)) {
    if (!INTERNAL_ATTRIBUTES.has(name)) out[name] = value;
  }
  return out;
}

function checked<T>(item: Item | undefined, fields: readonly string[], what: string): T {
  if (item === undefined) throw new Error(`${what} record has no image`);
  const missing = fields.filter((field) => typeof item[field] !== 'string');
  if (missing.length > 0) throw new Error(`${what} image lacks ${missing.join(', ')}`);
  if (what === 'revocation' && typeof item['seq'] !== 'number') throw new Error('revocation image lacks seq');
  return item as T;
}

// The AWS wiring: built on the first invocation, once per container, not on every call.
let built: ((event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse>) | undefined;

export function handler(event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> {
  built ??= buildFromEnv(process.env);
  return built(event);
}

function buildFromEnv(env: NodeJS.ProcessEnv): (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse> {
  const busName = env.LANYARD_EVENT_BUS;
  // A configuration mistake fails the invocation with a clear message, not on a request.
  if (!busName) throw new Error('environment variable LANYARD_EVENT_BUS is required');
  // The clients and log of the AWS composition root (shared/bootstrap/aws/clients.ts).
  return createPublishEventsHandler({ publisher: new EventBridgePublisher({ client: eventBridgeClient(env), busName }), log: lambdaLog() });
}
