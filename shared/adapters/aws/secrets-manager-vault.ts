/**
 * Upstream secrets on AWS (issue 6): one Secrets Manager secret per provider, named
 * `<prefix><provider>`, each rotation a new version of it. Secrets Manager encrypts under KMS
 * (`aws/secretsmanager`, or the key given) and keeps the versions; this adapter keeps nothing.
 *
 * - `putSecret` is `PutSecretValue` with our own `ClientRequestToken` (a UUID), which becomes
 *   the version id and makes a retried call idempotent. Secrets Manager moves `AWSCURRENT` to
 *   the new version and `AWSPREVIOUS` to the one before; Lanyard does not read those labels
 *   (its pointer in the table names the version), but they keep the console truthful.
 * - The first secret of a provider is created on demand (`CreateSecret`, tagged with the
 *   provider). If another caller created it in between (`ResourceExistsException`), the put
 *   is simply tried again.
 * - `getSecret` reads one version by id. Nothing is cached here: the broker caches by version,
 *   and versions never change.
 *
 * @example
 * ```ts
 * const vault = new SecretsManagerVault({ client: new SecretsManagerClient({}), prefix: 'lanyard/upstream/' });
 * const { version } = await vault.putSecret('stripe', secret);
 * ```
 */
import { randomUUID } from 'node:crypto';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { TOOL_ID } from '../../domain/model.ts';
import type { SecretVault } from '../../ports/index.ts';
import { SecretVaultError } from '../../ports/secret-vault.ts';

export const DEFAULT_SECRET_PREFIX = 'lanyard/upstream/';

export interface SecretsManagerVaultOptions {
  readonly client: SecretsManagerClient;
  /** Prepended to the provider id to name its secret. @default 'lanyard/upstream/' */
  readonly prefix?: string;
  /** KMS key (id, ARN or alias) for secrets this adapter creates. @default - aws/secretsmanager */
  readonly kmsKeyId?: string;
}

export class SecretsManagerVault implements SecretVault {
  readonly #client: SecretsManagerClient;
  readonly #prefix: string;
  readonly #kmsKeyId: string | undefined;

  constructor(options: SecretsManagerVaultOptions) {
    const prefix = options.prefix ?? DEFAULT_SECRET_PREFIX;
    // Secret names take ASCII letters, digits and /_+=.@- only: a bad prefix fails at start-up, not on the first rotation.
    if (!/^[A-Za-z0-9/_+=.@-]{0,256}$/.test(prefix)) throw new Error(`secret prefix ${JSON.stringify(prefix)} holds characters a Secrets Manager name cannot`);
    this.#client = options.client;
    this.#prefix = prefix;
    this.#kmsKeyId = options.kmsKeyId;
  }

  /** The secret's name for `provider`. */
  secretName(provider: string): string {
    if (!TOOL_ID.test(provider)) throw new Error(`not a provider id: ${JSON.stringify(provider.slice(0, 64))}`);
    return `${this.#prefix}${provider}`;
  }

  async putSecret(provider: string, secret: string): Promise<{ readonly version: string }> {
    const name = this.secretName(provider);
    const token = randomUUID();
    try {
      return { version: await this.#put(name, secret, token) };
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw error;
    }
    try {
      const created = await this.#client.send(
        new CreateSecretCommand({
          Name: name,
          SecretString: secret,
          ClientRequestToken: token,
          Description: `Lanyard broker: the API key of upstream ${provider}`,
          Tags: [{ Key: 'lanyard:provider', Value: provider }],
          ...(this.#kmsKeyId !== undefined && { KmsKeyId: this.#kmsKeyId }),
        }),
      );
      return { version: versionOf(created.VersionId, name) };
    } catch (error) {
      // Created by someone else since our put: add our version to theirs.
      if (error instanceof ResourceExistsException) return { version: await this.#put(name, secret, token) };
      throw error;
    }
  }

  async getSecret(provider: string, version: string): Promise<string> {
    const name = this.secretName(provider);
    let value: string | undefined;
    try {
      value = (await this.#client.send(new GetSecretValueCommand({ SecretId: name, VersionId: version }))).SecretString;
    } catch (error) {
      if (error instanceof ResourceNotFoundException) throw new SecretVaultError('version_unknown', provider, version, { cause: error });
      throw error;
    }
    // A binary secret, or an answer without the value: nothing the broker can present.
    if (value === undefined) throw new SecretVaultError('unreadable', provider, version);
    return value;
  }

  async #put(name: string, secret: string, token: string): Promise<string> {
    const output = await this.#client.send(new PutSecretValueCommand({ SecretId: name, SecretString: secret, ClientRequestToken: token }));
    return versionOf(output.VersionId, name);
  }
}

function versionOf(versionId: string | undefined, name: string): string {
  if (!versionId) throw new Error(`Secrets Manager answered without a VersionId for ${name}`);
  return versionId;
}
