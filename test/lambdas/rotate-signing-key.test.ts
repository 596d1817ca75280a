import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { BatchWriteCommand, DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { createRotateSigningKeyHandler, rotationFromEnv } from '../../lambdas/rotate-signing-key.ts';
import { DynamoStore } from '../../shared/adapters/aws/dynamo-store.ts';
import { EventBridgePublisher } from '../../shared/adapters/aws/eventbridge-publisher.ts';
import { publishedSigningKeyArns } from '../../shared/adapters/aws/key-rotation.ts';
import { KmsSigner } from '../../shared/adapters/aws/kms-signer.ts';
import { LanyardError } from '../../shared/errors.ts';
import { silentLog } from '../../shared/log.ts';
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
  return { client, mock, written, store: new DynamoStore({ client, tableName: TABLE }) };
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

function setup(options: { failEvents?: boolean; failWrites?: boolean } = {}) {
  let now = T0;
  const calls: Calls = [];
  const kms = fakeKms();
  const eb = fakeEventBridge(options.failEvents, calls);
  const dynamo = fakeDynamo(calls, { failWrites: options.failWrites });
  const rotate = createRotateSigningKeyHandler({
    kms: kms.client,
    publisher: eb.publisher,
    store: dynamo.store,
    log: silentLog,
    alias: ALIAS,
    familyTag: FAMILY_TAG,
    policy: POLICY,
    clock: { now: () => now },
  });
  const kidOf = (keyArn: string) => new KmsSigner({ client: kms.client, activeKeyId: keyArn }).activeKid();
  const details = (): Record<string, unknown>[] => eb.delivered.map((entry) => ({ detailType: entry.DetailType, ...(JSON.parse(entry.Detail ?? '{}') as Record<string, unknown>) }));
  return { kms, eb, dynamo, calls, rotate, kidOf, details, advance: (ms: number) => (now += ms) };
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
    const { kms, rotate, kidOf, details, advance } = setup();
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
    // The retired key stays published (JWKS) until its last token has expired.
    const jwks = new KmsSigner({ client: kms.client, activeKeyId: ALIAS, publishedKeyIds: () => publishedSigningKeyArns({ kms: kms.client, alias: ALIAS }) });
    expect((await jwks.publicJwks()).map((jwk) => jwk.kid).sort()).toEqual([await kidOf(staged), await kidOf(kms.cdkKey.arn)].sort());
    expect(details().map((d) => d.transition)).toEqual(['staged', 'activated', 'retired']);
  });

  it('schedules the retired key for deletion once its last token has expired, and names it by ARN only', async () => {
    // Prepare
    const { kms, rotate, details, advance } = setup();
    await rotate(COMMAND);
    advance(COOL_DOWN_SECONDS * 1000);
    await rotate(COMMAND);

    // Act
    advance((POLICY.maxTokenTtlSeconds + 60) * 1000);
    const result = await rotate(COMMAND);

    // Assess
    expect(kms.cdkKey.state).toBe('PendingDeletion');
    expect(result.transitions.map((t) => t.transition)).toEqual(['staged', 'scheduled_for_deletion']);
    expect(result.transitions[1]).toEqual({ transition: 'scheduled_for_deletion', keyArn: kms.cdkKey.arn });
    expect(details().at(-1)).toMatchObject({ transition: 'scheduled_for_deletion', keyArn: kms.cdkKey.arn });
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
    // Each run: its records first, then its events.
    expect(calls).toEqual(['dynamodb', 'eventbridge', 'dynamodb', 'eventbridge']);
  });

  it('records a key scheduled for deletion by ARN, without a kid, and a run that changes nothing writes nothing', async () => {
    // Prepare
    const { kms, dynamo, rotate, advance } = setup();
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
    expect(calls).toEqual(['dynamodb']);
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
      expect(calls).toEqual(['dynamodb', 'eventbridge']);
    });
  });
});
