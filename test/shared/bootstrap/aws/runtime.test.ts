import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { IAMClient } from '@aws-sdk/client-iam';
import { DescribeKeyCommand, GetPublicKeyCommand, KMSClient, ListKeysCommand, ListResourceTagsCommand } from '@aws-sdk/client-kms';
import { CreateSecretCommand, PutSecretValueCommand, ResourceNotFoundException, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { awsServicesFromEnv } from '../../../../shared/bootstrap/aws/runtime.ts';
import { KmsSigner } from '../../../../shared/adapters/aws/kms-signer.ts';
import { SecretsManagerVault } from '../../../../shared/adapters/aws/secrets-manager-vault.ts';
import { StsSessionRevoker } from '../../../../shared/adapters/aws/sts-revocation.ts';
import { StsSessions } from '../../../../shared/adapters/aws/sts-sessions.ts';

const REGION = 'eu-west-1';
const ALIAS = 'alias/lanyard-signing';
const ENV = {
  AWS_REGION: REGION,
  LANYARD_TABLE: 'lanyard-table',
  LANYARD_SIGNING_KEY: ALIAS,
  LANYARD_ISSUER: 'https://abc123.execute-api.eu-west-1.amazonaws.com',
  LANYARD_POLICY_TTL_MS: '1000',
  LANYARD_PUBLISHED_KEYS: '',
  LANYARD_STS: 'off',
};

/** Every client the runtime may build, mocked at the class level: any call to AWS would be recorded here. */
const restores: (() => void)[] = [];
function mockAllClients() {
  const mocks = {
    kms: mockClient(KMSClient),
    dynamodb: mockClient(DynamoDBClient),
    sts: mockClient(STSClient),
    iam: mockClient(IAMClient),
    secrets: mockClient(SecretsManagerClient),
  };
  for (const mock of Object.values(mocks)) restores.push(() => mock.restore());
  return mocks;
}

interface Key {
  readonly id: string;
  readonly arn: string;
  readonly spki: Uint8Array;
  readonly tags: Record<string, string>;
  readonly spec?: string;
}

function key(tags: Record<string, string>, spec = 'ECC_NIST_P256'): Key {
  const id = randomUUID();
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { id, arn: `arn:aws:kms:${REGION}:123456789012:key/${id}`, spki: publicKey.export({ format: 'der', type: 'spki' }), tags, spec };
}

/** KMS as the family listing and the signer read it: ListKeys, tags, DescribeKey, GetPublicKey, one alias. */
function serveKeys(mock: ReturnType<typeof mockAllClients>['kms'], keys: readonly Key[], aliasTarget: Key) {
  const find = (ref?: string) => (ref === ALIAS ? aliasTarget : keys.find((k) => k.id === ref || k.arn === ref));
  mock.on(ListKeysCommand).resolves({ Keys: keys.map((k) => ({ KeyId: k.id, KeyArn: k.arn })), Truncated: false });
  mock.on(ListResourceTagsCommand).callsFake((input: { KeyId?: string }) => ({
    Tags: Object.entries(find(input.KeyId)?.tags ?? {}).map(([TagKey, TagValue]) => ({ TagKey, TagValue })),
    Truncated: false,
  }));
  mock.on(DescribeKeyCommand).callsFake((input: { KeyId?: string }) => ({ KeyMetadata: { KeyId: find(input.KeyId)?.id, Arn: find(input.KeyId)?.arn, KeyState: 'Enabled' } }));
  mock.on(GetPublicKeyCommand).callsFake((input: { KeyId?: string }) => {
    const k = find(input.KeyId);
    return { KeyId: k?.arn, PublicKey: k?.spki, KeySpec: k?.spec, KeyUsage: 'SIGN_VERIFY', SigningAlgorithms: ['ECDSA_SHA_256'] };
  });
}

const kidOf = (mock: KMSClient, arn: string) => new KmsSigner({ client: mock, activeKeyId: arn }).activeKid();

describe('Function: awsServicesFromEnv', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    for (const restore of restores.splice(0)) restore();
  });

  it.each(['LANYARD_TABLE', 'LANYARD_SIGNING_KEY', 'LANYARD_ISSUER'])('fails the cold start naming a missing %s', (name) => {
    // Prepare
    const env = { ...ENV, [name]: undefined };

    // Act + Assess
    expect(() => awsServicesFromEnv(env)).toThrow(`environment variable ${name} is required`);
  });

  it('builds STS sessions when LANYARD_STS is on, and the session revoker only with LANYARD_STS_REVOKE too, without calling AWS', () => {
    // Prepare
    const mocks = mockAllClients();

    // Act
    const admin = awsServicesFromEnv({ ...ENV, LANYARD_STS: 'on', LANYARD_STS_REVOKE: 'on' });
    const issue = awsServicesFromEnv({ ...ENV, LANYARD_STS: 'on' });
    const off = awsServicesFromEnv({ ...ENV, LANYARD_STS_REVOKE: 'on' });

    // Assess
    expect(admin.sessions).toBeInstanceOf(StsSessions);
    expect(admin.stsRevoker).toBeInstanceOf(StsSessionRevoker);
    expect(admin.config).toEqual({ issuer: ENV.LANYARD_ISSUER, authMode: 'iam' });
    expect(issue.sessions).toBeInstanceOf(StsSessions);
    expect(issue.stsRevoker).toBeUndefined();
    expect(off.sessions).toBeUndefined();
    expect(off.stsRevoker).toBeUndefined();
    for (const mock of Object.values(mocks)) expect(mock.calls()).toHaveLength(0);
  });

  /** The registry item as the rotation function writes it. */
  const registryItem = (...keys: Key[]) => ({
    Item: marshall({ PK: 'SIGNING_KEYS', SK: ALIAS, alias: ALIAS, keys: keys.map((k) => ({ arn: k.arn, publishedAt: '2026-11-01T00:00:00.000Z' })), updatedAt: '2026-11-01T00:00:00.000Z' }),
  });

  it('keeps a key retired by rotation in the JWKS after the alias has moved, read from the registry item in one GetItem, listing no KMS key', async () => {
    // Prepare: the alias points at k2; k1 was retired by rotation; a foreign key whose policy denies every read sits beside them.
    const mocks = mockAllClients();
    const k1 = key({ 'lanyard:alias': ALIAS, 'lanyard:state': 'retired', 'lanyard:signing-key': ALIAS });
    const k2 = key({ 'lanyard:alias': ALIAS, 'lanyard:state': 'active', 'lanyard:signing-key': ALIAS });
    const foreign = key({ team: 'payments' });
    serveKeys(mocks.kms, [k1, foreign, k2], k2);
    const denied = Object.assign(new Error(`User is not authorized to perform: kms:ListResourceTags on resource ${foreign.arn}`), { name: 'AccessDeniedException', $metadata: {} });
    mocks.kms.on(ListResourceTagsCommand, { KeyId: foreign.id }).rejects(denied);
    mocks.kms.on(ListKeysCommand).rejects(new Error('the signer must not list the account’s keys'));
    mocks.dynamodb.on(GetItemCommand).resolves(registryItem(k1, k2));
    const runtime = awsServicesFromEnv(ENV);

    // Act
    const kids = (await runtime.signer.publicJwks()).map((jwk) => jwk.kid);
    await runtime.signer.publicJwks();

    // Assess
    const probe = new KMSClient({ region: REGION });
    expect(kids.sort()).toEqual([await kidOf(probe, k1.arn), await kidOf(probe, k2.arn)].sort());
    expect(await runtime.signer.activeKid()).toBe(await kidOf(probe, k2.arn));
    expect(mocks.kms.commandCalls(ListKeysCommand)).toHaveLength(0);
    expect(mocks.kms.commandCalls(ListResourceTagsCommand)).toHaveLength(0);
    // One read of one item (cached), consistent, keyed by the alias.
    const reads = mocks.dynamodb.commandCalls(GetItemCommand);
    expect(reads).toHaveLength(1);
    expect(reads[0]!.args[0].input).toEqual({ TableName: ENV.LANYARD_TABLE, Key: marshall({ PK: 'SIGNING_KEYS', SK: ALIAS }), ConsistentRead: true });
  });

  it('publishes only the alias target before rotation has written the registry', async () => {
    // Prepare
    const mocks = mockAllClients();
    const k1 = key({ 'lanyard:signing-key': ALIAS });
    serveKeys(mocks.kms, [k1], k1);
    mocks.dynamodb.on(GetItemCommand).resolves({});
    const runtime = awsServicesFromEnv(ENV);

    // Act
    const kids = (await runtime.signer.publicJwks()).map((jwk) => jwk.kid);

    // Assess
    expect(kids).toEqual([await kidOf(new KMSClient({ region: REGION }), k1.arn)]);
  });

  it('fails closed when the registry cannot be read', async () => {
    // Prepare
    const mocks = mockAllClients();
    const k1 = key({ 'lanyard:signing-key': ALIAS });
    serveKeys(mocks.kms, [k1], k1);
    mocks.dynamodb.on(GetItemCommand).rejects(Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException', $metadata: {} }));
    const runtime = awsServicesFromEnv(ENV);
    vi.spyOn(runtime.log, 'error').mockImplementation(() => {});

    // Act + Assess
    await expect(runtime.signer.publicJwks()).rejects.toMatchObject({ code: 'issuer_unavailable' });
  });

  it('checks the signing key at first use: a wrong key spec fails closed with the reason logged, and is checked again next time', async () => {
    // Prepare
    const mocks = mockAllClients();
    const rsa = key({}, 'RSA_2048');
    serveKeys(mocks.kms, [], rsa);
    mocks.dynamodb.on(GetItemCommand).resolves({});
    const runtime = awsServicesFromEnv(ENV);
    const logged = vi.spyOn(runtime.log, 'error').mockImplementation(() => {});

    // Act
    const first = runtime.signer.activeKid();
    await expect(first).rejects.toMatchObject({ code: 'issuer_unavailable' });
    await expect(runtime.signer.sign('kid', new Uint8Array(8))).rejects.toMatchObject({ code: 'issuer_unavailable' });

    // Assess
    expect(logged).toHaveBeenCalledTimes(2);
    expect(logged.mock.calls[0]![0]).toMatch(/signing keys of alias\/lanyard-signing failed their check: .*is RSA_2048 .*needs a ECC_NIST_P256 key/);
    expect(mocks.kms.commandCalls(GetPublicKeyCommand).length).toBeGreaterThanOrEqual(2);
  });

  it('writes one kmsThrottled line when KMS throttles a call past the SDK retries, and still fails closed', async () => {
    // Prepare
    const mocks = mockAllClients();
    mocks.dynamodb.on(GetItemCommand).resolves({});
    mocks.kms.on(GetPublicKeyCommand).rejects(Object.assign(new Error('You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.'), { name: 'ThrottlingException', $metadata: {} }));
    const runtime = awsServicesFromEnv(ENV);
    const warned = vi.spyOn(runtime.log, 'warn').mockImplementation(() => {});
    vi.spyOn(runtime.log, 'error').mockImplementation(() => {});

    // Act
    await expect(runtime.signer.activeKid()).rejects.toMatchObject({ code: 'issuer_unavailable' });

    // Assess
    expect(warned.mock.calls.filter(([, extra]) => extra?.['kmsThrottled'] === true)).toEqual([['KMS throttled a call', { kmsThrottled: true, command: 'GetPublicKeyCommand' }]]);
  });

  it('writes no kmsThrottled line for a KMS failure that is not throttling', async () => {
    // Prepare
    const mocks = mockAllClients();
    mocks.dynamodb.on(GetItemCommand).resolves({});
    mocks.kms.on(GetPublicKeyCommand).rejects(Object.assign(new Error('Access denied'), { name: 'AccessDeniedException', $metadata: {} }));
    const runtime = awsServicesFromEnv(ENV);
    const warned = vi.spyOn(runtime.log, 'warn').mockImplementation(() => {});
    vi.spyOn(runtime.log, 'error').mockImplementation(() => {});

    // Act
    await expect(runtime.signer.activeKid()).rejects.toMatchObject({ code: 'issuer_unavailable' });

    // Assess
    expect(warned).not.toHaveBeenCalled();
  });

  describe('upstream secrets', () => {
    /** Secrets Manager with no secret yet: the vault's first put creates one, and the CreateSecret call shows where and how. */
    async function firstCreate(env: NodeJS.ProcessEnv) {
      const mocks = mockAllClients();
      mocks.secrets.on(PutSecretValueCommand).rejects(new ResourceNotFoundException({ message: "Secrets Manager can't find the specified secret.", $metadata: {} }));
      mocks.secrets.on(CreateSecretCommand).callsFake((input: { ClientRequestToken?: string }) => ({ VersionId: input.ClientRequestToken }));
      const runtime = awsServicesFromEnv(env);
      await runtime.vault!.putSecret('stripe', 'sk_live_runtimeTest');
      return { runtime, create: mocks.secrets.commandCalls(CreateSecretCommand)[0]!.args[0].input };
    }

    it('keeps them in Secrets Manager under lanyard/upstream/<provider> by default, encrypted with the AWS managed key', async () => {
      const { runtime, create } = await firstCreate(ENV);

      expect(runtime.vault).toBeInstanceOf(SecretsManagerVault);
      expect(create.Name).toBe('lanyard/upstream/stripe');
      expect(create.KmsKeyId).toBeUndefined();
    });

    it('takes the name prefix from LANYARD_SECRET_PREFIX and the KMS key from LANYARD_SECRETS_KMS_KEY', async () => {
      const { create } = await firstCreate({ ...ENV, LANYARD_SECRET_PREFIX: 'prod/lanyard/', LANYARD_SECRETS_KMS_KEY: 'alias/lanyard-secrets' });

      expect(create).toMatchObject({ Name: 'prod/lanyard/stripe', KmsKeyId: 'alias/lanyard-secrets' });
    });

    it('fails the cold start on a prefix no secret name can hold', () => {
      mockAllClients();

      expect(() => awsServicesFromEnv({ ...ENV, LANYARD_SECRET_PREFIX: 'prod lanyard/' })).toThrow(/holds characters a Secrets Manager name cannot/);
    });
  });
});
