import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createPublishEventsHandler } from '../../lambdas/publish-events.ts';
import { DynamoStore } from '../../shared/adapters/dynamodb/dynamo-store.ts';
import { EventBridgePublisher } from '../../shared/adapters/aws/eventbridge-publisher.ts';
import { LocalChangeFeed } from '../../shared/adapters/local/change-feed.ts';
import { LocalEventBus } from '../../shared/adapters/local/event-bus.ts';
import type { Grant, IssuanceBlock, Revocation, UpstreamSecretRef } from '../../shared/domain/model.ts';
import { silentLog } from '../../shared/ports/log.ts';
import type { LanyardEvent } from '../../shared/ports/index.ts';
import { startDynaliteEngine, type Engine } from '../helpers/engines.ts';

const BUS = 'lanyard-test-bus';
const LANE = 'support-triage/prod:tickets:write:acme';
const AT = '2026-11-22T12:00:00.000Z';

const revocation: Revocation = {
  id: 'rev_req-1',
  seq: 7,
  target: { lane: LANE },
  targetType: 'lane',
  targetKey: `lane:${LANE}`,
  cutoff: AT,
  relevantUntil: '2026-11-23T00:01:00.000Z',
  actor: 'alice@example.com',
  reason: 'agent replied to the wrong tenant',
  requestId: 'req-1',
};
const block: IssuanceBlock = {
  targetKey: `lane:${LANE}`,
  targetType: 'lane',
  revocationId: 'rev_req-1',
  since: AT,
  actor: 'alice@example.com',
  reason: 'agent replied to the wrong tenant',
  requestId: 'req-1',
};
const grant: Grant = {
  id: 'support-triage@1',
  identity: 'support-triage/prod',
  role: 'support-triage',
  roleVersion: 1,
  tenants: ['acme'],
  environment: 'prod',
  maxTtlSeconds: 900,
  kinds: ['jwt'],
  quotaBucket: 'support-llm',
  status: 'active',
  updatedAt: AT,
  changedBy: 'alice@example.com',
  changeReason: 'initial policy',
  requestId: 'req-2',
};
const secretRef: UpstreamSecretRef = {
  provider: 'stripe',
  version: 'v-2',
  previousVersion: 'v-1',
  rotatedAt: AT,
  overlapUntil: '2026-11-22T12:01:00.000Z',
  actor: 'alice@example.com',
  reason: 'scheduled rotation',
  requestId: 'req-4',
};

/** Items as DynamoStore writes them: the domain object plus its key (and, for some, TTL and index) attributes. */
const items = {
  revocation: (r: Revocation) => ({ ...r, PK: 'REVOCATION', SK: String(r.seq).padStart(16, '0') }),
  block: (b: object & { targetKey: string }) => ({ ...b, PK: 'BLOCK', SK: b.targetKey }),
  grant: (g: Grant) => ({ ...g, PK: `IDENTITY#${g.identity}`, SK: `GRANT#${g.id}` }),
  secretRef: (r: UpstreamSecretRef) => ({ ...r, PK: `UPSTREAM#${r.provider}`, SK: 'SECRETREF', GSI_TYPE: 'UPSTREAM_SECRET' }),
};

type StreamImage = NonNullable<NonNullable<DynamoDBRecord['dynamodb']>['NewImage']>;

