/**
 * The AWS composition root of the functions that neither read upstream secrets nor write tool
 * roles (issue, spawn, JWKS, metadata, revocations, introspection): DynamoDB store, KMS signer,
 * optional STS sessions (`LANYARD_STS=on`), Powertools logging. `runtime.ts` adds the vault and
 * the STS session revoker for the admin function and the broker. Kept apart so the bundles of
 * these functions carry neither Secrets Manager nor IAM (docs/deploy.md, "Bundles").
 *
 * Built once per Lambda container from environment variables set by the CDK stack; a missing
 * variable fails the cold start with its name.
 *
 * The signer publishes every key of the signing-key family (staged, active, retired), read
 * from the signing-key registry item the rotation function writes (one GetItem, at most once
 * a minute), so a retired key stays in the JWKS after rotation moves the alias, and no other
 * key of the account is ever listed; `LANYARD_PUBLISHED_KEYS` adds keys staged or retired by
 * hand. Its keys are checked (`warmUp`) before their first use in the container (the active
 * key before signing, all of them before the JWKS): a key of the wrong spec fails that
 * request closed with the reason in an ERROR log line, and the check runs again on the next
 * request.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { KMSClient } from '@aws-sdk/client-kms';
import { DecisionLog } from '../../audit/decision-log.ts';
import { failClosed } from '../../domain/errors.ts';
import { describeError, type Log } from '../../ports/log.ts';
import { PolicyView } from '../../policy/policy-view.ts';
import { RevocationIndex } from '../../revocation/revocation-index.ts';
import { systemClock, type Clock, type Signer } from '../../ports/index.ts';
import { BrokerIssuanceQuota } from '../../issuance/quota.ts';
import type { IssuerServices } from '../../ports/services.ts';
import { DynamoStore } from '../../adapters/dynamodb/dynamo-store.ts';
import { KmsSigner } from '../../adapters/aws/kms-signer.ts';
import { SigningKeyRegistry } from '../../adapters/aws/signing-key-registry.ts';
import { StsSessions } from '../../adapters/aws/sts-sessions.ts';
import { dynamoClient, kmsClient, lambdaLog, stsClient } from './clients.ts';

/** What the core services are built from, besides the environment: the clients and log of the container. */
export interface CoreServicesParts {
  readonly env: NodeJS.ProcessEnv;
  readonly log: Log;
  readonly dynamo: DynamoDBClient;
  readonly tableName: string;
  /** @default `kmsClient(env, log)` */
  readonly kms?: KMSClient;
  /** @default systemClock */
  readonly clock?: Clock;
}

export function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  // A configuration mistake fails the cold start with a clear message, not on a request.
  if (!value) throw new Error(`environment variable ${name} is required`);
  return value;
}

export function awsCoreServicesFromEnv(env: NodeJS.ProcessEnv = process.env): IssuerServices {
  return coreServices({ env, log: lambdaLog(), dynamo: dynamoClient(env), tableName: required(env, 'LANYARD_TABLE') });
}

/** The core services on the given clients (`awsServicesFromEnv` builds on the same parts). */
export function coreServices({ env, log, dynamo, tableName, kms, clock = systemClock }: CoreServicesParts): IssuerServices {
  const alias = required(env, 'LANYARD_SIGNING_KEY');
  const issuer = required(env, 'LANYARD_ISSUER');
  const sts = env.LANYARD_STS === 'on';

  const store = new DynamoStore({ client: dynamo, tableName });
  const registry = new SigningKeyRegistry({ client: dynamo, tableName });
  const byHand = (env.LANYARD_PUBLISHED_KEYS ?? '').split(',').map((id) => id.trim()).filter(Boolean);
  const signer = new KmsSigner({
    client: kms ?? kmsClient(env, log),
    activeKeyId: alias,
    clock,
    // The family as the rotation function last recorded it, so keys retired by rotation stay published.
    publishedKeyIds: async () => [...byHand, ...(await registry.read(alias)).map((key) => key.arn)],
  });
  const policy = new PolicyView({ store, clock, ttlMs: Number(env.LANYARD_POLICY_TTL_MS ?? 1000) });
  return {
    config: { issuer, authMode: 'iam' },
    store,
    policy,
    revocations: new RevocationIndex({ store, clock }),
    signer: checkedOnFirstUse(signer, alias, log),
    decisions: new DecisionLog({ store }),
    quota: new BrokerIssuanceQuota({ policy, store }),
    clock,
    log,
    ...(sts && { sessions: new StsSessions({ client: stsClient(env) }) }),
  };
}

/**
 * The signer, with its keys checked (`warmUp`) before their first use in the container: the
 * active key before the first `activeKid` or `sign` (a cold issuance reads only the alias's
 * public key: no registry read, no GetPublicKey of the staged and retired keys), every
 * published key before the first `publicJwks`. A failed check is not remembered: it is logged
 * with its reason (a wrong key spec, a missing key or permission), the request fails closed,
 * and the next request checks again.
 */
export function checkedOnFirstUse(signer: KmsSigner, alias: string, log: Log): Signer {
  const checks: Partial<Record<'active' | 'all', Promise<void>>> = {};
  const ready = (keys: 'active' | 'all'): Promise<void> => {
    checks[keys] ??= signer.warmUp(keys).catch((error: unknown) => {
      delete checks[keys];
      log.error(`signing keys of ${alias} failed their check: ${error instanceof Error ? error.message : String(error)}`, { error: describeError(error) });
      throw failClosed(error);
    });
    return checks[keys];
  };
  return {
    activeKid: async () => {
      await ready('active');
      return signer.activeKid();
    },
    sign: async (kid, signingInput) => {
      await ready('active');
      return signer.sign(kid, signingInput);
    },
    publicJwks: async () => {
      await ready('all');
      return signer.publicJwks();
    },
  };
}
