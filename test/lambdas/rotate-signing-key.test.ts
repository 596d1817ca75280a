import { DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { KMSClient, ScheduleKeyDeletionCommand } from '@aws-sdk/client-kms';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { BatchWriteCommand, DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { createRotateSigningKeyHandler, rotationFromEnv } from '../../lambdas/rotate-signing-key.ts';
import { DynamoStore } from '../../shared/adapters/dynamodb/dynamo-store.ts';
import { EventBridgePublisher } from '../../shared/adapters/aws/eventbridge-publisher.ts';
import { KmsSigner } from '../../shared/adapters/aws/kms-signer.ts';
import type { PublishedSigningKey, SigningKeyRegistry } from '../../shared/adapters/aws/signing-key-registry.ts';
import { LanyardError } from '../../shared/domain/errors.ts';
import { silentLog } from '../../shared/ports/log.ts';
import { fakeKms as sharedFakeKms } from '../helpers/fake-kms.ts';

const REGION = 'eu-west-1';
const ALIAS = 'alias/lanyard-signing';
const FAMILY_TAG = 'lanyard:signing-key';
const BUS = 'lanyard-bus';
const TABLE = 'lanyard-table';
const T0 = Date.UTC(2026, 10, 1);
const COOL_DOWN_SECONDS = 900;
const POLICY = { stagedMinAgeSeconds: COOL_DOWN_SECONDS, maxTokenTtlSeconds: 3600 };

/**
 * KMS as the rotation function's role sees it. Like the stack's IAM policy, CreateKey is
 * refused unless the request tags the key `lanyard:signing-key=<alias>`. It starts as
 * `cdk deploy` leaves it: one key, tagged with the family tag only, behind the alias, next to
 * a key of another application.
 */
function fakeKms() {
  const kms = sharedFakeKms({ createKeyRequiresTag: { key: FAMILY_TAG, value: ALIAS } });
  const cdkKey = kms.make([{ TagKey: FAMILY_TAG, TagValue: ALIAS }]);
  kms.aliases.set(ALIAS, cdkKey.id);
  kms.make([{ TagKey: 'team', TagValue: 'payments' }]);
  return { ...kms, cdkKey, aliasTargetArn: () => kms.aliasTargetArn(ALIAS) };
}

/** The order in which the run reached DynamoDB and EventBridge. */
type Calls = string[];

/** The Lanyard table as the rotation function's role sees it: it may only put items. */
function fakeDynamo(calls: Calls, options: { failWrites?: boolean } = {}) {
  const client = DynamoDBDocumentClient.from(new DynamoDBClient({ region: REGION }), { marshallOptions: { removeUndefinedValues: true } });
  const mock = mockClient(client);
  const written: Record<string, unknown>[] = [];
  const put = (table: string | undefined, items: Record<string, unknown>[]) => {
    calls.push('dynamodb');
    if (options.failWrites) throw Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException' });
    if (table !== TABLE) throw new Error(`fake DynamoDB: no table ${table}`);
    written.push(...items);
  };
  mock.on(BatchWriteCommand).callsFake((input: { RequestItems?: Record<string, { PutRequest?: { Item?: Record<string, unknown> } }[]> }) => {
    for (const [table, requests] of Object.entries(input.RequestItems ?? {})) put(table, requests.map((r) => r.PutRequest?.Item ?? {}));
    return { UnprocessedItems: {} };
  });
  mock.on(PutCommand).callsFake((input: { TableName?: string; Item?: Record<string, unknown> }) => {
    put(input.TableName, [input.Item ?? {}]);
    return {};
  });
  // The signing-key registry item (SigningKeyRegistry: plain GetItem / PutItem).
  const registryItems: Record<string, unknown>[] = [];
  mock.on(GetItemCommand).resolves({});
  mock.on(PutItemCommand).callsFake((input: { Item?: Record<string, unknown> }) => {
    calls.push('registry');
    registryItems.push(input.Item ?? {});
    return {};
  });
  return { client, mock, written, registryItems, store: new DynamoStore({ client, tableName: TABLE }) };
}

/** The registry as an item in memory; a failing write fails like DynamoDB would. */
function fakeRegistry(calls: Calls, options: { failWrites?: () => boolean } = {}): Pick<SigningKeyRegistry, 'read' | 'write'> & { keys: PublishedSigningKey[] } {
  const registry = {
    keys: [] as PublishedSigningKey[],
    read: () => Promise.resolve([...registry.keys]),
    write: (alias: string, keys: readonly PublishedSigningKey[]) => {
      calls.push('registry');
      if (alias !== ALIAS) throw new Error(`fake registry: unexpected alias ${alias}`);
      if (options.failWrites?.()) return Promise.reject(Object.assign(new Error('Throughput exceeds the current capacity'), { name: 'ProvisionedThroughputExceededException' }));
      registry.keys = [...keys];
      return Promise.resolve();
    },
  };
  return registry;
}

function fakeEventBridge(failAll = false, calls: Calls = []) {
  const client = new EventBridgeClient({ region: REGION });
  const mock = mockClient(client);
  const delivered: PutEventsRequestEntry[] = [];
  mock.on(PutEventsCommand).callsFake((input: { Entries?: PutEventsRequestEntry[] }) => {
    calls.push('eventbridge');
    const entries = input.Entries ?? [];
    if (failAll) return { FailedEntryCount: entries.length, Entries: entries.map(() => ({ ErrorCode: 'InternalFailure' })) };
    delivered.push(...entries);
    return { FailedEntryCount: 0, Entries: entries.map((_, i) => ({ EventId: `eb-${i}` })) };
  });
  return { client, mock, delivered, publisher: new EventBridgePublisher({ client, busName: BUS, maxAttempts: 2, sleep: () => Promise.resolve() }) };
}

function setup(options: { failEvents?: boolean; failWrites?: boolean; failRegistryWrites?: () => boolean; retainCdkKey?: boolean } = {}) {
  let now = T0;
  const calls: Calls = [];
  const kms = fakeKms();
  const eb = fakeEventBridge(options.failEvents, calls);
  const dynamo = fakeDynamo(calls, { failWrites: options.failWrites });
  const registry = fakeRegistry(calls, { ...(options.failRegistryWrites && { failWrites: options.failRegistryWrites }) });
  const rotate = createRotateSigningKeyHandler({
    kms: kms.client,
    publisher: eb.publisher,
    store: dynamo.store,
    registry,
    log: silentLog,
    alias: ALIAS,
    familyTag: FAMILY_TAG,
    // As the stack sets it (LANYARD_RETAINED_KEY_IDS): the key CloudFormation created is never deleted.
    policy: { ...POLICY, retainedKeyIds: options.retainCdkKey === false ? [] : [kms.cdkKey.id] },
    clock: { now: () => now },
  });
  const kidOf = (keyArn: string) => new KmsSigner({ client: kms.client, activeKeyId: keyArn }).activeKid();
  const details = (): Record<string, unknown>[] => eb.delivered.map((entry) => ({ detailType: entry.DetailType, ...(JSON.parse(entry.Detail ?? '{}') as Record<string, unknown>) }));
  /** The JWKS as the AWS runtime builds it: the alias target and the keys of the registry. */
  const jwks = () => new KmsSigner({ client: kms.client, activeKeyId: ALIAS, publishedKeyIds: async () => (await registry.read(ALIAS)).map((key) => key.arn) });
  return { kms, eb, dynamo, registry, calls, rotate, kidOf, details, jwks, advance: (ms: number) => (now += ms) };
}

const COMMAND = { command: 'rotate', alias: ALIAS };

describe('Handler: rotate-signing-key', () => {
  it('stages a successor of the key cdk deploy made, tagged into the family, and publishes Signing Key Rotated', async () => {
    // Prepare
    const { kms, eb, rotate, kidOf, details } = setup();

    // Act
    const result = await rotate(COMMAND, { awsRequestId: 'req-rot-1' });

    // Assess
    const staged = result.transitions[0]!.keyArn;
    expect(result.transitions).toEqual([{ transition: 'staged', keyArn: staged, kid: await kidOf(staged) }]);
    expect(kms.byArn(staged)?.tags.get(FAMILY_TAG)).toBe(ALIAS);
    expect(kms.byArn(staged)?.tags.get('lanyard:state')).toBe('staged');
    expect(kms.aliasTargetArn()).toBe(kms.cdkKey.arn);
    expect(details()).toEqual([
      {
        detailType: 'Signing Key Rotated',
        alias: ALIAS,
        transition: 'staged',
        eventId: `key-staged-${staged.slice(staged.lastIndexOf('/') + 1)}`,
        keyArn: staged,
        kid: await kidOf(staged),
        at: new Date(T0).toISOString(),
        actor: 'rotation-schedule',
        requestId: 'req-rot-1',
      },
    ]);
    expect(eb.delivered[0]).toMatchObject({ Source: 'lanyard', EventBusName: BUS });
  });

  it('activates the staged key only after the cool-down, retiring the previous one, with one event each', async () => {
    // Prepare
    const { kms, rotate, kidOf, details, jwks, advance } = setup();
    const first = await rotate(COMMAND);
    const staged = first.transitions[0]!.keyArn;

    // Act: before the cool-down nothing moves; after it, the alias does.
    advance(COOL_DOWN_SECONDS * 1000 - 1);
    const early = await rotate(COMMAND);
    advance(1);
    const due = await rotate(COMMAND);

    // Assess
    expect(early.transitions).toEqual([]);
    expect(due.transitions).toEqual([
      { transition: 'activated', keyArn: staged, kid: await kidOf(staged) },
      { transition: 'retired', keyArn: kms.cdkKey.arn, kid: await kidOf(kms.cdkKey.arn) },
    ]);
    expect(kms.aliasTargetArn()).toBe(staged);
    // The retired key (the one cdk deploy made, adopted) stays published until its last token has expired.
    expect((await jwks().publicJwks()).map((jwk) => jwk.kid).sort()).toEqual([await kidOf(staged), await kidOf(kms.cdkKey.arn)].sort());
    expect(details().map((d) => d.transition)).toEqual(['staged', 'activated', 'retired']);
  });

  it('withdraws the key cdk deploy made once its last token has expired, and never schedules its deletion', async () => {
    // Prepare
    const { kms, registry, rotate, kidOf, details, jwks, advance } = setup();
    await rotate(COMMAND);
    advance(COOL_DOWN_SECONDS * 1000);
    await rotate(COMMAND);

    // Act
    advance((POLICY.maxTokenTtlSeconds + 60) * 1000);
    const result = await rotate(COMMAND);

    // Assess: kept and usable (CloudFormation owns it), no longer published.
    expect(kms.cdkKey.state).toBe('Enabled');
    expect(kms.mock.commandCalls(ScheduleKeyDeletionCommand)).toHaveLength(0);
    expect(kms.cdkKey.tags.get('lanyard:state')).toBe('withdrawn');
    expect(result.transitions.map((t) => t.transition)).toEqual(['staged', 'withdrawn']);
    expect(result.transitions[1]).toEqual({ transition: 'withdrawn', keyArn: kms.cdkKey.arn, kid: await kidOf(kms.cdkKey.arn) });
    expect(registry.keys.map((key) => key.arn)).not.toContain(kms.cdkKey.arn);
    expect((await jwks().publicJwks()).map((jwk) => jwk.kid)).not.toContain(await kidOf(kms.cdkKey.arn));
    expect(details().at(-1)).toMatchObject({ transition: 'withdrawn', keyArn: kms.cdkKey.arn });
  });

  it('schedules the deletion of a key rotation created once its last token has expired, and names it by ARN only', async () => {
    // Prepare: run 1 stages k2, run 2 activates it, run 3 withdraws the cdk key and stages k3, run 4 activates k3 and retires k2.
    const { kms, rotate, details, advance } = setup();
    const k2 = (await rotate(COMMAND)).transitions[0]!.keyArn;
    advance(COOL_DOWN_SECONDS * 1000);
    await rotate(COMMAND);
    advance((POLICY.maxTokenTtlSeconds + 60) * 1000);
    await rotate(COMMAND);
    advance(COOL_DOWN_SECONDS * 1000);
    await rotate(COMMAND);

    // Act
    advance((POLICY.maxTokenTtlSeconds + 60) * 1000);
    const result = await rotate(COMMAND);

    // Assess
    expect(kms.byArn(k2)?.state).toBe('PendingDeletion');
    expect(kms.cdkKey.state).toBe('Enabled');
    expect(result.transitions.map((t) => t.transition)).toEqual(['staged', 'scheduled_for_deletion']);
    expect(result.transitions[1]).toEqual({ transition: 'scheduled_for_deletion', keyArn: k2 });
    expect(details().at(-1)).toMatchObject({ transition: 'scheduled_for_deletion', keyArn: k2 });
  });

  it('records the published keys in the registry after every run: staged, active and retired, with when each was first published', async () => {
    // Prepare
    const { kms, registry, rotate, advance } = setup();
    const staged = (await rotate(COMMAND)).transitions[0]!.keyArn;
    const stagedRegistry = [...registry.keys];

    // Act
    advance(COOL_DOWN_SECONDS * 1000);
    await rotate(COMMAND);

    // Assess
    expect(stagedRegistry).toEqual([{ arn: staged, publishedAt: new Date(T0).toISOString() }]);
    expect(registry.keys).toEqual([
      { arn: staged, publishedAt: new Date(T0).toISOString() },
      { arn: kms.cdkKey.arn, publishedAt: new Date(T0 + COOL_DOWN_SECONDS * 1000).toISOString() },
    ]);
  });

  it('does not activate a staged key the registry failed to publish until it has been published for the cool-down', async () => {
    // Prepare: the first run creates the staged key, but its registry write fails.
    let failing = true;
    const { kms, registry, rotate, advance } = setup({ failRegistryWrites: () => failing });
    await expect(rotate(COMMAND)).rejects.toMatchObject({ name: 'ProvisionedThroughputExceededException' });
    failing = false;
    const staged = [...kms.keys.values()].find((key) => key.tags.get('lanyard:state') === 'staged')!.arn;

    // Act: after the cool-down the tag says ripe, but no verifier could have seen it.
    advance(COOL_DOWN_SECONDS * 1000);
    const unpublished = await rotate(COMMAND);
    advance(COOL_DOWN_SECONDS * 1000);
    const published = await rotate(COMMAND);

    // Assess
    expect(unpublished.transitions).toEqual([]);
    expect(registry.keys.map((key) => key.arn)).toEqual([staged, kms.cdkKey.arn]);
    expect(published.transitions.map((t) => t.transition)).toEqual(['activated', 'retired']);
    expect(kms.aliasTargetArn()).toBe(staged);
  });

  it('fails the run before any record or event when the registry cannot be written', async () => {
    // Prepare
    const { eb, dynamo, calls, rotate } = setup({ failRegistryWrites: () => true });

    // Act + Assess
    await expect(rotate(COMMAND)).rejects.toMatchObject({ name: 'ProvisionedThroughputExceededException' });
    expect(calls).toEqual(['registry']);
    expect(dynamo.written).toEqual([]);
    expect(eb.delivered).toEqual([]);
  });

  it('never puts key material in an event: no public or private key, only ARNs and kids', async () => {
    // Prepare
    const { kms, eb, rotate, advance } = setup();

    // Act
    await rotate(COMMAND);
    advance(COOL_DOWN_SECONDS * 1000);
    await rotate(COMMAND);

    // Assess
    const wire = JSON.stringify(eb.mock.commandCalls(PutEventsCommand).map((call) => call.args[0].input));
    for (const key of kms.keys.values()) {
      expect(wire).not.toContain(Buffer.from(key.spki).toString('base64'));
      const jwk = key.privateKey.export({ format: 'jwk' });
      expect(wire).not.toContain(jwk.d);
      expect(wire).not.toContain(jwk.x);
    }
    expect(wire).not.toMatch(/"(d|x|y|PublicKey)"/);
  });

  it('writes one key_rotated decision record per key that changed state, before its event', async () => {
    // Prepare
    const { kms, dynamo, calls, rotate, kidOf, advance } = setup();
    const staged = (await rotate(COMMAND, { awsRequestId: 'req-rot-1' })).transitions[0]!.keyArn;
    advance(COOL_DOWN_SECONDS * 1000);

    // Act
    await rotate(COMMAND, { awsRequestId: 'req-rot-2' });

    // Assess
    const keyId = (arn: string) => arn.slice(arn.lastIndexOf('/') + 1);
    const common = { decision: 'key_rotated', actor: 'rotation-schedule', actionsRequested: [], actionsGranted: [], SK: 'DECISION' };
    expect(dynamo.written).toEqual([
      expect.objectContaining({ ...common, id: `key_rotated_req-rot-1_staged_${keyId(staged)}`, requestId: 'req-rot-1', reason: 'staged', kid: await kidOf(staged), at: new Date(T0).toISOString() }),
      expect.objectContaining({ ...common, id: `key_rotated_req-rot-2_activated_${keyId(staged)}`, requestId: 'req-rot-2', reason: 'activated', kid: await kidOf(staged) }),
      expect.objectContaining({ ...common, id: `key_rotated_req-rot-2_retired_${kms.cdkKey.id}`, requestId: 'req-rot-2', reason: 'retired', kid: await kidOf(kms.cdkKey.arn) }),
    ]);
    expect(dynamo.written[2]!['message']).toBe(`signing key ${kms.cdkKey.arn} of ${ALIAS}: retired`);
    // Each run: the registry, its records, then its events.
    expect(calls).toEqual(['registry', 'dynamodb', 'eventbridge', 'registry', 'dynamodb', 'eventbridge']);
  });

  it('records a key scheduled for deletion by ARN, without a kid, and a run that changes nothing writes nothing', async () => {
    // Prepare
    const { kms, dynamo, rotate, advance } = setup({ retainCdkKey: false });
    await rotate(COMMAND, { awsRequestId: 'req-1' });
    advance(COOL_DOWN_SECONDS * 1000);
    await rotate(COMMAND, { awsRequestId: 'req-2' });
    advance((POLICY.maxTokenTtlSeconds + 60) * 1000);
    await rotate(COMMAND, { awsRequestId: 'req-3' });
    const before = dynamo.written.length;

    // Act
    const idle = await rotate(COMMAND, { awsRequestId: 'req-4' });

    // Assess
    const deletion = dynamo.written.find((item) => item['reason'] === 'scheduled_for_deletion');
    expect(deletion).toMatchObject({ id: `key_rotated_req-3_scheduled_for_deletion_${kms.cdkKey.id}`, decision: 'key_rotated', message: `signing key ${kms.cdkKey.arn} of ${ALIAS}: scheduled for deletion` });
    expect(deletion).not.toHaveProperty('kid');
    expect(idle.transitions).toEqual([]);
    expect(dynamo.written).toHaveLength(before);
  });

  it('never puts key material in a decision record: only ARNs and kids', async () => {
    // Prepare
    const { kms, dynamo, rotate, advance } = setup();

    // Act
    await rotate(COMMAND);
    advance(COOL_DOWN_SECONDS * 1000);
    await rotate(COMMAND);

    // Assess
    const wire = JSON.stringify(dynamo.mock.calls().map((call) => call.args[0].input));
    expect(dynamo.written).toHaveLength(3);
    for (const key of kms.keys.values()) {
      expect(wire).not.toContain(Buffer.from(key.spki).toString('base64'));
      const jwk = key.privateKey.export({ format: 'jwk' });
      expect(wire).not.toContain(jwk.d);
      expect(wire).not.toContain(jwk.x);
      expect(wire).not.toContain(jwk.y);
    }
    expect(wire).not.toMatch(/"(d|x|y|PublicKey)"/);
  });

  it('publishes no event when the records cannot be written, and fails the run', async () => {
    // Prepare
    const { eb, calls, rotate } = setup({ failWrites: true });

    // Act + Assess
    await expect(rotate(COMMAND, { awsRequestId: 'req-rot-1' })).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    expect(calls).toEqual(['registry', 'dynamodb']);
    expect(eb.mock.commandCalls(PutEventsCommand)).toHaveLength(0);
    expect(eb.delivered).toEqual([]);
  });

  it('refuses an event for another alias or of another shape, before any KMS call', async () => {
    // Prepare
    const { kms, rotate } = setup();

    // Act + Assess
    await expect(rotate({ command: 'rotate', alias: 'alias/other' })).rejects.toMatchObject({ code: 'invalid_request', message: expect.stringContaining('rotates alias/lanyard-signing, not alias/other') });
    await expect(rotate({ command: 'rotate', alias: ALIAS, extra: 1 })).rejects.toBeInstanceOf(LanyardError);
    expect(kms.mock.calls()).toHaveLength(0);
  });

  it('fails the invocation when the events cannot be published, so the Errors alarm fires', async () => {
    // Prepare
    const { rotate } = setup({ failEvents: true });

    // Act + Assess
    await expect(rotate(COMMAND)).rejects.toMatchObject({ code: 'issuer_unavailable' });
  });

  describe('rotationFromEnv', () => {
    const env = {
      LANYARD_EVENT_BUS: BUS,
      LANYARD_TABLE: TABLE,
      LANYARD_SIGNING_KEY: ALIAS,
      LANYARD_SIGNING_KEY_TAG: FAMILY_TAG,
      LANYARD_MAX_CREDENTIAL_TTL_SECONDS: '43200',
      LANYARD_KEY_COOL_DOWN_SECONDS: '900',
    };

    it('names the missing variable', () => {
      for (const name of Object.keys(env)) {
        const { [name as keyof typeof env]: _dropped, ...rest } = env;
        expect(() => rotationFromEnv(rest, { kms: new KMSClient({ region: REGION }), eventBridge: new EventBridgeClient({ region: REGION }), dynamo: new DynamoDBClient({ region: REGION }) })).toThrow(
          `environment variable ${name} is required`,
        );
      }
    });

    it('runs a step with the clients it is given, tagging created keys with LANYARD_SIGNING_KEY_TAG and recording to LANYARD_TABLE', async () => {
      // Prepare
      const calls: Calls = [];
      const kms = fakeKms();
      const eb = fakeEventBridge(false, calls);
      const dynamo = fakeDynamo(calls);
      const rotate = rotationFromEnv(env, { kms: kms.client, eventBridge: eb.client, dynamo: dynamo.client });

      // Act
      const result = await rotate(COMMAND);

      // Assess
      expect(kms.byArn(result.transitions[0]?.keyArn)?.tags.get(FAMILY_TAG)).toBe(ALIAS);
      expect(eb.delivered).toHaveLength(1);
      // Without a Lambda context the run still has a request id, shared by its record and event.
      const requestId = dynamo.written[0]?.['requestId'];
      expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(dynamo.written).toEqual([expect.objectContaining({ decision: 'key_rotated', reason: 'staged', kid: result.transitions[0]?.kid })]);
      expect(JSON.parse(eb.delivered[0]!.Detail ?? '{}')).toMatchObject({ requestId });
      expect(calls).toEqual(['registry', 'dynamodb', 'eventbridge']);
      expect(dynamo.registryItems).toEqual([expect.objectContaining({ PK: { S: 'SIGNING_KEYS' }, SK: { S: ALIAS } })]);
    });
  });
});