let sequence = 100;
/** A stream record as DynamoDB Streams delivers it with NEW_AND_OLD_IMAGES. */
function streamRecord(eventName: 'INSERT' | 'MODIFY' | 'REMOVE', images: { old?: Record<string, unknown>; new?: Record<string, unknown> }): DynamoDBRecord {
  const any = (images.new ?? images.old)!;
  const image = (item: Record<string, unknown>) => marshall(item, { removeUndefinedValues: true }) as unknown as StreamImage;
  sequence += 1;
  return {
    eventID: `evt-${sequence}`,
    eventName,
    eventSource: 'aws:dynamodb',
    awsRegion: 'eu-west-1',
    dynamodb: {
      Keys: image({ PK: any['PK'], SK: any['SK'] }),
      ...(images.new && { NewImage: image(images.new) }),
      ...(images.old && { OldImage: image(images.old) }),
      SequenceNumber: String(sequence).padStart(21, '0'),
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
  };
}

const batch = (...records: DynamoDBRecord[]): DynamoDBStreamEvent => ({ Records: records });

/** PutEvents as EventBridge answers it: results in request order; entries whose detail `fails` picks fail alone. */
function fakeEventBridge(fails: (entry: PutEventsRequestEntry) => boolean = () => false) {
  const client = new EventBridgeClient({ region: 'eu-west-1' });
  const mock = mockClient(client);
  const delivered: PutEventsRequestEntry[] = [];
  mock.on(PutEventsCommand).callsFake((input: { Entries?: PutEventsRequestEntry[] }) => {
    const entries = input.Entries ?? [];
    if (entries.length > 10) throw new Error('fake EventBridge: more than 10 entries');
    let failed = 0;
    const results = entries.map((entry, index) => {
      if (fails(entry)) {
        failed++;
        return { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal service error' };
      }
      delivered.push(entry);
      return { EventId: `eb-${index}` };
    });
    return { FailedEntryCount: failed, Entries: results };
  });
  const publisher = new EventBridgePublisher({ client, busName: BUS, maxAttempts: 2, sleep: () => Promise.resolve() });
  return { client, mock, delivered, publisher };
}

describe('Handler: publish-events', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('publishes a revocation INSERT as a Lane Revoked entry whose detail is { eventId, revocation }', async () => {
    // Prepare
    const eb = fakeEventBridge();
    const handle = createPublishEventsHandler({ publisher: eb.publisher, log: silentLog });

    // Act
    const result = await handle(batch(streamRecord('INSERT', { new: { ...items.revocation(revocation), ttl: 1_900_000_000 } })));

    // Assess
    expect(result).toEqual({ batchItemFailures: [] });
    expect(eb.delivered).toHaveLength(1);
    const [entry] = eb.delivered;
    expect(entry).toMatchObject({ Source: 'lanyard', DetailType: 'Lane Revoked', EventBusName: BUS, Time: new Date(AT) });
    // Key, TTL and index attributes are the store's, not the domain's: stripped.
    // The deterministic id rides in the detail: PutEvents takes none, and consumers dedupe on it.
    expect(JSON.parse(entry!.Detail!)).toEqual({ eventId: `revocation-${revocation.seq}`, revocation });
  });

  it('publishes the block MODIFY that marks it reinstated as Target Reinstated, and nothing for the block INSERT', async () => {
    // Prepare
    const eb = fakeEventBridge();
    const handle = createPublishEventsHandler({ publisher: eb.publisher, log: silentLog });
    const reinstated = {
      ...items.block(block),
      reinstatedAt: '2026-11-22T13:00:00.000Z',
      reinstatedBy: 'bob@example.com',
      reinstateReason: 'fixed the tenant routing',
      reinstateRequestId: 'req-3',
      ttl: 1_900_000_000,
    };

    // Act
    const result = await handle(
      batch(streamRecord('INSERT', { new: items.block(block) }), streamRecord('MODIFY', { old: items.block(block), new: reinstated })),
    );

    // Assess
    expect(result.batchItemFailures).toEqual([]);
    expect(eb.delivered.map((entry) => entry.DetailType)).toEqual(['Target Reinstated']);
    expect(JSON.parse(eb.delivered[0]!.Detail!)).toEqual({
      eventId: 'reinstated-rev_req-1',
      targetKey: `lane:${LANE}`,
      targetType: 'lane',
      revocationId: 'rev_req-1',
      reinstatedAt: '2026-11-22T13:00:00.000Z',
      actor: 'bob@example.com',
      reason: 'fixed the tenant routing',
      requestId: 'req-3',
    });
  });

  it('publishes an upstream secret pointer moved to a new version as Upstream Secret Rotated, and nothing for a rewrite of the same version or a removal', async () => {
    // Prepare
    const eb = fakeEventBridge();
    const handle = createPublishEventsHandler({ publisher: eb.publisher, log: silentLog });
    const v1 = items.secretRef({ ...secretRef, version: 'v-1', previousVersion: undefined, overlapUntil: undefined });
    const v2 = items.secretRef(secretRef);

    // Act
    const result = await handle(
      batch(
        streamRecord('INSERT', { new: v1 }),
        streamRecord('MODIFY', { old: v1, new: v2 }),
        streamRecord('MODIFY', { old: v2, new: { ...v2, requestId: 'req-5' } }),
        streamRecord('REMOVE', { old: v2 }),
      ),
    );

    // Assess
    expect(result.batchItemFailures).toEqual([]);
    expect(eb.delivered.map((entry) => entry.DetailType)).toEqual(['Upstream Secret Rotated', 'Upstream Secret Rotated']);
    expect(eb.delivered[1]).toMatchObject({ Source: 'lanyard', EventBusName: BUS, Time: new Date(AT) });
    expect(JSON.parse(eb.delivered[1]!.Detail!)).toEqual({
      eventId: 'secret-stripe-v-2',
      provider: 'stripe',
      version: 'v-2',
      previousVersion: 'v-1',
      rotatedAt: AT,
      overlapUntil: '2026-11-22T12:01:00.000Z',
      actor: 'alice@example.com',
      reason: 'scheduled rotation',
      requestId: 'req-4',
    });
  });

  it('reports an upstream secret pointer image lacking its version as failed', async () => {
    // Prepare
    const eb = fakeEventBridge();
    const handle = createPublishEventsHandler({ publisher: eb.publisher, log: silentLog });
    const broken = streamRecord('INSERT', { new: { PK: 'UPSTREAM#stripe', SK: 'SECRETREF', provider: 'stripe' } });

    // Act
    const result = await handle(batch(broken));

    // Assess
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: broken.dynamodb!.SequenceNumber }]);
    expect(eb.delivered).toHaveLength(0);
  });

  it('publishes nothing for decisions, tools, principal keys, refresh tokens, pruned revocations, expired blocks, quota policies and quota counters', async () => {
    // Prepare
    const eb = fakeEventBridge();
    const handle = createPublishEventsHandler({ publisher: eb.publisher, log: silentLog });
    const decision = { PK: 'CRED#crd_abcdefghijklmnop', SK: 'DECISION', id: 'crd_abcdefghijklmnop', decision: 'issued', GSI_IDENTITY: 'support-triage/prod', GSI_AT: AT };

    // Act
    const result = await handle(
      batch(
        streamRecord('INSERT', { new: decision }),
        streamRecord('INSERT', { new: { PK: 'TOOL#tickets', SK: 'TOOL', id: 'tickets', GSI_TYPE: 'TOOL' } }),
        streamRecord('INSERT', { new: { PK: 'KEY#apiKey#9f2c', SK: 'KEY', principalId: 'worker', keyKind: 'apiKey' } }),
        streamRecord('INSERT', { new: { PK: 'REFRESH#ab12', SK: 'REFRESH', hash: 'ab12', instance: 'a/prod#1' } }),
        streamRecord('REMOVE', { old: items.revocation(revocation) }),
        streamRecord('REMOVE', { old: { ...items.block(block), reinstatedAt: AT } }),
        streamRecord('INSERT', { new: { PK: 'QUOTA#support-llm', SK: 'QUOTA', bucket: 'support-llm', windowSeconds: 3600, requests: 100, GSI_TYPE: 'QUOTA' } }),
        streamRecord('MODIFY', {
          old: { PK: 'QUOTA#support-llm', SK: 'W#0001795348800000', bucket: 'support-llm', requests: 1 },
          new: { PK: 'QUOTA#support-llm', SK: 'W#0001795348800000', bucket: 'support-llm', requests: 2 },
        }),
      ),
    );

    // Assess
    expect(result.batchItemFailures).toEqual([]);
    expect(eb.mock.commandCalls(PutEventsCommand)).toHaveLength(0);
  });

  it('reports only the records whose events PutEvents kept failing', async () => {
    // Prepare: the second lane's entry fails on every attempt; the others go through.
    const lanes = ['a/prod:tickets:write:acme', 'b/prod:tickets:write:acme', 'c/prod:tickets:write:acme'];
    const eb = fakeEventBridge((entry) => entry.Detail!.includes(lanes[1]!));
    const handle = createPublishEventsHandler({ publisher: eb.publisher, log: silentLog });
    const records = lanes.map((lane, i) =>
      streamRecord('INSERT', { new: items.revocation({ ...revocation, id: `rev_${i}`, seq: 10 + i, target: { lane }, targetKey: `lane:${lane}` }) }),
    );
    const decision = streamRecord('INSERT', { new: { PK: 'DECISION#x', SK: 'DECISION', id: 'x' } });

    // Act
    const result = await handle(batch(records[0]!, decision, records[1]!, records[2]!));

    // Assess
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: records[1]!.dynamodb!.SequenceNumber }]);
    expect(eb.delivered.map((entry) => (JSON.parse(entry.Detail!) as { revocation: Revocation }).revocation.id)).toEqual(['rev_0', 'rev_2']);
  });

  it('reports a record whose image is not a revocation as failed instead of dropping it', async () => {
    // Prepare
    const eb = fakeEventBridge();
    const handle = createPublishEventsHandler({ publisher: eb.publisher, log: silentLog });
    const broken = streamRecord('INSERT', { new: { PK: 'REVOCATION', SK: '0000000000000009', id: 'rev_9' } });

    // Act
    const result = await handle(batch(broken));

    // Assess
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: broken.dynamodb!.SequenceNumber }]);
    expect(eb.delivered).toHaveLength(0);
  });

  it('never puts a secret in a detail: key hashes, refresh-token hashes, tokens and upstream keys stay out', async () => {
    // Prepare: every secret-bearing item kind, next to the items that do publish.
    const secrets = ['9f2c0a7e1b3d5f79secretkeyhash', 'ab12cd34refreshhash', 'eyJhbGciOiJFUzI1NiJ9.secret.token', 'sk_live_51HxUpstreamKey'];
    const eb = fakeEventBridge();
    const handle = createPublishEventsHandler({ publisher: eb.publisher, log: silentLog });

    // Act
    await handle(
      batch(
        streamRecord('INSERT', { new: { PK: `KEY#apiKey#${secrets[0]}`, SK: 'KEY', principalId: 'worker', keyKind: 'apiKey' } }),
        streamRecord('INSERT', { new: { PK: `REFRESH#${secrets[1]}`, SK: 'REFRESH', hash: secrets[1], replacedBy: secrets[1] } }),
        streamRecord('INSERT', { new: { PK: 'CRED#crd_1234567890abcdef', SK: 'DECISION', token: secrets[2] } }),
        streamRecord('INSERT', { new: items.revocation(revocation) }),
        streamRecord('INSERT', { new: items.grant(grant) }),
        // An attribute the pointer item should never hold does not ride along either.
        streamRecord('INSERT', { new: { ...items.secretRef(secretRef), secret: secrets[3] } }),
      ),
    );

    // Assess
    expect(eb.delivered.map((entry) => entry.DetailType)).toEqual(['Lane Revoked', 'Grant Changed', 'Upstream Secret Rotated']);
    const wire = JSON.stringify(eb.mock.commandCalls(PutEventsCommand).map((call) => call.args[0].input));
    for (const secret of secrets) expect(wire).not.toContain(secret);
    expect(wire).not.toMatch(/"(PK|SK|ttl|GSI_[A-Z]+)"/);
  });

  describe('the same change through both paths', () => {
    let engine: Engine;
    beforeAll(async () => {
      engine = await startDynaliteEngine();
    });
    afterAll(async () => {
      await engine.close();
    });

    it('gives deep-equal events on the stream path and on the embedded default', async () => {
      // Prepare: the embedded default (store wrapped by the local change feed, events on the local bus) …
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(new Date('2026-11-22T14:00:00.000Z'));
      const tableName = await engine.createTable('publish');
      const store = new DynamoStore({ client: engine.client, tableName });
      const bus = new LocalEventBus();
      const embedded: LanyardEvent[] = [];
      bus.subscribe((event) => embedded.push(event));
      const feed = new LocalChangeFeed({ store, bus, clock: { now: () => Date.now() }, log: silentLog, pollMs: 60_000 });
      const wrapped = feed.wrap(store);
      // … and the stream path, fed with the items exactly as they are in the table before and after each write.
      const streamed: LanyardEvent[] = [];
      const handle = createPublishEventsHandler({ publisher: { publish: (events) => Promise.resolve(void streamed.push(...events)) }, log: silentLog });
      const raw = async (PK: string, SK: string) =>
        (await engine.client.send(new GetItemCommand({ TableName: tableName, Key: { PK: { S: PK }, SK: { S: SK } }, ConsistentRead: true }))).Item;
      const write = async (PK: string, SK: string, act: () => Promise<unknown>) => {
        const before = await raw(PK, SK);
        await act();
        const after = await raw(PK, SK);
        const eventName = before === undefined ? 'INSERT' : after === undefined ? 'REMOVE' : 'MODIFY';
        sequence += 1;
        await handle(
          batch({
            eventName,
            dynamodb: {
              Keys: { PK: { S: PK }, SK: { S: SK } },
              ...(after && { NewImage: after as unknown as StreamImage }),
              ...(before && { OldImage: before as unknown as StreamImage }),
              SequenceNumber: String(sequence),
            },
          }),
        );
      };

      // Act
      await write('REVOCATION', '0000000000000001', () => wrapped.appendRevocation({ ...revocation, id: 'rev_same' }));
      await write('BLOCK', block.targetKey, () => wrapped.putBlock(block));
      await write('BLOCK', block.targetKey, () =>
        wrapped.reinstateBlock(block.targetKey, { at: '2026-11-22T13:00:00.000Z', actor: 'bob@example.com', reason: 'fixed', requestId: 'req-3' }),
      );
      await write(`IDENTITY#${grant.identity}`, `GRANT#${grant.id}`, () => wrapped.putGrant(grant));
      await write(`IDENTITY#${grant.identity}`, `GRANT#${grant.id}`, () => wrapped.putGrant({ ...grant, status: 'demoted', updatedAt: '2026-11-22T13:30:00.000Z' }));
      await write(`IDENTITY#${grant.identity}`, `GRANT#${grant.id}`, () => wrapped.deleteGrant(grant.identity, grant.id));
      const firstSecret: UpstreamSecretRef = { provider: 'stripe', version: 'v-1', rotatedAt: AT, actor: 'alice@example.com', reason: 'initial secret', requestId: 'req-6' };
      await write('UPSTREAM#stripe', 'SECRETREF', () => wrapped.putUpstreamSecretRef(firstSecret));
      await write('UPSTREAM#stripe', 'SECRETREF', () => wrapped.putUpstreamSecretRef(secretRef));
      await write('UPSTREAM#stripe', 'SECRETREF', () => wrapped.putUpstreamSecretRef({ ...secretRef, requestId: 'req-7' }));
      feed.close();

      // Assess
      expect(streamed.map((event) => event.detailType)).toEqual([
        'Lane Revoked',
        'Target Reinstated',
        'Grant Changed',
        'Grant Changed',
        'Grant Changed',
        'Upstream Secret Rotated',
        'Upstream Secret Rotated',
      ]);
      expect(streamed).toStrictEqual(embedded);
      expect(streamed.map((event) => event.detail['eventId'])).toEqual(streamed.map((event) => event.id));
    });
  });
});
