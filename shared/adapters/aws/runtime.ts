/**
 * The AWS composition root: DynamoDB store, KMS signer, optional STS sessions, Powertools
 * logging. Built once per Lambda container from environment variables set by the CDK stack.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { STSClient } from '@aws-sdk/client-sts';
import { Logger } from '@aws-lambda-powertools/logger';
import { DecisionLog } from '../../decision-log.ts';
import { PolicyView } from '../../policy-view.ts';
import { RevocationIndex } from '../../revocation-index.ts';
import { systemClock } from '../../ports.ts';
import { WindowQuota } from '../../quota.ts';
import type { IssuerRuntime } from '../../runtime.ts';
import { DynamoStore } from './dynamo-store.ts';
import { KmsSigner } from './kms-signer.ts';
import { StsSessions } from './sts-sessions.ts';

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  // A configuration mistake fails the cold start with a clear message (STYLE habit 6).
  if (!value) throw new Error(`environment variable ${name} is required`);
  return value;
}

export function awsRuntimeFromEnv(env: NodeJS.ProcessEnv = process.env): IssuerRuntime {
  const region = env.AWS_REGION;
  const store = new DynamoStore({ client: new DynamoDBClient({ region }), tableName: required(env, 'LANYARD_TABLE') });
  const signer = new KmsSigner({
    client: new KMSClient({ region }),
    activeKeyId: required(env, 'LANYARD_SIGNING_KEY'),
    publishedKeyIds: (env.LANYARD_PUBLISHED_KEYS ?? '').split(',').filter(Boolean),
  });
  const clock = systemClock;
  const logger = new Logger({ serviceName: 'lanyard' });
  return {
    config: { issuer: required(env, 'LANYARD_ISSUER'), authMode: 'iam' },
    store,
    policy: new PolicyView({ store, clock, ttlMs: Number(env.LANYARD_POLICY_TTL_MS ?? 1000) }),
    revocations: new RevocationIndex({ store, clock }),
    signer,
    decisions: new DecisionLog({ store }),
    quota: new WindowQuota(),
    clock,
    log: {
      info: (message, extra) => logger.info(message, extra ?? {}),
      warn: (message, extra) => logger.warn(message, extra ?? {}),
      error: (message, extra) => logger.error(message, extra ?? {}),
    },
    ...(env.LANYARD_STS === 'on' && { sessions: new StsSessions({ client: new STSClient({ region }) }) }),
  };
}
