/**
 * The AWS clients and the log of a Lambda container, made in one place so every function
 * (the handlers on `awsServicesFromEnv`, the stream publisher, the rotation function) builds
 * them the same way: the region from `AWS_REGION`, KMS calls that mark throttling, Powertools
 * logging. One small function per client: a bundle keeps only the clients its function calls.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { IAMClient } from '@aws-sdk/client-iam';
import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import { Logger } from '@aws-lambda-powertools/logger';
import type { Log } from '../../ports/log.ts';

/**
 * Set (`true`) on the WARN line written when KMS throttles a call past the SDK's own retries;
 * the stack's `KmsThrottles` metric filter counts these lines (KMS publishes no throttle metric).
 */
export const KMS_THROTTLED_LOG_FIELD = 'kmsThrottled';

/** The region every client of the container uses: the one Lambda runs in. */
export interface AwsClientEnv {
  readonly AWS_REGION?: string | undefined;
}

/** Powertools logging behind the `Log` port: one JSON line per call, service `lanyard`. */
export function lambdaLog(): Log {
  const logger = new Logger({ serviceName: 'lanyard' });
  return {
    info: (message, extra) => logger.info(message, extra ?? {}),
    warn: (message, extra) => logger.warn(message, extra ?? {}),
    error: (message, extra) => logger.error(message, extra ?? {}),
  };
}

export function dynamoClient(env: AwsClientEnv): DynamoDBClient {
  return new DynamoDBClient({ region: env.AWS_REGION });
}

/** A KMS client whose throttled calls are marked in the log (`withThrottleSignal`). */
export function kmsClient(env: AwsClientEnv, log: Log): KMSClient {
  return withThrottleSignal(new KMSClient({ region: env.AWS_REGION }), log);
}

export function eventBridgeClient(env: AwsClientEnv): EventBridgeClient {
  return new EventBridgeClient({ region: env.AWS_REGION });
}

export function stsClient(env: AwsClientEnv): STSClient {
  return new STSClient({ region: env.AWS_REGION });
}

export function iamClient(env: AwsClientEnv): IAMClient {
  return new IAMClient({ region: env.AWS_REGION });
}

export function secretsManagerClient(env: AwsClientEnv): SecretsManagerClient {
  return new SecretsManagerClient({ region: env.AWS_REGION });
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
