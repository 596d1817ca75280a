import { randomUUID } from 'node:crypto';
import {
  CreateKeyCommand,
  DescribeKeyCommand,
  KMSInvalidStateException,
  ListKeysCommand,
  ListResourceTagsCommand,
  ScheduleKeyDeletionCommand,
  SignCommand,
  UpdateAliasCommand,
} from '@aws-sdk/client-kms';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  planRotation,
  publishedSigningKeyArns,
  rotateSigningKey,
  type SigningKeyRecord,
} from '../../../../shared/adapters/aws/key-rotation.ts';
import { KmsSigner } from '../../../../shared/adapters/aws/kms-signer.ts';
import { signAccessToken } from '../../../../shared/issuance/jws.ts';
import { fakeKms as sharedFakeKms } from '../../../helpers/fake-kms.ts';

const ALIAS = 'alias/lanyard-signing';
const T0 = Date.UTC(2026, 10, 1, 0, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const POLICY = { stagedMinAgeSeconds: 3600, maxTokenTtlSeconds: 900, aliasCacheTtlSeconds: 60 } as const;

/** The stateful fake KMS, with this file's alias as the one the helpers look at. */
function fakeKms(clock: { now: () => number }) {
  const kms = sharedFakeKms({ clock });
  return { ...kms, aliasTargetArn: () => kms.aliasTargetArn(ALIAS) };
}

function fakeClock(start = T0) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

async function token(signer: KmsSigner, now: number) {
  const iat = Math.floor(now / 1000);
  return (await signAccessToken(signer, { iss: 'https://lanyard.test', aud: 'tickets', sub: 'a/prod', iat, exp: iat + 900, jti: randomUUID() })).token;
}

async function verifies(jwt: string, signer: KmsSigner, now: number): Promise<boolean> {
  try {
    await jwtVerify(jwt, createLocalJWKSet({ keys: await signer.publicJwks() }), { currentDate: new Date(now) });
    return true;
  } catch {
    return false;
  }
}

describe('Function: rotateSigningKey', () => {
  it('runs the whole lifecycle: first key, staged, active, retired, deleted, with signer and JWKS following', async () => {
    // Prepare
    const clock = fakeClock();
    const kms = fakeKms(clock);
    const rotate = () => rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY });
    const signer = () =>
      new KmsSigner({
        client: kms.client,
        activeKeyId: ALIAS,
        publishedKeyIds: () => publishedSigningKeyArns({ kms: kms.client, alias: ALIAS }),
        clock,
      });

    // Act + Assess: first deployment creates an active key and the alias.
    const first = await rotate();
    const k1 = first.activated;
    expect(first).toEqual({ activated: k1, publishedKeyArns: [k1] });
    expect(kms.aliasTargetArn()).toBe(k1);
    expect(kms.stateOf(k1)).toBe('active');

    // A successor is staged and published before it signs anything.
    clock.advance(MINUTE);
    const second = await rotate();
    const k2 = second.staged;
    expect(second).toEqual({ staged: k2, publishedKeyArns: [k1, k2] });
    expect(kms.stateOf(k2)).toBe('staged');
    const beforeSwitch = signer();
    expect(await beforeSwitch.publicJwks()).toHaveLength(2);
    const kid1 = await beforeSwitch.activeKid();

    // Not yet: the staged key has been published for less than stagedMinAgeSeconds.
    clock.advance(HOUR - 1);
    expect(await rotate()).toEqual({ publishedKeyArns: [k1, k2] });
    // The last token k1 signs, a moment before the switch.
    const signedByK1 = await token(beforeSwitch, clock.now());
    expect(kms.mock.commandCalls(SignCommand).map((call) => call.args[0].input.KeyId)).toEqual([k1]);

    // Now the alias moves and the old key is retired, still published.
    clock.advance(1);
    const third = await rotate();
    expect(third).toEqual({ activated: k2, retired: k1, publishedKeyArns: [k1, k2] });
    expect(kms.aliasTargetArn()).toBe(k2);
    expect([kms.stateOf(k1), kms.stateOf(k2)]).toEqual(['retired', 'active']);
    const afterSwitch = signer();
    const signedByK2 = await token(afterSwitch, clock.now());
    expect(kms.mock.commandCalls(SignCommand).at(-1)?.args[0].input.KeyId).toBe(k2);
    expect(await verifies(signedByK1, afterSwitch, clock.now())).toBe(true);
    expect(await verifies(signedByK2, afterSwitch, clock.now())).toBe(true);

    // The next successor is staged on the following run; k1 is kept until its tokens are gone.
    clock.advance(MINUTE);
    const fourth = await rotate();
    const k3 = fourth.staged;
    expect(fourth).toEqual({ staged: k3, publishedKeyArns: [k1, k2, k3] });

    // retiredAt + aliasCacheTtl (60 s) + maxTokenTtl (900 s): k1 is scheduled for deletion.
    clock.advance(16 * MINUTE - MINUTE - 1);
    expect((await rotate()).scheduledForDeletion).toBeUndefined();
    clock.advance(1);
    const fifth = await rotate();
    expect(fifth).toEqual({ scheduledForDeletion: [k1], publishedKeyArns: [k2, k3] });
    const deletion = kms.mock.commandCalls(ScheduleKeyDeletionCommand)[0]?.args[0].input;
    expect(deletion).toEqual({ KeyId: k1?.split('/')[1], PendingWindowInDays: 7 });
    const later = signer();
    expect((await later.publicJwks()).map((jwk) => jwk.kid)).not.toContain(kid1);
    expect(await verifies(signedByK1, later, clock.now())).toBe(false);
    expect(await verifies(await token(later, clock.now()), later, clock.now())).toBe(true);

    // The same rotation goes on: k3 becomes active an hour after it was staged.
    clock.advance(HOUR);
    expect(await rotate()).toEqual({ activated: k3, retired: k2, publishedKeyArns: [k2, k3] });
  });

  it('tags what it creates: ECC_NIST_P256 SIGN_VERIFY with state, alias and stagedAt', async () => {
    // Prepare
    const clock = fakeClock();
    const kms = fakeKms(clock);
    await rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY });
    clock.advance(MINUTE);

    // Act
    await rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY });

    // Assess
    const input = kms.mock.commandCalls(CreateKeyCommand)[1]?.args[0].input;
    expect(input?.KeySpec).toBe('ECC_NIST_P256');
    expect(input?.KeyUsage).toBe('SIGN_VERIFY');
    expect(input?.Tags).toEqual([
      { TagKey: 'lanyard:alias', TagValue: ALIAS },
      { TagKey: 'lanyard:state', TagValue: 'staged' },
      { TagKey: 'lanyard:stagedAt', TagValue: '2026-11-01T00:01:00.000Z' },
    ]);
  });

  it('waits for activeMaxAgeSeconds before staging a successor', async () => {
    // Prepare
    const clock = fakeClock();
    const kms = fakeKms(clock);
    const rotate = () => rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY, activeMaxAgeSeconds: 30 * 24 * 3600 });
    await rotate();

    // Act
    clock.advance(29 * 24 * HOUR);
    const early = await rotate();
    clock.advance(24 * HOUR);
    const due = await rotate();

    // Assess
    expect(early.staged).toBeUndefined();
    expect(due.staged).toBeDefined();
  });

  it('repairs tags when a previous run moved the alias and stopped before tagging', async () => {
    // Prepare
    const clock = fakeClock();
    const kms = fakeKms(clock);
    const rotate = () => rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY });
    const k1 = (await rotate()).activated;
    clock.advance(MINUTE);
    const k2 = (await rotate()).staged;
    kms.aliases.set(ALIAS, k2?.split('/')[1] ?? '');

    // Act
    clock.advance(MINUTE);
    const result = await rotate();

    // Assess
    expect(result).toMatchObject({ activated: k2, retired: k1 });
    expect([kms.stateOf(k1), kms.stateOf(k2)]).toEqual(['retired', 'active']);
    expect(kms.mock.commandCalls(UpdateAliasCommand)).toHaveLength(0);
  });

  it('uses keyRecords when the caller gives them instead of listing keys', async () => {
    // Prepare
    const clock = fakeClock();
    const kms = fakeKms(clock);
    const k1 = (await rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY })).activated ?? '';
    kms.mock.resetHistory();
    const keyRecords: SigningKeyRecord[] = [{ keyId: k1.split('/')[1] ?? '', keyArn: k1, state: 'active', activatedAt: new Date(T0).toISOString() }];

    // Act
    const result = await rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY, keyRecords });

    // Assess
    expect(result.staged).toBeDefined();
    expect(kms.mock.commandCalls(ListKeysCommand)).toHaveLength(0);
  });

  it('finds its keys beside a foreign key whose policy denies reading its tags', async () => {
    // Prepare
    const clock = fakeClock();
    const kms = fakeKms(clock);
    const k1 = (await rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY })).activated;
    const foreign = kms.make([{ TagKey: 'team', TagValue: 'payments' }]);
    const denied = Object.assign(new Error(`User is not authorized to perform: kms:ListResourceTags on resource ${foreign.arn}`), { name: 'AccessDeniedException', $metadata: {} });
    kms.mock.on(ListResourceTagsCommand, { KeyId: foreign.id }).rejects(denied);
    clock.advance(MINUTE);

    // Act
    const result = await rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY });

    // Assess
    expect(result.publishedKeyArns).toEqual([k1, result.staged]);
    expect(await publishedSigningKeyArns({ kms: kms.client, alias: ALIAS })).toEqual([k1, result.staged]);
  });

  it('still fails closed when reading the tags fails for another reason than a denying key policy', async () => {
    // Prepare
    const kms = fakeKms(fakeClock());
    kms.make([{ TagKey: 'team', TagValue: 'payments' }]);
    kms.mock.on(ListResourceTagsCommand).rejects(new KMSInvalidStateException({ message: 'boom', $metadata: {} }));

    // Act + Assess
    await expect(publishedSigningKeyArns({ kms: kms.client, alias: ALIAS })).rejects.toThrow('boom');
  });

  it('adopts a key created outside rotation when it retires it: its ARN joins the published keys', async () => {
    // Prepare: the key cdk deploy made, tagged with nothing rotation reads, behind the alias.
    const clock = fakeClock();
    const kms = fakeKms(clock);
    const cdkKey = kms.make([{ TagKey: 'lanyard:signing-key', TagValue: ALIAS }]);
    kms.aliases.set(ALIAS, cdkKey.id);
    const staged = (await rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY })).staged;

    // Act
    clock.advance(HOUR);
    const result = await rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY });

    // Assess
    expect(result).toEqual({ activated: staged, retired: cdkKey.arn, publishedKeyArns: [staged, cdkKey.arn] });
  });

  it('withdraws a retained key past its last token instead of scheduling its deletion', async () => {
    // Prepare
    const clock = fakeClock();
    const kms = fakeKms(clock);
    const cdkKey = kms.make([{ TagKey: 'lanyard:signing-key', TagValue: ALIAS }]);
    kms.aliases.set(ALIAS, cdkKey.id);
    const rotate = () => rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY, retainedKeyIds: [cdkKey.id] });
    const staged = (await rotate()).staged;
    clock.advance(HOUR);
    await rotate();

    // Act
    clock.advance(16 * MINUTE);
    const result = await rotate();

    // Assess
    expect(result).toMatchObject({ withdrawn: [cdkKey.arn], publishedKeyArns: [staged, result.staged] });
    expect(result.scheduledForDeletion).toBeUndefined();
    expect(kms.mock.commandCalls(ScheduleKeyDeletionCommand)).toHaveLength(0);
    expect([cdkKey.state, kms.stateOf(cdkKey.arn)]).toEqual(['Enabled', 'withdrawn']);
    expect(await publishedSigningKeyArns({ kms: kms.client, alias: ALIAS })).not.toContain(cdkKey.arn);
    // Withdrawn once: the next run leaves it alone.
    clock.advance(MINUTE);
    expect((await rotate()).withdrawn).toBeUndefined();
  });

  it('activates a staged key only once it has been published for the cool-down, when publication is recorded', async () => {
    // Prepare: a staged key whose tag is old, but which the registry has only just published.
    const clock = fakeClock();
    const kms = fakeKms(clock);
    await rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY });
    clock.advance(MINUTE);
    const staged = (await rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY })).staged ?? '';
    clock.advance(2 * HOUR);
    const rotate = (publishedSince: ReadonlyMap<string, number>) => rotateSigningKey({ kms: kms.client, alias: ALIAS, now: clock.now(), ...POLICY, publishedSince });

    // Act + Assess: unpublished, or published less than stagedMinAgeSeconds ago: not yet.
    expect((await rotate(new Map())).activated).toBeUndefined();
    expect((await rotate(new Map([[staged, clock.now() - HOUR + 1]]))).activated).toBeUndefined();
    expect((await rotate(new Map([[staged, clock.now() - HOUR]]))).activated).toBe(staged);
  });

  it('refuses an AWS-managed alias and a negative duration at once', async () => {
    // Prepare
    const kms = fakeKms(fakeClock());

    // Act + Assess
    await expect(rotateSigningKey({ kms: kms.client, alias: 'alias/aws/lambda', now: T0, ...POLICY })).rejects.toThrow(/not a customer alias/);
    await expect(rotateSigningKey({ kms: kms.client, alias: ALIAS, now: T0, ...POLICY, maxTokenTtlSeconds: -1 })).rejects.toThrow(
      /maxTokenTtlSeconds must be a number of seconds/,
    );
    expect(kms.mock.calls()).toHaveLength(0);
  });

  it('fails closed with issuer_unavailable when KMS fails', async () => {
    // Prepare
    const kms = fakeKms(fakeClock());
    kms.mock.on(DescribeKeyCommand).rejects(new KMSInvalidStateException({ message: 'boom', $metadata: {} }));

    // Act + Assess
    await expect(rotateSigningKey({ kms: kms.client, alias: ALIAS, now: T0, ...POLICY })).rejects.toMatchObject({ code: 'issuer_unavailable' });
  });
});

