/**
 * A stateful KMS for the calls signing and rotation make: keys with real P-256 key pairs and
 * tags, aliases, ListKeys paged two keys at a time, deletion scheduling (a key pending
 * deletion can be neither tagged nor used, as in KMS), GetPublicKey returning DER SPKI and
 * Sign returning a real DER ECDSA signature.
 */
import { generateKeyPairSync, randomUUID, sign as cryptoSign, type KeyObject } from 'node:crypto';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  GetPublicKeyCommand,
  KMSClient,
  KMSInvalidStateException,
  ListKeysCommand,
  ListResourceTagsCommand,
  NotFoundException,
  ScheduleKeyDeletionCommand,
  SignCommand,
  TagResourceCommand,
  UpdateAliasCommand,
  type Tag,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';

export const FAKE_KMS_ACCOUNT = '123456789012';
export const FAKE_KMS_REGION = 'eu-west-1';
const DAY_MS = 24 * 3600 * 1000;

export interface FakeKey {
  readonly id: string;
  readonly arn: string;
  readonly privateKey: KeyObject;
  readonly spki: Uint8Array;
  readonly tags: Map<string, string>;
  state: 'Enabled' | 'PendingDeletion';
  deletionDate?: Date;
}

export interface FakeKmsOptions {
  readonly clock?: { now(): number };
  /** Like an IAM policy with a tag condition: CreateKey is refused unless the request carries this tag. */
  readonly createKeyRequiresTag?: { readonly key: string; readonly value: string };
}

export function fakeKms(options: FakeKmsOptions = {}) {
  const clock = options.clock ?? { now: () => Date.now() };
  const client = new KMSClient({ region: FAKE_KMS_REGION });
  const mock = mockClient(client);
  const keys = new Map<string, FakeKey>();
  const aliases = new Map<string, string>();
  const notFound = (ref?: string) => new NotFoundException({ message: `Key '${ref}' does not exist`, $metadata: {} });
  const resolve = (ref: string | undefined): FakeKey => {
    const name = ref?.replace(/^arn:aws:kms:[^:]+:\d+:/, '') ?? '';
    const id = name.startsWith('alias/') ? aliases.get(name) : name.replace(/^key\//, '');
    const key = id === undefined ? undefined : keys.get(id);
    if (!key) throw notFound(ref);
    return key;
  };
  const usable = (ref: string | undefined): FakeKey => {
    const key = resolve(ref);
    if (key.state !== 'Enabled') throw new KMSInvalidStateException({ message: `${key.arn} is pending deletion.`, $metadata: {} });
    return key;
  };
  /** A key as if created outside the test's code path (e.g. by `cdk deploy`, or another application). */
  const make = (tags: Tag[] = []): FakeKey => {
    const id = randomUUID();
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const key: FakeKey = {
      id,
      arn: `arn:aws:kms:${FAKE_KMS_REGION}:${FAKE_KMS_ACCOUNT}:key/${id}`,
      privateKey,
      spki: publicKey.export({ format: 'der', type: 'spki' }),
      tags: new Map(tags.map((tag) => [tag.TagKey ?? '', tag.TagValue ?? ''])),
      state: 'Enabled',
    };
    keys.set(id, key);
    return key;
  };

  mock.on(CreateKeyCommand).callsFake((input: { KeySpec?: string; KeyUsage?: string; Tags?: Tag[] }) => {
    const required = options.createKeyRequiresTag;
    if (required && input.Tags?.find((tag) => tag.TagKey === required.key)?.TagValue !== required.value) {
      throw Object.assign(new Error('User is not authorized to perform: kms:CreateKey'), { name: 'AccessDeniedException' });
    }
    if (input.KeySpec !== 'ECC_NIST_P256' || input.KeyUsage !== 'SIGN_VERIFY') throw new Error('fake KMS only makes P-256 signing keys');
    const key = make(input.Tags ?? []);
    return { KeyMetadata: { KeyId: key.id, Arn: key.arn, KeyState: 'Enabled', KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' } };
  });
  mock.on(ListKeysCommand).callsFake((input: { Marker?: string }) => {
    const all = [...keys.values()];
    const start = input.Marker ? Number(input.Marker) : 0;
    const truncated = start + 2 < all.length;
    return { Keys: all.slice(start, start + 2).map((key) => ({ KeyId: key.id, KeyArn: key.arn })), Truncated: truncated, ...(truncated && { NextMarker: String(start + 2) }) };
  });
  mock.on(ListResourceTagsCommand).callsFake((input: { KeyId?: string }) => ({
    Tags: [...resolve(input.KeyId).tags].map(([TagKey, TagValue]) => ({ TagKey, TagValue })),
    Truncated: false,
  }));
  mock.on(TagResourceCommand).callsFake((input: { KeyId?: string; Tags?: Tag[] }) => {
    const key = usable(input.KeyId);
    for (const tag of input.Tags ?? []) key.tags.set(tag.TagKey ?? '', tag.TagValue ?? '');
    return {};
  });
  mock.on(DescribeKeyCommand).callsFake((input: { KeyId?: string }) => {
    const key = resolve(input.KeyId);
    return { KeyMetadata: { KeyId: key.id, Arn: key.arn, KeyState: key.state, KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' } };
  });
  mock.on(CreateAliasCommand).callsFake((input: { AliasName?: string; TargetKeyId?: string }) => {
    if (aliases.has(input.AliasName ?? '')) throw Object.assign(new Error('alias exists'), { name: 'AlreadyExistsException' });
    aliases.set(input.AliasName ?? '', usable(input.TargetKeyId).id);
    return {};
  });
  mock.on(UpdateAliasCommand).callsFake((input: { AliasName?: string; TargetKeyId?: string }) => {
    if (!aliases.has(input.AliasName ?? '')) throw notFound(input.AliasName);
    aliases.set(input.AliasName ?? '', usable(input.TargetKeyId).id);
    return {};
  });
  mock.on(ScheduleKeyDeletionCommand).callsFake((input: { KeyId?: string; PendingWindowInDays?: number }) => {
    const key = usable(input.KeyId);
    if ([...aliases.values()].includes(key.id)) throw new Error('fake KMS: refusing to delete the key an alias points at');
    key.state = 'PendingDeletion';
    key.deletionDate = new Date(clock.now() + (input.PendingWindowInDays ?? 30) * DAY_MS);
    return { KeyId: key.arn, KeyState: 'PendingDeletion', DeletionDate: key.deletionDate, PendingWindowInDays: input.PendingWindowInDays };
  });
  mock.on(GetPublicKeyCommand).callsFake((input: { KeyId?: string }) => {
    const key = usable(input.KeyId);
    return { KeyId: key.arn, PublicKey: key.spki, KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY', SigningAlgorithms: ['ECDSA_SHA_256'] };
  });
  mock.on(SignCommand).callsFake((input: { KeyId?: string; Message?: Uint8Array }) => {
    const key = usable(input.KeyId);
    return { KeyId: key.arn, Signature: cryptoSign('sha256', input.Message ?? new Uint8Array(), { key: key.privateKey, dsaEncoding: 'der' }) };
  });

  const aliasTargetArn = (alias: string) => keys.get(aliases.get(alias) ?? '')?.arn;
  const byArn = (arn: string | undefined) => [...keys.values()].find((key) => key.arn === arn);
  const stateOf = (arn: string | undefined) => byArn(arn)?.tags.get('lanyard:state');
  return { client, mock, keys, aliases, make, aliasTargetArn, byArn, stateOf };
}
