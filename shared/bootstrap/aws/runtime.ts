/**
 * The AWS composition root of the admin function and the broker: the core services
 * (`core-services.ts`: DynamoDB store, KMS signer, optional STS sessions, Powertools logging)
 * plus upstream secrets in Secrets Manager (named `LANYARD_SECRET_PREFIX` + provider, default
 * `lanyard/upstream/`, created under `LANYARD_SECRETS_KMS_KEY` when set) and STS session
 * revocation (`LANYARD_STS=on` and `LANYARD_STS_REVOKE=on`). Built once per Lambda container
 * from environment variables set by the CDK stack; a missing variable fails the cold start
 * with its name.
 */
import type { IssuerServices } from '../../ports/services.ts';
import { DEFAULT_SECRET_PREFIX, SecretsManagerVault } from '../../adapters/aws/secrets-manager-vault.ts';
import { StsSessionRevoker } from '../../adapters/aws/sts-revocation.ts';
import { dynamoClient, iamClient, lambdaLog, secretsManagerClient } from './clients.ts';
import { coreServices, required } from './core-services.ts';

export { KMS_THROTTLED_LOG_FIELD, withThrottleSignal } from './clients.ts';
export { awsCoreServicesFromEnv, checkedOnFirstUse } from './core-services.ts';

export function awsServicesFromEnv(env: NodeJS.ProcessEnv = process.env): IssuerServices {
  const tableName = required(env, 'LANYARD_TABLE');
  const log = lambdaLog();
  const dynamo = dynamoClient(env);
  const core = coreServices({ env, log, dynamo, tableName });
  const vault = new SecretsManagerVault({
    client: secretsManagerClient(env),
    prefix: env.LANYARD_SECRET_PREFIX ?? DEFAULT_SECRET_PREFIX,
    ...(env.LANYARD_SECRETS_KMS_KEY && { kmsKeyId: env.LANYARD_SECRETS_KMS_KEY }),
  });
  return {
    ...core,
    vault,
    // Only the function allowed to write tool-role policies gets it (the admin function), so a
    // revocation elsewhere (a reused refresh token, in the issue function) never fails on IAM.
    ...(core.sessions !== undefined && env.LANYARD_STS_REVOKE === 'on' && { stsRevoker: new StsSessionRevoker({ iam: iamClient(env), dynamo, tableName }) }),
  };
}