describe('Function: planRotation', () => {
  const record = (keyId: string, state: SigningKeyRecord['state'], at: number): SigningKeyRecord => ({
    keyId,
    keyArn: `arn:${keyId}`,
    state,
    stagedAt: new Date(at).toISOString(),
    ...(state === 'active' && { activatedAt: new Date(at).toISOString() }),
    ...(state === 'retired' && { retiredAt: new Date(at).toISOString() }),
  });

  it('creates an active key when there is no alias', () => {
    // Act + Assess
    expect(planRotation({ records: [], now: T0, ...POLICY })).toEqual([{ kind: 'create', state: 'active' }]);
  });

  it('moves the alias to the oldest ripe staged key, then retires the previous one', () => {
    // Prepare
    const records = [record('k1', 'active', T0), record('k2', 'staged', T0 + MINUTE), record('k3', 'staged', T0 + 2 * MINUTE)];

    // Act
    const steps = planRotation({ records, aliasTargetKeyId: 'k1', now: T0 + 2 * HOUR, ...POLICY });

    // Assess
    expect(steps).toEqual([
      { kind: 'move_alias', keyId: 'k2' },
      { kind: 'tag', keyId: 'k2', state: 'active' },
      { kind: 'tag', keyId: 'k1', state: 'retired' },
    ]);
  });

  it('withdraws, never deletes, a retained key whose last token has expired', () => {
    // Prepare
    const records = [record('k1', 'retired', T0), record('k2', 'retired', T0), record('k3', 'active', T0)];

    // Act
    const steps = planRotation({ records, aliasTargetKeyId: 'k3', now: T0 + 48 * HOUR, ...POLICY, retainedKeyIds: ['k1'] });

    // Assess
    expect(steps.slice(0, 2)).toEqual([
      { kind: 'withdraw', keyId: 'k1' },
      { kind: 'schedule_deletion', keyId: 'k2' },
    ]);
  });

  it('never schedules the alias target for deletion, even when tagged retired', () => {
    // Prepare
    const records = [record('k1', 'retired', T0)];

    // Act
    const steps = planRotation({ records, aliasTargetKeyId: 'k1', now: T0 + 48 * HOUR, ...POLICY });

    // Assess
    expect(steps).toEqual([{ kind: 'tag', keyId: 'k1', state: 'active' }, { kind: 'create', state: 'staged' }]);
  });
});
