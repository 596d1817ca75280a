/**
 * A stateful Secrets Manager for the calls the vault makes, behaving as the service documents
 * them: versions kept per secret; `PutSecretValue` moves `AWSCURRENT` to the new version and
 * `AWSPREVIOUS` to the one it left; a repeated `ClientRequestToken` with the same value does
 * nothing, with another value is refused; unknown names and versions answer
 * `ResourceNotFoundException`; a second `CreateSecret` of a name answers `ResourceExistsException`.
 */
import { randomUUID } from 'node:crypto';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  SecretsManagerClient,
  type Tag,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';

export const FAKE_SM_REGION = 'eu-west-1';
const ACCOUNT = '123456789012';

export interface FakeSecretVersion {
  readonly value: string | undefined;
  readonly stages: Set<string>;
  readonly createdAt: Date;
}

export interface FakeSecret {
  readonly name: string;
  readonly arn: string;
  readonly description?: string;
  readonly kmsKeyId?: string;
  readonly tags: readonly Tag[];
  readonly versions: Map<string, FakeSecretVersion>;
}

export function fakeSecretsManager(client: SecretsManagerClient = new SecretsManagerClient({ region: FAKE_SM_REGION })) {
  const mock = mockClient(client);
  const secrets = new Map<string, FakeSecret>();
  let beforeNextCreate: (() => void) | undefined;

  const notFound = (message: string) => new ResourceNotFoundException({ message, $metadata: {} });
  const find = (id: string | undefined): FakeSecret => {
    const secret = secrets.get(id ?? '') ?? [...secrets.values()].find((s) => s.arn === id);
    if (!secret) throw notFound("Secrets Manager can't find the specified secret.");
    return secret;
  };
  const stageOf = (secret: FakeSecret, stage: string) => [...secret.versions.entries()].find(([, v]) => v.stages.has(stage));

  /** Adds a version, or (same token, same value) does nothing; AWSCURRENT moves to it and AWSPREVIOUS to the one it left. */
  const addVersion = (secret: FakeSecret, token: string, value: string | undefined): { versionId: string; stages: string[] } => {
    const existing = secret.versions.get(token);
    if (existing) {
      if (existing.value !== value) {
        throw new ResourceExistsException({ message: "You can't modify an existing version, you can only create a new version.", $metadata: {} });
      }
      return { versionId: token, stages: [...existing.stages] };
    }
    const current = stageOf(secret, 'AWSCURRENT');
    if (current) {
      stageOf(secret, 'AWSPREVIOUS')?.[1].stages.delete('AWSPREVIOUS');
      current[1].stages.delete('AWSCURRENT');
      current[1].stages.add('AWSPREVIOUS');
    }
    secret.versions.set(token, { value, stages: new Set(['AWSCURRENT']), createdAt: new Date() });
    return { versionId: token, stages: ['AWSCURRENT'] };
  };

  const create = (input: { Name?: string; SecretString?: string; ClientRequestToken?: string; Description?: string; KmsKeyId?: string; Tags?: Tag[] }) => {
    const name = input.Name ?? '';
    if (secrets.has(name)) throw new ResourceExistsException({ message: `The operation failed because the secret ${name} already exists.`, $metadata: {} });
    const secret: FakeSecret = {
      name,
      arn: `arn:aws:secretsmanager:${FAKE_SM_REGION}:${ACCOUNT}:secret:${name}-${randomUUID().slice(0, 6)}`,
      ...(input.Description !== undefined && { description: input.Description }),
      ...(input.KmsKeyId !== undefined && { kmsKeyId: input.KmsKeyId }),
      tags: input.Tags ?? [],
      versions: new Map(),
    };
    secrets.set(name, secret);
    const { versionId } = addVersion(secret, input.ClientRequestToken ?? randomUUID(), input.SecretString);
    return { ARN: secret.arn, Name: name, VersionId: versionId };
  };

  mock.on(CreateSecretCommand).callsFake((input: Parameters<typeof create>[0]) => {
    const hook = beforeNextCreate;
    beforeNextCreate = undefined;
    hook?.();
    return create(input);
  });
  mock.on(PutSecretValueCommand).callsFake((input: { SecretId?: string; SecretString?: string; ClientRequestToken?: string }) => {
    const secret = find(input.SecretId);
    const { versionId, stages } = addVersion(secret, input.ClientRequestToken ?? randomUUID(), input.SecretString);
    return { ARN: secret.arn, Name: secret.name, VersionId: versionId, VersionStages: stages };
  });
  mock.on(GetSecretValueCommand).callsFake((input: { SecretId?: string; VersionId?: string; VersionStage?: string }) => {
    const secret = find(input.SecretId);
    const entry = input.VersionId !== undefined ? ([input.VersionId, secret.versions.get(input.VersionId)] as const) : stageOf(secret, input.VersionStage ?? 'AWSCURRENT');
    if (!entry?.[1]) throw notFound("Secrets Manager can't find the specified secret value for VersionId");
    const [versionId, version] = entry;
    return {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: versionId,
      ...(version.value !== undefined && { SecretString: version.value }),
      VersionStages: [...version.stages],
      CreatedDate: version.createdAt,
    };
  });

  return {
    client,
    mock,
    secrets,
    /** Creates a secret as another caller would (the console, another issuer instance). */
    create,
    /** Adds a version holding no SecretString (as a SecretBinary secret reads). */
    putBinary(name: string): string {
      const token = randomUUID();
      addVersion(find(name), token, undefined);
      return token;
    },
    /** Runs `hook` just before the next CreateSecret is served (a concurrent creator). */
    beforeNextCreate(hook: () => void): void {
      beforeNextCreate = hook;
    },
    stagesOf(name: string): Record<string, string[]> {
      return Object.fromEntries([...find(name).versions.entries()].map(([id, v]) => [id, [...v.stages].sort()]));
    },
  };
}
