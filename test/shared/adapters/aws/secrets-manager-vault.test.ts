import { CreateSecretCommand, GetSecretValueCommand, PutSecretValueCommand, SecretsManagerServiceException } from '@aws-sdk/client-secrets-manager';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SECRET_PREFIX, SecretsManagerVault } from '../../../../shared/adapters/aws/secrets-manager-vault.ts';
import { SecretVaultError } from '../../../../shared/ports/secret-vault.ts';
import { fakeSecretsManager } from '../../../helpers/fake-secrets-manager.ts';
import { rejection } from '../../../helpers/errors.ts';

const SECRET = 'sk_live_51HxQsecretsManagerVaultTest0a1b2c';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const fakes: ReturnType<typeof fakeSecretsManager>[] = [];
function setup(options: { prefix?: string; kmsKeyId?: string } = {}) {
  const fake = fakeSecretsManager();
  fakes.push(fake);
  return { fake, vault: new SecretsManagerVault({ client: fake.client, ...options }) };
}

const vaultError = (promise: Promise<unknown>) => rejection(promise, SecretVaultError);

describe('Class: SecretsManagerVault', () => {
  afterEach(() => {
    for (const fake of fakes.splice(0)) fake.mock.restore();
  });

  describe('Method: putSecret', () => {
    it("creates the provider's secret on first use, named with the prefix, tagged with the provider, the version id our request token", async () => {
      // Prepare
      const { fake, vault } = setup();

      // Act
      const { version } = await vault.putSecret('stripe', SECRET);

      // Assess
      expect(version).toMatch(UUID);
      const put = fake.mock.commandCalls(PutSecretValueCommand);
      const create = fake.mock.commandCalls(CreateSecretCommand);
      expect(put).toHaveLength(1);
      expect(create).toHaveLength(1);
      expect(create[0]!.args[0].input).toEqual({
        Name: `${DEFAULT_SECRET_PREFIX}stripe`,
        SecretString: SECRET,
        ClientRequestToken: version,
        Description: 'Lanyard broker: the API key of upstream stripe',
        Tags: [{ Key: 'lanyard:provider', Value: 'stripe' }],
      });
      expect(put[0]!.args[0].input.ClientRequestToken).toBe(version);
      expect(fake.stagesOf('lanyard/upstream/stripe')).toEqual({ [version]: ['AWSCURRENT'] });
    });

    it('creates the secret under the configured KMS key and prefix', async () => {
      const { fake, vault } = setup({ prefix: 'team-a/lanyard/', kmsKeyId: 'alias/lanyard-secrets' });

      await vault.putSecret('openai', SECRET);

      expect(fake.mock.commandCalls(CreateSecretCommand)[0]!.args[0].input).toMatchObject({ Name: 'team-a/lanyard/openai', KmsKeyId: 'alias/lanyard-secrets' });
      expect(fake.secrets.get('team-a/lanyard/openai')?.kmsKeyId).toBe('alias/lanyard-secrets');
    });

    it('adds a version to an existing secret: AWSCURRENT moves to it, AWSPREVIOUS to the one before, and both stay readable', async () => {
      // Prepare
      const { fake, vault } = setup();
      const first = await vault.putSecret('stripe', 'sk_first');

      // Act
      const second = await vault.putSecret('stripe', 'sk_second');
      const third = await vault.putSecret('stripe', 'sk_third');

      // Assess
      expect(new Set([first.version, second.version, third.version]).size).toBe(3);
      expect(fake.mock.commandCalls(CreateSecretCommand)).toHaveLength(1);
      expect(fake.stagesOf('lanyard/upstream/stripe')).toEqual({ [first.version]: [], [second.version]: ['AWSPREVIOUS'], [third.version]: ['AWSCURRENT'] });
      expect(await vault.getSecret('stripe', first.version)).toBe('sk_first');
      expect(await vault.getSecret('stripe', second.version)).toBe('sk_second');
      expect(await vault.getSecret('stripe', third.version)).toBe('sk_third');
    });

    it('adds its version to a secret another caller created in between (ResourceExistsException), with the same request token', async () => {
      // Prepare
      const { fake, vault } = setup();
      fake.beforeNextCreate(() => fake.create({ Name: 'lanyard/upstream/stripe', SecretString: 'sk_theirs', ClientRequestToken: 'their-token-0000000000000000000000' }));

      // Act
      const { version } = await vault.putSecret('stripe', SECRET);

      // Assess
      const puts = fake.mock.commandCalls(PutSecretValueCommand).map((c) => c.args[0].input.ClientRequestToken);
      expect(puts).toEqual([version, version]);
      expect(fake.mock.commandCalls(CreateSecretCommand)[0]!.args[0].input.ClientRequestToken).toBe(version);
      expect(fake.stagesOf('lanyard/upstream/stripe')).toEqual({ 'their-token-0000000000000000000000': ['AWSPREVIOUS'], [version]: ['AWSCURRENT'] });
      expect(await vault.getSecret('stripe', version)).toBe(SECRET);
    });

    it('is idempotent on its request token: the same put replayed adds no version', async () => {
      // Prepare: replay the exact request the vault sent, as the SDK's retry would.
      const { fake, vault } = setup();
      await vault.putSecret('stripe', 'sk_first');
      const { version } = await vault.putSecret('stripe', SECRET);
      const sent = fake.mock.commandCalls(PutSecretValueCommand).at(-1)!.args[0].input;

      // Act
      const replay = await fake.client.send(new PutSecretValueCommand(sent));

      // Assess
      expect(replay.VersionId).toBe(version);
      expect(Object.keys(fake.stagesOf('lanyard/upstream/stripe'))).toHaveLength(2);
      expect(fake.stagesOf('lanyard/upstream/stripe')[version]).toEqual(['AWSCURRENT']);
    });

    it('passes any other failure on, unswallowed', async () => {
      const { fake, vault } = setup();
      const denied = new SecretsManagerServiceException({ name: 'AccessDeniedException', $fault: 'client', message: 'not authorized to perform secretsmanager:PutSecretValue', $metadata: {} });
      fake.mock.on(PutSecretValueCommand).rejects(denied);

      await expect(vault.putSecret('stripe', SECRET)).rejects.toBe(denied);
      expect(fake.mock.commandCalls(CreateSecretCommand)).toHaveLength(0);
    });

    it('refuses a provider that is not a tool id before calling AWS', async () => {
      const { fake, vault } = setup();

      await expect(vault.putSecret('Stripe/../other', SECRET)).rejects.toThrow(/not a provider id/);
      expect(fake.mock.calls()).toHaveLength(0);
    });
  });

  describe('Method: getSecret', () => {
    it('reads exactly the version asked for, not AWSCURRENT', async () => {
      const { fake, vault } = setup();
      const old = await vault.putSecret('stripe', 'sk_old');
      await vault.putSecret('stripe', 'sk_new');

      const value = await vault.getSecret('stripe', old.version);

      expect(value).toBe('sk_old');
      expect(fake.mock.commandCalls(GetSecretValueCommand)[0]!.args[0].input).toEqual({ SecretId: 'lanyard/upstream/stripe', VersionId: old.version });
    });

    it('answers an unknown version, and an unknown provider, with version_unknown naming both', async () => {
      // Prepare
      const { vault } = setup();
      await vault.putSecret('stripe', SECRET);

      // Act
      const [version, provider] = await Promise.all([
        vaultError(vault.getSecret('stripe', '00000000-0000-4000-8000-000000000000')),
        vaultError(vault.getSecret('openai', '00000000-0000-4000-8000-000000000000')),
      ]);

      // Assess
      expect(version).toMatchObject({ code: 'version_unknown', provider: 'stripe', version: '00000000-0000-4000-8000-000000000000' });
      expect(version.message).not.toContain(SECRET);
      expect(provider).toMatchObject({ code: 'version_unknown', provider: 'openai' });
    });

    it('treats a version without a SecretString as unreadable', async () => {
      const { fake, vault } = setup();
      await vault.putSecret('stripe', SECRET);
      const binary = fake.putBinary('lanyard/upstream/stripe');

      const error = await vaultError(vault.getSecret('stripe', binary));

      expect(error).toMatchObject({ code: 'unreadable', provider: 'stripe', version: binary });
    });

    it('caches nothing: every read asks Secrets Manager', async () => {
      const { fake, vault } = setup();
      const { version } = await vault.putSecret('stripe', SECRET);

      await vault.getSecret('stripe', version);
      await vault.getSecret('stripe', version);

      expect(fake.mock.commandCalls(GetSecretValueCommand)).toHaveLength(2);
    });
  });

  describe('constructor', () => {
    it('refuses a prefix a secret name cannot hold', () => {
      const { fake } = setup();

      expect(() => new SecretsManagerVault({ client: fake.client, prefix: 'lanyard upstream/' })).toThrow(/holds characters a Secrets Manager name cannot/);
    });
  });
});
