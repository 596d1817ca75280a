/**
 * CDK context → `LanyardIssuerProps`. Every key is `lanyard:<name>`, set in cdk.json or with
 * `-c lanyard:<name>=<value>` (a string from the command line, a JSON value from cdk.json;
 * both are accepted). A value that does not parse fails the synth and names the key.
 *
 * @example
 * ```sh
 * npx cdk deploy -c lanyard:stsRoleArns=arn:aws:iam::123456789012:role/tickets-tool -c lanyard:rotationDays=14
 * ```
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Node } from 'constructs';
import type { LanyardIssuerProps } from './lanyard-issuer.ts';

/** Every context key the app reads, with its default (documented in docs/deploy.md). */
export const CONTEXT_DEFAULTS = {
  'lanyard:stackName': 'Lanyard',
  'lanyard:stsRoleArns': '',
  /** Empty: `alias/lanyard/<stackName>/signing`, so two stacks in one account never share a key family. */
  'lanyard:signingKeyAlias': '',
  'lanyard:publishedKeyIds': '',
  'lanyard:rotationDays': 30,
  'lanyard:maxCredentialTtlSeconds': 43_200,
  'lanyard:jwksCoolDownSeconds': 900,
  'lanyard:eventArchiveDays': 90,
  'lanyard:policyCacheTtlMs': 1000,
  'lanyard:tableEncryption': 'aws-managed',
  'lanyard:removalPolicy': 'retain',
  'lanyard:logRetentionDays': 30,
  'lanyard:throttleRateLimit': 100,
  'lanyard:throttleBurstLimit': 200,
  'lanyard:alarmEmail': '',
  'lanyard:issuer': '',
  /** Empty: `lanyard/<stackName>/upstream/`, so one stack's broker cannot read another's secrets. */
  'lanyard:upstreamSecretPrefix': '',
  'lanyard:upstreamSecretsKeyArn': '',
  /** A positive integer, or `off` for no reservation (the broker then shares the account's unreserved concurrency). */
  'lanyard:brokerReservedConcurrency': 100,
} as const;

export type ContextKey = keyof typeof CONTEXT_DEFAULTS;

export interface LanyardAppConfig {
  readonly stackName: string;
  readonly issuer: LanyardIssuerProps;
}

export function configFromContext(node: Node): LanyardAppConfig {
  const raw = (key: ContextKey): unknown => (node.tryGetContext(key) as unknown) ?? CONTEXT_DEFAULTS[key];
  const text = (key: ContextKey): string => {
    const value = raw(key);
    if (typeof value !== 'string') throw new Error(`context ${key} must be a string, got ${JSON.stringify(value)}`);
    return value.trim();
  };
  const list = (key: ContextKey): string[] => {
    const value = raw(key);
    if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value.map((item) => item.trim()).filter(Boolean);
    if (typeof value === 'string') return value.split(',').map((item) => item.trim()).filter(Boolean);
    throw new Error(`context ${key} must be a comma-separated string or an array of strings, got ${JSON.stringify(value)}`);
  };
  const number = (key: ContextKey): number => {
    const value = raw(key);
    const parsed = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
    if (!Number.isFinite(parsed) || parsed < 0) throw new Error(`context ${key} must be a non-negative number, got ${JSON.stringify(value)}`);
    return parsed;
  };
  const oneOf = <T extends string>(key: ContextKey, allowed: readonly T[]): T => {
    const value = text(key).toLowerCase();
    if (!(allowed as readonly string[]).includes(value)) throw new Error(`context ${key} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
    return value as T;
  };

  const logRetentionDays = number('lanyard:logRetentionDays');
  if (!(Object.values(logs.RetentionDays) as unknown[]).includes(logRetentionDays)) {
    throw new Error(`context lanyard:logRetentionDays must be a CloudWatch Logs retention (1, 3, 5, 7, 14, 30, 60, 90, …), got ${logRetentionDays}`);
  }
  const alarmEmail = text('lanyard:alarmEmail');
  const issuer = text('lanyard:issuer');
  const upstreamSecretsKeyArn = text('lanyard:upstreamSecretsKeyArn');
  const signingKeyAlias = text('lanyard:signingKeyAlias');
  const upstreamSecretPrefix = text('lanyard:upstreamSecretPrefix');
  const brokerConcurrency = raw('lanyard:brokerReservedConcurrency');
  const brokerReservedConcurrency = brokerConcurrency === false || (typeof brokerConcurrency === 'string' && brokerConcurrency.trim().toLowerCase() === 'off') ? false : number('lanyard:brokerReservedConcurrency');
  return {
    stackName: text('lanyard:stackName'),
    issuer: {
      stsRoleArns: list('lanyard:stsRoleArns'),
      ...(signingKeyAlias !== '' && { signingKeyAlias }),
      publishedKeyIds: list('lanyard:publishedKeyIds'),
      rotationPeriod: Duration.days(number('lanyard:rotationDays')),
      maxCredentialTtl: Duration.seconds(number('lanyard:maxCredentialTtlSeconds')),
      jwksCoolDown: Duration.seconds(number('lanyard:jwksCoolDownSeconds')),
      eventArchiveRetention: Duration.days(number('lanyard:eventArchiveDays')),
      policyCacheTtl: Duration.millis(number('lanyard:policyCacheTtlMs')),
      tableEncryption:
        oneOf('lanyard:tableEncryption', ['aws-managed', 'customer-managed']) === 'customer-managed'
          ? dynamodb.TableEncryption.CUSTOMER_MANAGED
          : dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: oneOf('lanyard:removalPolicy', ['retain', 'destroy']) === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
      logRetention: logRetentionDays,
      throttleRateLimit: number('lanyard:throttleRateLimit'),
      throttleBurstLimit: number('lanyard:throttleBurstLimit'),
      ...(alarmEmail !== '' && { alarmEmail }),
      ...(issuer !== '' && { issuer }),
      ...(upstreamSecretPrefix !== '' && { upstreamSecretPrefix }),
      ...(upstreamSecretsKeyArn !== '' && { upstreamSecretsKeyArn }),
      brokerReservedConcurrency,
    },
  };
}
