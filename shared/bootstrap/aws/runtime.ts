/**
 * The AWS composition root: DynamoDB store, KMS signer, upstream secrets in Secrets Manager
 * (named `LANYARD_SECRET_PREFIX` + provider, default `lanyard/upstream/`, created under
 * `LANYARD_SECRETS_KMS_KEY` when set), optional STS sessions (`LANYARD_STS=on`) and STS session
 * revocation (`LANYARD_STS_REVOKE=on` too),
 * Powertools logging. Built once per Lambda container from environment variables
 * set by the CDK stack; a missing variable fails the cold start with its name.
 *
 * The signer publishes every key of the signing-key family (staged, active, retired), read
 * from the signing-key registry item the rotation function writes (one GetItem, at most once
 * a minute), so a retired key stays in the JWKS after rotation moves the alias, and no other
 * key of the account is ever listed; `LANYARD_PUBLISHED_KEYS` adds keys staged or retired by
 * hand. Its keys are checked (`warmUp`) before its first use in the container: a key
 * of the wrong spec fails that request closed with the reason in an ERROR log line, and the
 * check runs again on the next request.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IAMClient } from '@aws-sdk/client-iam';
import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import { Logger } from '@aws-lambda-powertools/logger';
import { DecisionLog } from '../../audit/decision-log.ts';
import { failClosed } from '../../domain/errors.ts';
import { describeError, type Log } from '../../ports/log.ts';
import { PolicyView } from '../../policy/policy-view.ts';
import { RevocationIndex } from '../../revocation/revocation-index.ts';
import { systemClock, type Signer } from '../../ports/index.ts';
import { BrokerIssuanceQuota } from '../../issuance/quota.ts';
import type { IssuerServices } from '../../ports/services.ts';
import { DynamoStore } from '../../adapters/dynamodb/dynamo-store.ts';
import { KmsSigner } from '../../adapters/aws/kms-signer.ts';
import { DEFAULT_SECRET_PREFIX, SecretsManagerVault } from '../../adapters/aws/secrets-manager-vault.ts';
import { SigningKeyRegistry } from '../../adapters/aws/signing-key-registry.ts';
import { StsSessionRevoker } from '../../adapters/aws/sts-revocation.ts';
import { StsSessions } from '../../adapters/aws/sts-sessions.ts';

/**
 * Set (`true`) on the WARN line written when KMS throttles a call past the SDK's own retries;
 * the stack's `KmsThrottles` metric filter counts these lines (KMS publishes no throttle metric).
 */
export const KMS_THROTTLED_LOG_FIELD = 'kmsThrottled';

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  // A configuration mistake fails the cold start with a clear message, not on a request.
  if (!value) throw new Error(`environment variable ${name} is required`);
  return value;
}

export function awsServicesFromEnv(env: NodeJS.ProcessEnv = process.env): IssuerServices {
  const region = env.AWS_REGION;
  const tableName = required(env, 'LANYARD_TABLE');
  const alias = required(env, 'LANYARD_SIGNING_KEY');
  const issuer = required(env, 'LANYARD_ISSUER');
  const sts = env.LANYARD_STS === 'on';

  const logger = new Logger({ serviceName: 'lanyard' });
  const log: Log = {
    info: (message, extra) => logger.info(message, extra ?? {}),
    warn: (message, extra) => logger.warn(message, extra ?? {}),
    error: (message, extra) => logger.error(message, extra ?? {}),
  };
  const dynamo = new DynamoDBClient({ region });
  const store = new DynamoStore({ client: dynamo, tableName });
  const registry = new SigningKeyRegistry({ client: dynamo, tableName });
  const kms = withThrottleSignal(new KMSClient({ region }), log);
  const byHand = (env.LANYARD_PUBLISHED_KEYS ?? '').split(',').map((id) => id.trim()).filter(Boolean);
  const signer = new KmsSigner({
    client: kms,
    activeKeyId: alias,
    // The family as the rotation function last recorded it, so keys retired by rotation stay published.
    publishedKeyIds: async () => [...byHand, ...(await registry.read(alias)).map((key) => key.arn)],
  });
  const vault = new SecretsManagerVault({
    client: new SecretsManagerClient({ region }),
    prefix: env.LANYARD_SECRET_PREFIX ?? DEFAULT_SECRET_PREFIX,
    ...(env.LANYARD_SECRETS_KMS_KEY && { kmsKeyId: env.LANYARD_SECRETS_KMS_KEY }),
  });
  const clock = systemClock;
  const policy = new PolicyView({ store, clock, ttlMs: Number(env.LANYARD_POLICY_TTL_MS ?? 1000) });
  return {
    config: { issuer, authMode: 'iam' },
    store,
    policy,
    revocations: new RevocationIndex({ store, clock }),
    signer: checkedOnFirstUse(signer, alias, log),
    vault,
    decisions: new DecisionLog({ store }),
    quota: new BrokerIssuanceQuota({ policy, store }),
    clock,
    log,
    ...(sts && { sessions: new StsSessions({ client: new STSClient({ region }) }) }),
    // Only the function allowed to write tool-role policies gets it (the admin function), so a
    // revocation elsewhere (a reused refresh token, in the issue function) never fails on IAM.
    ...(sts && env.LANYARD_STS_REVOKE === 'on' && { stsRevoker: new StsSessionRevoker({ iam: new IAMClient({ region }), dynamo, tableName }) }),
  };
}

/**
 * The client with one WARN line (`kmsThrottled: true`, the command name) per call that KMS
 * throttled (`ThrottlingException`, "You have exceeded the rate at which you may call KMS",
 * AWS KMS Developer Guide, "Throttling AWS KMS requests") after the SDK's retries. The error
 * still goes to the caller, which fails closed. A Proxy keeps `send` the one seam, as in
 * lambdas/rotate-signing-key.ts.
 */
export function withThrottleSignal(kms: KMSClient, log: Log): KMSClient {
  const send = async (command: { constructor: { name: string } }, ...rest: unknown[]): Promise<unknown> => {
    try {
      return await (kms.send as (...args: unknown[]) => Promise<unknown>).call(kms, command, ...rest);
    } catch (error) {
      if ((error as { name?: unknown } | undefined)?.name === 'ThrottlingException') {
        log.warn('KMS throttled a call', { [KMS_THROTTLED_LOG_FIELD]: true, command: command.constructor.name });
      }
      throw error;
    }
  };
  return new Proxy(kms, {
    get(target, property, receiver) {
      return property === 'send' ? send : (Reflect.get(target, property, receiver) as unknown);
    },
  });
}

/**
 * The signer, with `warmUp()` awaited before its first use in the container. A failed check is
 * not remembered: it is logged with its reason (a wrong key spec, a missing key or permission),
 * the request fails closed, and the next request checks again.
 */
export function checkedOnFirstUse(signer: KmsSigner, alias: string, log: Log): Signer {
  let checked: Promise<void> | undefined;
  const ready = (): Promise<void> => {
    checked ??= signer.warmUp().catch((error: unknown) => {
      checked = undefined;
      log.error(`signing keys of ${alias} failed their check: ${error instanceof Error ? error.message : String(error)}`, { error: describeError(error) });
      throw failClosed(error);
    });
    return checked;
  };
  return {
    activeKid: async () => {
      await ready();
      return signer.activeKid();
    },
    sign: async (kid, signingInput) => {
      await ready();
      return signer.sign(kid, signingInput);
    },
    publicJwks: async () => {
      await ready();
      return signer.publicJwks();
    },
  };
}
