/**
 * `LanyardIssuer`: the whole issuer as one reusable construct (docs/architecture.md) — the single
 * table, the KMS signing key and its alias, the event bus and its archive, the HTTP API, one
 * Lambda function per handler file with only the permissions it needs, the rotation schedule,
 * and the alarms an on-call engineer needs.
 *
 * Handler files are found in `lambdas/` (or `lambdasDir`). The four the issuer cannot run
 * without must exist; the others (`OPTIONAL_FUNCTIONS`) are wired when their file exists, so a
 * new handler is deployed by adding its file, with the route and grants already decided here.
 * The credential broker (issue 6) is one of them: it has no API route but a function URL of
 * its own, because API Gateway HTTP APIs cannot stream an answer and decode the path.
 *
 * @example
 * ```ts
 * const issuer = new LanyardIssuer(stack, 'Issuer', {
 *   stsRoleArns: ['arn:aws:iam::123456789012:role/lanyard-tools/*'],
 *   rotationPeriod: Duration.days(30),
 *   alarmEmail: 'oncall@example.com',
 * });
 * new CfnOutput(stack, 'ApiUrl', { value: issuer.apiUrl });
 * ```
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { ArnFormat, Duration, Lazy, RemovalPolicy, Stack, Tags, Token, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as snsSubscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { IConstruct } from 'constructs';
import { INDEXES, PARTITION_KEY, SORT_KEY, STREAM_VIEW_TYPE, TTL_ATTRIBUTE } from '../shared/adapters/dynamodb/table.ts';
import { JWKS_MAX_AGE_SECONDS } from '../lambdas/jwks.ts';
import { INSTANCE_CREDENTIALS_PATH } from '../lambdas/issue-credential.ts';
import { PUBLISHED_RECORD_FILTERS } from '../lambdas/publish-events.ts';
import { KMS_THROTTLED_LOG_FIELD } from '../shared/bootstrap/aws/runtime.ts';
import { SIGNING_KEY_REGISTRY_PK } from '../shared/adapters/aws/signing-key-registry.ts';
import { LanyardFunction, PROJECT_ROOT } from './lanyard-function.ts';

/** Handler files the issuer cannot run without. */
export const REQUIRED_FUNCTIONS = {
  issueCredential: 'issue-credential.ts',
  jwks: 'jwks.ts',
  metadata: 'metadata.ts',
  admin: 'admin.ts',
} as const;

/**
 * The extension points: handler files wired (route or trigger, environment, grants) as soon as
 * they exist in `lambdasDir`. See docs/deploy.md for what each one is given.
 */
export const OPTIONAL_FUNCTIONS = {
  /** `GET /v1/revocations` (IAM): reads the revocation feed. */
  revocations: 'revocations.ts',
  /** `POST /v1/introspect` (IAM): reads credentials and revocations, verifies with the public keys. */
  introspect: 'introspect.ts',
  /** `POST /v1/spawn` (IAM): reads and writes the table, and mints credentials like `POST /v1/credentials`. */
  spawn: 'spawn.ts',
  /** DynamoDB Streams → EventBridge publisher (docs/events.md). */
  publishEvents: 'publish-events.ts',
  /** Invoked by EventBridge Scheduler every `rotationPeriod`: creates, stages, activates and retires signing keys. */
  rotateSigningKey: 'rotate-signing-key.ts',
  /**
   * `ANY /v1/proxy/{provider}/{path+}` on its own function URL (auth NONE: the Lanyard JWT is the
   * authentication; response streaming): reads policy and upstream secrets, counts quotas, audits.
   */
  broker: 'broker.ts',
} as const;

export type OptionalFunctionName = keyof typeof OPTIONAL_FUNCTIONS;

/** The route agent instances refresh on (no gateway authorizer; the function accepts only a refresh token). */
export { INSTANCE_CREDENTIALS_PATH };

/** Event `source` of every Lanyard event (docs/events.md); the archive keeps these. */
export const EVENT_SOURCE = 'lanyard';

/** Tag on every signing key of one issuer, the one CDK creates and the ones rotation creates; its value is the alias name. */
export const SIGNING_KEY_TAG = 'lanyard:signing-key';

/**
 * The stream view comes from table.ts like the keys and indexes. It must carry old images:
 * reinstating a target and removing a grant are deletes, and a REMOVE record holds the
 * deleted item only in its old image, so the publisher needs it to emit `Target Reinstated`
 * and `Grant Changed` (docs/events.md). The constructor refuses a view without old images.
 */
export const STACK_STREAM_VIEW_TYPE: dynamodb.StreamViewType = dynamodb.StreamViewType[STREAM_VIEW_TYPE];

const DYNAMODB_READ = ['dynamodb:GetItem', 'dynamodb:Query'];
const DYNAMODB_WRITE = ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem'];
const KMS_VERIFY = ['kms:GetPublicKey', 'kms:DescribeKey'];
/**
 * What `loadSigningKeyRecords` (key-rotation.ts) calls to find the keys of the family, in the
 * rotation function only: ListKeys (no resource-level permissions) and the tags of every key it
 * lists. ListResourceTags cannot carry the family condition: the point is to read the tags of
 * keys that may not be in the family (a foreign key whose policy denies it is skipped). The
 * signers read the registry item rotation writes instead (signing-key-registry.ts).
 */
const KMS_FIND_FAMILY = { listKeys: 'kms:ListKeys', listTags: 'kms:ListResourceTags' } as const;
const STS_ASSUME = ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'];
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/*-]+$/;
const KMS_ALIAS = /^alias\/[a-zA-Z0-9/_-]+$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/(mrk-)?[0-9a-f-]+$/;
/** Characters of a Secrets Manager name, ending in `/` so the prefix is a whole path segment. */
const SECRET_PREFIX = /^[A-Za-z0-9_+=.@-][A-Za-z0-9/_+=.@-]*\/$/;

/**
 * The names one issuer claims in its account and region, derived from its stack so that two
 * stacks (dev and prod) in one account never share an alias (and with it the key family every
 * KMS grant follows) or a secret prefix (which the broker may read). A stack name is unique in
 * its account and region, and has only letters, digits and `-`, so neither name is a prefix of
 * another stack's.
 */
export function defaultSigningKeyAlias(stackName: string): string {
  return `alias/lanyard/${stackName}/signing`;
}

/** Where the upstream secrets of the broker live: `<prefix><provider>` (shared/adapters/aws/secrets-manager-vault.ts). */
export function defaultUpstreamSecretPrefix(stackName: string): string {
  return `lanyard/${stackName}/upstream/`;
}
/** Access-log statuses counted as denials: refused (401/403) and quota-refused or throttled (429). */
const DENIAL_STATUSES = ['401', '403', '429'] as const;
/** An alarm when the publisher's IteratorAge (AWS/Lambda, Maximum) reaches this: events lag the table. */
export const PUBLISHER_ITERATOR_AGE_ALARM = Duration.minutes(5);
/**
 * The log line the AWS runtime writes when KMS throttled a call past the SDK's retries
 * (`KMS_THROTTLED_LOG_FIELD`, shared/bootstrap/aws/runtime.ts): KMS publishes no throttle metric.
 */
const KMS_THROTTLED_LOG_LINE = logs.FilterPattern.booleanValue(`$.${KMS_THROTTLED_LOG_FIELD}`, true);
/** The broker's cap when none is given: a flood of calls to its public URL leaves the rest of the account's concurrency alone. */
export const DEFAULT_BROKER_RESERVED_CONCURRENCY = 100;
/** What the broker reads: one version of one upstream secret. */
const SECRETS_READ = ['secretsmanager:GetSecretValue'];
/** What `upstream.secret.set` does: create the provider's secret on first use, put a version, tag it, describe it. */
const SECRETS_WRITE = ['secretsmanager:CreateSecret', 'secretsmanager:PutSecretValue', 'secretsmanager:TagResource', 'secretsmanager:DescribeSecret'];

export interface LanyardIssuerProps {
  /**
   * Directory of the handler files.
   * @default the repository's `lambdas/`
   */
  readonly lambdasDir?: string;
  /**
   * Turn an optional function on or off explicitly. `true` for a file that does not exist
   * fails the synth; `false` leaves an existing file undeployed.
   * @default - each optional function is wired when its file exists
   */
  readonly functions?: Partial<Record<OptionalFunctionName, boolean>>;
  /**
   * Physical table name.
   * @default - generated by CloudFormation
   */
  readonly tableName?: string;
  /**
   * Encryption at rest of the table. `CUSTOMER_MANAGED` creates a KMS key (with yearly rotation)
   * and grants each function only encrypt/decrypt on it.
   * @default dynamodb.TableEncryption.AWS_MANAGED
   */
  readonly tableEncryption?: dynamodb.TableEncryption.AWS_MANAGED | dynamodb.TableEncryption.CUSTOMER_MANAGED;
  /**
   * What happens to the table, the signing key and the log groups when the stack is deleted.
   * `RETAIN` also turns on the table's deletion protection.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Alias of the active signing key (`LANYARD_SIGNING_KEY`). Rotation moves it.
   * @default `alias/lanyard/<stack name>/signing` (defaultSigningKeyAlias)
   */
  readonly signingKeyAlias?: string;
  /**
   * Other key ids whose public halves the JWKS publishes (`LANYARD_PUBLISHED_KEYS`): a key
   * staged or retired by hand.
   * @default - none
   */
  readonly publishedKeyIds?: readonly string[];
  /**
   * Tool roles the issuer may assume for `sts` credentials. Non-empty turns STS on
   * (`LANYARD_STS=on`); each role's trust policy must trust every role of `minterRoles` (the
   * issue and the spawn function both mint), or call `trustToolRole(role)` for a role of the app.
   * A trailing `*` in the role path is allowed (`…:role/lanyard-tools/*`).
   * @default - none: STS off
   */
  readonly stsRoleArns?: readonly string[];
  /**
   * Physical name of the custom event bus.
   * @default - generated by CloudFormation
   */
  readonly eventBusName?: string;
  /** How long the archive keeps `lanyard` events (0 = forever). @default Duration.days(90) */
  readonly eventArchiveRetention?: Duration;
  /** How often a new signing key is created (whole minutes at least). @default Duration.days(30) */
  readonly rotationPeriod?: Duration;
  /**
   * The longest a credential can live (the largest grant `maxTtlSeconds`: up to 12 h for JWTs;
   * sts sessions last at most 1 h). A retired key stays published this long after it stops signing.
   * @default Duration.hours(12)
   */
  readonly maxCredentialTtl?: Duration;
  /**
   * How long a staged key is published before anything is signed with it: longer than the
   * verifiers' JWKS cache. Must be at least the JWKS `max-age` (300 s).
   * @default Duration.minutes(15)
   */
  readonly jwksCoolDown?: Duration;
  /** `LANYARD_POLICY_TTL_MS`: how long a container trusts its cached policy view. @default Duration.seconds(1) */
  readonly policyCacheTtl?: Duration;
  /**
   * `iss` of every token (`LANYARD_ISSUER`). Set it when a custom domain fronts the API.
   * @default - the API's execute-api endpoint
   */
  readonly issuer?: string;
  /** Steady-state requests per second across the API (default route settings). @default 100 */
  readonly throttleRateLimit?: number;
  /** Burst across the API. @default 200 */
  readonly throttleBurstLimit?: number;
  /** Retention of the function and access logs. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * E-mail address subscribed to the alarm topic.
   * @default - no subscription (the topic still exists; subscribe to it later)
   */
  readonly alarmEmail?: string;
  /** Denials (401/403 on the credential routes) per 5 minutes that raise the alarm. @default 50 */
  readonly denialsAlarmThreshold?: number;
  /** Issuer errors (ERROR log lines of the routed functions) per 5 minutes that raise the alarm. @default 1 */
  readonly issuerErrorsAlarmThreshold?: number;
  /** API 5xx answers per 5 minutes that raise the alarm (also the broker's function URL 5xx). @default 5 */
  readonly api5xxAlarmThreshold?: number;
  /**
   * Name prefix of the broker's upstream secrets in Secrets Manager (`LANYARD_SECRET_PREFIX`):
   * one secret per provider, `<prefix><provider>`. The broker may read and the admin function
   * write only secrets under it. Must end with `/`.
   * @default `lanyard/<stack name>/upstream/` (defaultUpstreamSecretPrefix)
   */
  readonly upstreamSecretPrefix?: string;
  /**
   * ARN of a customer-managed KMS key that encrypts new upstream secrets
   * (`LANYARD_SECRETS_KMS_KEY`); the admin function may GenerateDataKey/Decrypt and the broker
   * Decrypt with it, through Secrets Manager only. Its key policy must allow the account's IAM.
   * @default - the AWS-managed key `aws/secretsmanager`
   */
  readonly upstreamSecretsKeyArn?: string;
  /**
   * Timeout of the broker function: longer than the longest upstream call a provider allows
   * (`timeoutMs`, default 30 s, one deadline for the whole exchange) plus the checks before it.
   * The broker aborts the upstream call 1 s before it, so an answer is ended, not cut.
   * @default Duration.minutes(5)
   */
  readonly brokerTimeout?: Duration;
  /**
   * Reserved concurrency of the broker function. Its function URL is public (auth NONE: the JWT
   * is checked in the function), so without a cap a flood of refused calls takes the account's
   * concurrency the issuer functions need. Lambda keeps at least 100 of the account's
   * concurrency unreserved, so the account's quota must be at least this + 100 (docs/deploy.md).
   * `false` reserves nothing: the broker then shares the account's unreserved concurrency.
   * @default DEFAULT_BROKER_RESERVED_CONCURRENCY (100)
   */
  readonly brokerReservedConcurrency?: number | false;
}

export class LanyardIssuer extends Construct {
  readonly table: dynamodb.Table;
  readonly signingKey: kms.Key;
  readonly signingKeyAlias: kms.Alias;
  readonly eventBus: events.EventBus;
  readonly eventArchive: events.Archive;
  readonly httpApi: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;
  readonly accessLogs: logs.LogGroup;
  /** Base URL of the API, without a trailing slash. */
  readonly apiUrl: string;
  readonly jwksUrl: string;
  readonly alarmTopic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[];
  readonly issueFunction: LanyardFunction;
  readonly jwksFunction: LanyardFunction;
  readonly metadataFunction: LanyardFunction;
  readonly adminFunction: LanyardFunction;
  readonly revocationsFunction?: LanyardFunction;
  readonly introspectFunction?: LanyardFunction;
  readonly spawnFunction?: LanyardFunction;
  readonly publishEventsFunction?: LanyardFunction;
  readonly publisherDlq?: sqs.Queue;
  readonly rotateSigningKeyFunction?: LanyardFunction;
  readonly rotationSchedule?: scheduler.Schedule;
  readonly brokerFunction?: LanyardFunction;
  /** The broker's function URL (auth NONE, response streaming); proxied calls go to `<url>v1/proxy/<provider>/<path>`. */
  readonly brokerFunctionUrl?: lambda.FunctionUrl;
  /** `brokerFunctionUrl.url`: ends with `/`. */
  readonly brokerUrl?: string;
  /** Every function, by handler name. */
  readonly functions: Record<string, LanyardFunction>;
  /** Tool roles given to `trustToolRole`: they turn STS on as `stsRoleArns` do. */
  private readonly trustedToolRoles: iam.IRole[] = [];

  constructor(scope: Construct, id: string, props: LanyardIssuerProps = {}) {
    // Every prop is checked before the construct joins the tree: a bad value leaves nothing behind.
    const config = resolveProps(id, props, Stack.of(scope).stackName);
    const present = wiredFunctions(config.lambdasDir, props.functions ?? {});
    super(scope, id);
    this.alarms = [];
    this.functions = {};
    const stack = Stack.of(this);

    // Table (docs/architecture.md): one table, the definition shared with the local engines.
    this.table = new dynamodb.Table(this, 'Table', {
      ...(props.tableName !== undefined && { tableName: props.tableName }),
      partitionKey: { name: PARTITION_KEY, type: dynamodb.AttributeType.STRING },
      sortKey: { name: SORT_KEY, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TTL_ATTRIBUTE,
      stream: STACK_STREAM_VIEW_TYPE,
      encryption: config.tableEncryption,
      removalPolicy: config.removalPolicy,
      deletionProtection: config.removalPolicy === RemovalPolicy.RETAIN,
    });
    for (const index of Object.values(INDEXES)) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: { name: index.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: index.sortKey, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }

    // Signing key (docs/domain.md#credentials). KMS cannot rotate asymmetric keys: the rotation function creates
    // new keys and moves the alias. Every key of this issuer carries SIGNING_KEY_TAG, and the
    // KMS permissions below are scoped by that tag, so they follow rotation without a redeploy.
    this.signingKey = new kms.Key(this, 'SigningKey', {
      description: `Lanyard ES256 signing key (${config.signingKeyAlias}); rotation creates its successors`,
      keySpec: kms.KeySpec.ECC_NIST_P256,
      keyUsage: kms.KeyUsage.SIGN_VERIFY,
      removalPolicy: config.removalPolicy,
      pendingWindow: Duration.days(30),
    });
    Tags.of(this.signingKey).add(SIGNING_KEY_TAG, config.signingKeyAlias);
    this.signingKeyAlias = new kms.Alias(this, 'SigningKeyAlias', { aliasName: config.signingKeyAlias, targetKey: this.signingKey });
    const signingKeys = stack.formatArn({ service: 'kms', resource: 'key', resourceName: '*' });
    const signingKeyAliasArn = stack.formatArn({ service: 'kms', resource: 'alias', resourceName: config.signingKeyAlias.slice('alias/'.length) });
    const ownKeys = { StringEquals: { [`aws:ResourceTag/${SIGNING_KEY_TAG}`]: config.signingKeyAlias } };

    // Events (docs/events.md): a custom bus, and an archive of everything Lanyard publishes on it.
    this.eventBus = new events.EventBus(this, 'EventBus', {
      ...(props.eventBusName !== undefined && { eventBusName: props.eventBusName }),
      description: 'Lanyard revocation, grant and key-rotation events',
    });
    this.eventArchive = this.eventBus.archive('Archive', {
      description: 'Every lanyard event, for replay after a consumer outage',
      eventPattern: { source: [EVENT_SOURCE] },
      retention: config.eventArchiveRetention,
    });

    // HTTP API. The stage is explicit so it can carry throttling and access logs.
    this.httpApi = new apigwv2.HttpApi(this, 'HttpApi', {
      description: 'Lanyard: just-in-time credentials for agent fleets',
      createDefaultStage: false,
    });
    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: config.logRetention, removalPolicy: config.removalPolicy });
    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: config.throttleRateLimit, burstLimit: config.throttleBurstLimit },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            requestTime: '$context.requestTimeEpoch',
            routeKey: '$context.routeKey',
            status: '$context.status',
            integrationStatus: '$context.integrationStatus',
            caller: '$context.identity.userArn',
            sourceIp: '$context.identity.sourceIp',
            latencyMs: '$context.responseLatency',
            error: '$context.error.message',
            integrationError: '$context.integrationErrorMessage',
          }),
        ),
      },
    });
    // `apiEndpoint` is known before the routes exist, so functions can take it as their
    // issuer without a cycle (only routes and integrations depend on the functions).
    this.apiUrl = this.httpApi.apiEndpoint;
    this.jwksUrl = `${this.apiUrl}/.well-known/jwks.json`;
    const iamAuthorizer = new HttpIamAuthorizer();

    // Environment of every handler built on the AWS composition root (shared/bootstrap/aws/runtime.ts):
    // it reads all of these at cold start, whatever the function then uses.
    const runtimeEnv: Record<string, string> = {
      LANYARD_TABLE: this.table.tableName,
      LANYARD_SIGNING_KEY: config.signingKeyAlias,
      LANYARD_PUBLISHED_KEYS: config.publishedKeyIds.join(','),
      LANYARD_ISSUER: config.issuer ?? this.apiUrl,
      LANYARD_POLICY_TTL_MS: String(config.policyCacheTtl.toMilliseconds()),
      // Lazy: `trustToolRole` may turn STS on after the functions exist.
      LANYARD_STS: Lazy.string({ produce: () => (config.stsRoleArns.length > 0 || this.trustedToolRoles.length > 0 ? 'on' : 'off') }),
    };
    const make = (
      name: string,
      file: string,
      description: string,
      env: Record<string, string> = {},
      sizing: { timeout?: Duration; reservedConcurrentExecutions?: number } = {},
    ): LanyardFunction => {
      const fn = new LanyardFunction(this, functionId(name), {
        entry: join(config.lambdasDir, file),
        description,
        environment: { ...runtimeEnv, ...env },
        logRetention: config.logRetention,
        logRemovalPolicy: config.removalPolicy,
        ...(sizing.timeout !== undefined && { timeout: sizing.timeout }),
        ...(sizing.reservedConcurrentExecutions !== undefined && { reservedConcurrentExecutions: sizing.reservedConcurrentExecutions }),
      });
      this.functions[name] = fn;
      return fn;
    };

    // Grants, one verb each, so every function's policy reads as what it may do.
    const tableIndexes = `${this.table.tableArn}/index/*`;
    // With a customer-managed table key, the exact KMS actions DynamoDB performs for the caller
    // (not CDK's grantEncryptDecrypt, whose ReEncrypt* / GenerateDataKey* wildcards are wider).
    const tableKey = (fn: LanyardFunction, actions: string[]) => {
      const key = this.table.encryptionKey;
      if (key) fn.addToRolePolicy(new iam.PolicyStatement({ actions, resources: [key.keyArn] }));
    };
    const readTable = (fn: LanyardFunction) => {
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: DYNAMODB_READ, resources: [this.table.tableArn, tableIndexes] }));
      tableKey(fn, ['kms:Decrypt', 'kms:DescribeKey']);
      acknowledgeWildcard(fn, tableIndexes, 'GetItem/Query on the indexes of the Lanyard table only (byType, byIdentity, byLane, byTenant, byTask); index names are data in table.ts');
    };
    const writeTable = (fn: LanyardFunction, actions: readonly string[]) => {
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: [...actions], resources: [this.table.tableArn] }));
      tableKey(fn, ['kms:Encrypt', 'kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKey']);
    };
    const keyFamilyReason = `Signing keys made by rotation have ids unknown at deploy time; key/* is narrowed by the condition aws:ResourceTag/${SIGNING_KEY_TAG} = ${config.signingKeyAlias}`;
    // Which keys to publish: the registry item rotation writes, one GetItem of that item only
    // (the functions that read the table anyway get it through readTable).
    const readKeyRegistry = (fn: LanyardFunction) => {
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          sid: 'ReadSigningKeyRegistry',
          actions: ['dynamodb:GetItem'],
          resources: [this.table.tableArn],
          conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [SIGNING_KEY_REGISTRY_PK] } },
        }),
      );
      tableKey(fn, ['kms:Decrypt', 'kms:DescribeKey']);
    };
    const readPublicKeys = (fn: LanyardFunction) => {
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: KMS_VERIFY, resources: [signingKeys], conditions: ownKeys }));
      acknowledgeWildcard(fn, signingKeys, keyFamilyReason);
    };
    const sign = (fn: LanyardFunction) => {
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['kms:Sign', ...KMS_VERIFY], resources: [signingKeys], conditions: ownKeys }));
      acknowledgeWildcard(fn, signingKeys, keyFamilyReason);
    };
    // Upstream secrets of the broker (issue 6): `<prefix><provider>` plus the 6-character suffix
    // Secrets Manager appends to every secret ARN, so `<prefix>*` and nothing outside the prefix.
    const upstreamSecrets = stack.formatArn({ service: 'secretsmanager', resource: 'secret', resourceName: `${config.upstreamSecretPrefix}*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    const secretsEnv: Record<string, string> = {
      LANYARD_SECRET_PREFIX: config.upstreamSecretPrefix,
      ...(config.upstreamSecretsKeyArn !== undefined && { LANYARD_SECRETS_KMS_KEY: config.upstreamSecretsKeyArn }),
    };
    // A customer key is used by Secrets Manager on the caller's behalf: only through Secrets Manager in this region.
    const secretsKey = (fn: LanyardFunction, actions: string[]) => {
      if (config.upstreamSecretsKeyArn === undefined) return;
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions,
          resources: [config.upstreamSecretsKeyArn],
          conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${stack.region}.${stack.urlSuffix}` } },
        }),
      );
    };
    const readSecrets = (fn: LanyardFunction) => {
      fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'ReadUpstreamSecrets', actions: SECRETS_READ, resources: [upstreamSecrets] }));
      secretsKey(fn, ['kms:Decrypt']);
      acknowledgeWildcard(fn, upstreamSecrets, `The broker reads one version of one provider's secret per call; secrets are named ${config.upstreamSecretPrefix}<provider> and get a random suffix from Secrets Manager, so only the prefix is known at deploy time`);
    };
    const writeSecrets = (fn: LanyardFunction) => {
      fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'WriteUpstreamSecrets', actions: SECRETS_WRITE, resources: [upstreamSecrets] }));
      // GenerateDataKey for a new version; Decrypt, which Secrets Manager also asks of the writer (security-encryption.md, "Permissions for the KMS key").
      secretsKey(fn, ['kms:GenerateDataKey', 'kms:Decrypt']);
      acknowledgeWildcard(fn, upstreamSecrets, `upstream.secret.set creates ${config.upstreamSecretPrefix}<provider> on first use and puts new versions; provider names are data and Secrets Manager appends a random suffix, so only the prefix is known at deploy time`);
    };
    const assumeToolRoles = (fn: LanyardFunction) => {
      if (config.stsRoleArns.length === 0) return;
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: STS_ASSUME, resources: [...config.stsRoleArns] }));
      for (const arn of config.stsRoleArns) {
        if (arn.includes('*')) acknowledgeWildcard(fn, arn, 'The operator listed this role path pattern in lanyard:stsRoleArns: every tool role under it may be assumed for sts credentials');
      }
    };
    const route = (path: string, method: apigwv2.HttpMethod, fn: LanyardFunction, auth: 'iam' | 'public' | 'refresh-token') => {
      const [created] = this.httpApi.addRoutes({
        path,
        methods: [method],
        integration: new HttpLambdaIntegration(`${fn.node.id}Integration`, fn),
        ...(auth === 'iam' && { authorizer: iamAuthorizer }),
      });
      if (auth === 'public' && created) {
        acknowledge(created, 'AwsSolutions-APIG4', `${method} ${path} is public by contract (docs/http.md): verifiers and OAuth tooling fetch it unauthenticated; it serves only public data`);
      }
      if (auth === 'refresh-token' && created) {
        acknowledge(created, 'AwsSolutions-APIG4', `${method} ${path} authenticates in the function: it accepts only an agent instance's single-use refresh token (lr_…), which the IAM authorizer cannot check; anything else is 401`);
      }
    };

    // POST /v1/credentials: reads policy, writes decision records, signs, may assume tool roles.
    this.issueFunction = make('issueCredential', REQUIRED_FUNCTIONS.issueCredential, 'POST /v1/credentials: issue a credential for one lane');
    readTable(this.issueFunction);
    // UpdateItem: an instance's refresh spends its token in one conditional update, and a reused
    // token revokes the instance (issuance block and revocation feed are conditional updates).
    writeTable(this.issueFunction, ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:BatchWriteItem']);
    sign(this.issueFunction);
    assumeToolRoles(this.issueFunction);
    route('/v1/credentials', apigwv2.HttpMethod.POST, this.issueFunction, 'iam');
    // Agent instances refresh with their refresh token (`Authorization: Bearer lr_…`), which the
    // IAM authorizer would refuse before the function runs: a route without a gateway authorizer,
    // where the function accepts only a refresh token. It shares the stage throttling.
    route(INSTANCE_CREDENTIALS_PATH, apigwv2.HttpMethod.POST, this.issueFunction, 'refresh-token');

    this.jwksFunction = make('jwks', REQUIRED_FUNCTIONS.jwks, 'GET /.well-known/jwks.json: published signing keys');
    readPublicKeys(this.jwksFunction);
    readKeyRegistry(this.jwksFunction);
    route('/.well-known/jwks.json', apigwv2.HttpMethod.GET, this.jwksFunction, 'public');

    this.metadataFunction = make('metadata', REQUIRED_FUNCTIONS.metadata, 'GET /.well-known/oauth-authorization-server: RFC 8414 metadata');
    route('/.well-known/oauth-authorization-server', apigwv2.HttpMethod.GET, this.metadataFunction, 'public');

    // The admin function has no route: IAM on lambda:InvokeFunction decides who may run commands.
    // Only the admin function writes tool-role policies, so only it revokes STS sessions (LANYARD_STS_REVOKE).
    // Lazy, as LANYARD_STS: `trustToolRole` may turn STS on after the function exists.
    const stsRevokeEnv = { LANYARD_STS_REVOKE: Lazy.string({ produce: () => (config.stsRoleArns.length > 0 || this.trustedToolRoles.length > 0 ? 'on' : 'off') }) };
    this.adminFunction = make('admin', REQUIRED_FUNCTIONS.admin, 'Admin commands (revoke, reinstate, apply policy); invoked directly', { ...secretsEnv, ...stsRevokeEnv });
    readTable(this.adminFunction);
    writeTable(this.adminFunction, DYNAMODB_WRITE);
    // `upstream.secret.set` writes the broker's upstream secrets; nothing reads them back (write-only by contract).
    writeSecrets(this.adminFunction);
    // A revocation reaching an sts tool attaches a deny to the tool role (StsSessionRevoker): it writes its inline
    // revocation policy only, and lists and reads the others to count the role's inline total against IAM's quota.
    if (config.stsRoleArns.length > 0) {
      this.adminFunction.addToRolePolicy(
        new iam.PolicyStatement({ sid: 'DenyRevokedStsLanes', actions: ['iam:ListRolePolicies', 'iam:GetRolePolicy', 'iam:PutRolePolicy'], resources: [...config.stsRoleArns] }),
      );
      for (const arn of config.stsRoleArns) {
        if (arn.includes('*')) acknowledgeWildcard(this.adminFunction, arn, 'The operator listed this role path pattern in lanyard:stsRoleArns: revoking an sts lane writes the lanyard-revocations inline policy of the tool role');
      }
    }

    if (present.revocations) {
      this.revocationsFunction = make('revocations', OPTIONAL_FUNCTIONS.revocations, 'GET /v1/revocations: the revocation feed');
      readTable(this.revocationsFunction);
      route('/v1/revocations', apigwv2.HttpMethod.GET, this.revocationsFunction, 'iam');
    }
    if (present.introspect) {
      this.introspectFunction = make('introspect', OPTIONAL_FUNCTIONS.introspect, 'POST /v1/introspect: RFC 7662 token introspection');
      readTable(this.introspectFunction);
      readPublicKeys(this.introspectFunction);
      route('/v1/introspect', apigwv2.HttpMethod.POST, this.introspectFunction, 'iam');
    }
    if (present.spawn) {
      // Spawning mints the instance's first credentials: the same signing and STS rights as issuing.
      this.spawnFunction = make('spawn', OPTIONAL_FUNCTIONS.spawn, 'POST /v1/spawn: start an agent instance with its credentials');
      readTable(this.spawnFunction);
      writeTable(this.spawnFunction, DYNAMODB_WRITE);
      sign(this.spawnFunction);
      assumeToolRoles(this.spawnFunction);
      route('/v1/spawn', apigwv2.HttpMethod.POST, this.spawnFunction, 'iam');
    }
    if (present.publishEvents) {
      this.publisherDlq = new sqs.Queue(this, 'PublisherDlq', {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      acknowledge(this.publisherDlq, 'AwsSolutions-SQS3', 'This queue is itself the on-failure destination of the stream publisher; a DLQ of a DLQ would only move the problem');
      this.publishEventsFunction = make('publishEvents', OPTIONAL_FUNCTIONS.publishEvents, 'DynamoDB Streams to EventBridge: events from committed state', {
        LANYARD_EVENT_BUS: this.eventBus.eventBusName,
      });
      this.publishEventsFunction.addEventSource(
        new DynamoEventSource(this.table, {
          startingPosition: lambda.StartingPosition.TRIM_HORIZON,
          batchSize: 100,
          maxBatchingWindow: Duration.seconds(1),
          bisectBatchOnError: true,
          // The publisher answers { batchItemFailures }: only the records whose events failed are retried.
          reportBatchItemFailures: true,
          retryAttempts: 10,
          maxRecordAge: Duration.days(1),
          // One batch at a time per shard: events leave in commit order.
          parallelizationFactor: 1,
          onFailure: new SqsDlq(this.publisherDlq),
          // Only the records that can become events invoke it (decision records never do).
          filters: PUBLISHED_RECORD_FILTERS.map((pattern) => lambda.FilterCriteria.filter({ ...pattern })),
        }),
      );
      this.eventBus.grantPutEventsTo(this.publishEventsFunction);
    }
    if (present.rotateSigningKey) {
      this.rotateSigningKeyFunction = make('rotateSigningKey', OPTIONAL_FUNCTIONS.rotateSigningKey, 'Signing-key rotation: stage, activate, retire (EventBridge Scheduler)', {
        LANYARD_EVENT_BUS: this.eventBus.eventBusName,
        LANYARD_SIGNING_KEY_TAG: SIGNING_KEY_TAG,
        LANYARD_MAX_CREDENTIAL_TTL_SECONDS: String(config.maxCredentialTtl.toSeconds()),
        LANYARD_KEY_COOL_DOWN_SECONDS: String(config.jwksCoolDown.toSeconds()),
        // The key CloudFormation created and owns: withdrawn after its last token, never deleted.
        LANYARD_RETAINED_KEY_IDS: this.signingKey.keyId,
      });
      this.grantRotation(this.rotateSigningKeyFunction, config.signingKeyAlias, signingKeys, signingKeyAliasArn, ownKeys);
      // Its `key_rotated` decision records (docs/domain.md#audit): written through putDecisions, never read;
      // and the signing-key registry item, read and rewritten every run.
      writeTable(this.rotateSigningKeyFunction, ['dynamodb:PutItem', 'dynamodb:BatchWriteItem']);
      readKeyRegistry(this.rotateSigningKeyFunction);
      this.eventBus.grantPutEventsTo(this.rotateSigningKeyFunction);
      // Its own role (not the stack-wide singleton), assumable by Scheduler for this account only.
      const schedulerRole = new iam.Role(this, 'RotationScheduleRole', {
        assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }),
        description: 'EventBridge Scheduler: invoke the Lanyard signing-key rotation function',
      });
      this.rotationSchedule = new scheduler.Schedule(this, 'RotationSchedule', {
        description: `Rotate ${config.signingKeyAlias} every ${config.rotationPeriod.toHumanString()}`,
        schedule: scheduler.ScheduleExpression.rate(config.rotationPeriod),
        target: new schedulerTargets.LambdaInvoke(this.rotateSigningKeyFunction, {
          role: schedulerRole,
          input: scheduler.ScheduleTargetInput.fromObject({ command: 'rotate', alias: config.signingKeyAlias }),
          retryAttempts: 3,
          maxEventAge: Duration.hours(1),
        }),
      });
      const invokePolicy = schedulerRole.node.tryFindChild('DefaultPolicy');
      if (invokePolicy) {
        const versions = `${this.rotateSigningKeyFunction.functionArn}:*`;
        acknowledge(
          invokePolicy,
          `AwsSolutions-IAM5[Resource::${flattenReference(stack.resolve(versions))}]`,
          'CDK grants lambda:InvokeFunction on the rotation function and its versions/aliases (arn:*); no other function is reachable',
        );
      }
    }

    if (present.broker) {
      // No route: API Gateway HTTP APIs buffer answers and hand Lambda a decoded path. A function
      // URL streams (RESPONSE_STREAM) and keeps rawPath as sent, so the broker refuses `%2F` and
      // `..` instead of resolving them. Auth NONE: the agent's Lanyard JWT is the authentication,
      // verified in the function with the issuer's public keys; IAM would need SigV4 from agents.
      this.brokerFunction = make(
        'broker',
        OPTIONAL_FUNCTIONS.broker,
        'ANY /v1/proxy/{provider}/{path+}: the credential broker (function URL, response streaming)',
        // No STS: the broker never mints; it verifies and forwards.
        { ...secretsEnv, LANYARD_STS: 'off' },
        { timeout: config.brokerTimeout, ...(config.brokerReservedConcurrency !== undefined && { reservedConcurrentExecutions: config.brokerReservedConcurrency }) },
      );
      readTable(this.brokerFunction);
      // UpdateItem: the quota counters (one conditional update per call); BatchWriteItem: the per-call audit records.
      writeTable(this.brokerFunction, ['dynamodb:UpdateItem', 'dynamodb:BatchWriteItem']);
      // Verifies tokens with the published public keys (as the JWKS function); never signs.
      readPublicKeys(this.brokerFunction);
      readSecrets(this.brokerFunction);
      this.brokerFunctionUrl = this.brokerFunction.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE, invokeMode: lambda.InvokeMode.RESPONSE_STREAM });
      this.brokerUrl = this.brokerFunctionUrl.url;
    }

    // Alarms, all on one topic.
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', { displayName: 'Lanyard alarms', enforceSSL: true });
    acknowledge(
      this.alarmTopic,
      'AwsSolutions-SNS2',
      'The topic carries only alarm state changes (names and thresholds, no credentials or identities); CloudWatch cannot publish to a topic under the AWS-managed SNS key',
    );
    if (config.alarmEmail !== undefined) this.alarmTopic.addSubscription(new snsSubscriptions.EmailSubscription(config.alarmEmail));
    this.addAlarms(config);

    // Account-wide permissions that IAM cannot scope to a resource, acknowledged once per function.
    for (const fn of Object.values(this.functions)) {
      acknowledgeFunctionBaseline(
        fn,
        fn === this.rotateSigningKeyFunction
          ? 'Resource * is X-Ray PutTraceSegments/PutTelemetryRecords and kms:ListKeys (no resource-level permissions), and kms:CreateKey (no resource ARN before the key exists; conditioned on the family tag, ECC_NIST_P256 and SIGN_VERIFY)'
          : 'Resource * is only X-Ray PutTraceSegments/PutTelemetryRecords, which support no resource-level permissions (active tracing)',
      );
    }
  }

  /**
   * The roles that mint `sts` credentials: the issue function's and, when deployed, the spawn
   * function's (spawning mints an instance's first credentials). A tool role must trust both.
   */
  get minterRoles(): iam.IRole[] {
    return [this.issueFunction, this.spawnFunction].flatMap((fn) => (fn?.role === undefined ? [] : [fn.role]));
  }

  /**
   * Makes `role` a tool role of this issuer: its trust policy lets every minter role call
   * `sts:AssumeRole`, `sts:TagSession` (the lane's session tags) and `sts:SetSourceIdentity`
   * (the agent identity), the minters may assume it, the admin function may write its revocation
   * policy (STS lane revocation), and STS is on. The role's ARN need not be in `stsRoleArns`.
   *
   * @example
   * ```ts
   * const tickets = new iam.Role(stack, 'TicketsTool', { assumedBy: new iam.AccountRootPrincipal() });
   * issuer.trustToolRole(tickets);
   * ```
   */
  trustToolRole(role: iam.Role): void {
    const minters = this.minterRoles;
    role.assumeRolePolicy?.addStatements(
      new iam.PolicyStatement({ sid: `TrustLanyard${this.trustedToolRoles.length}`, actions: STS_ASSUME, principals: minters.map((minter) => new iam.ArnPrincipal(minter.roleArn)) }),
    );
    for (const fn of [this.issueFunction, this.spawnFunction]) {
      fn?.addToRolePolicy(new iam.PolicyStatement({ actions: STS_ASSUME, resources: [role.roleArn] }));
    }
    this.adminFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['iam:ListRolePolicies', 'iam:GetRolePolicy', 'iam:PutRolePolicy'], resources: [role.roleArn] }));
    this.trustedToolRoles.push(role);
  }

  /** The rotation function's KMS rights: create keys only in this issuer's family, and act only on keys of that family. */
  private grantRotation(fn: LanyardFunction, alias: string, keys: string, aliasArn: string, ownKeys: Record<string, unknown>): void {
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ManageOwnSigningKeys',
        actions: ['kms:TagResource', 'kms:UntagResource', 'kms:UpdateAlias', 'kms:ScheduleKeyDeletion', ...KMS_VERIFY],
        resources: [keys],
        conditions: ownKeys,
      }),
    );
    // CreateKey has no resource yet, and tagging at creation needs kms:TagResource too: both are
    // allowed only when the request tags the new key into this issuer's family, with lanyard:* tags only.
    const familyRequest = {
      StringEquals: { [`aws:RequestTag/${SIGNING_KEY_TAG}`]: alias },
      'ForAllValues:StringLike': { 'aws:TagKeys': ['lanyard:*'] },
    };
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'CreateSigningKeysInFamily',
        actions: ['kms:CreateKey'],
        resources: ['*'],
        conditions: { ...familyRequest, StringEquals: { ...familyRequest.StringEquals, 'kms:KeySpec': 'ECC_NIST_P256', 'kms:KeyUsage': 'SIGN_VERIFY' } },
      }),
    );
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'TagNewSigningKeys', actions: ['kms:TagResource'], resources: [keys], conditions: familyRequest }));
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'MoveSigningAlias', actions: ['kms:UpdateAlias'], resources: [aliasArn] }));
    // Finding the family's keys (loadSigningKeyRecords): list every key, read every key's tags.
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'ListKeysToFindSigningKeys', actions: [KMS_FIND_FAMILY.listKeys], resources: ['*'] }));
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'ReadKeyTagsToFindSigningKeys', actions: [KMS_FIND_FAMILY.listTags], resources: [keys] }));
    acknowledgeWildcard(fn, keys, `Rotation acts on keys it created itself, whose ids are unknown at deploy time; key/* is narrowed by the condition aws:ResourceTag/${SIGNING_KEY_TAG} = ${alias}, or for tagging at creation aws:RequestTag/${SIGNING_KEY_TAG}; only kms:ListResourceTags is unconditioned, to read which keys belong to the family`);
  }

  private addAlarms(config: ResolvedProps): void {
    const action = new cloudwatchActions.SnsAction(this.alarmTopic);
    const period = Duration.minutes(5);
    const alarm = (id: string, metric: cloudwatch.IMetric, threshold: number, description: string) => {
      const created = new cloudwatch.Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      created.addAlarmAction(action);
      this.alarms.push(created);
      return created;
    };

    // Denials: the handlers record them in the decision log, not as metrics, so the count comes
    // from the API's access log: 401/403 answers on the routes that mint credentials, and 429
    // (quota refusals and the stage's throttling), a flood being refused.
    const denialRoutes = ['POST /v1/credentials', `POST ${INSTANCE_CREDENTIALS_PATH}`, 'POST /v1/spawn'];
    const denials = new logs.MetricFilter(this, 'DenialsFilter', {
      logGroup: this.accessLogs,
      metricNamespace: 'Lanyard',
      metricName: 'Denials',
      metricValue: '1',
      filterPattern: logs.FilterPattern.all(
        logs.FilterPattern.any(...denialRoutes.map((routeKey) => logs.FilterPattern.stringValue('$.routeKey', '=', routeKey))),
        logs.FilterPattern.any(...DENIAL_STATUSES.map((status) => logs.FilterPattern.stringValue('$.status', '=', status))),
      ),
    });
    alarm('DenialsAlarm', denials.metric({ statistic: 'Sum', period }), config.denialsAlarmThreshold, `Spike of refused credential requests (401/403/429 on POST /v1/credentials, ${INSTANCE_CREDENTIALS_PATH} and /v1/spawn)`);

    // Issuer errors: every ERROR line of a routed function is a request that failed closed (503).
    const routed = [this.issueFunction, this.jwksFunction, this.metadataFunction, this.revocationsFunction, this.introspectFunction, this.spawnFunction, this.adminFunction, this.brokerFunction];
    let issuerErrors: cloudwatch.Metric | undefined;
    let kmsThrottles: cloudwatch.Metric | undefined;
    for (const fn of routed) {
      if (fn === undefined) continue;
      const filter = new logs.MetricFilter(this, `${fn.node.id}ErrorsFilter`, {
        logGroup: fn.logGroup,
        metricNamespace: 'Lanyard',
        metricName: 'IssuerErrors',
        metricValue: '1',
        filterPattern: logs.FilterPattern.stringValue('$.level', '=', 'ERROR'),
      });
      issuerErrors ??= filter.metric({ statistic: 'Sum', period });
      // KMS throttling has no metric of its own: the runtime marks the line of a throttled call.
      const throttled = new logs.MetricFilter(this, `${fn.node.id}KmsThrottlesFilter`, {
        logGroup: fn.logGroup,
        metricNamespace: 'Lanyard',
        metricName: 'KmsThrottles',
        metricValue: '1',
        filterPattern: KMS_THROTTLED_LOG_LINE,
      });
      kmsThrottles ??= throttled.metric({ statistic: 'Sum', period });
    }
    if (issuerErrors) alarm('IssuerErrorsAlarm', issuerErrors, config.issuerErrorsAlarmThreshold, 'Issuer failed closed (ERROR log lines of the Lanyard functions)');
    if (kmsThrottles) alarm('KmsThrottlesAlarm', kmsThrottles, 1, 'KMS throttled a signature or public-key read (ThrottlingException): signing and JWKS failed closed; see the KMS request quotas');

    alarm('Api5xxAlarm', this.httpApi.metricServerError({ statistic: 'Sum', period }), config.api5xxAlarmThreshold, 'The API answered 5xx');
    if (this.brokerFunction) {
      // The function URL's own count (AWS/Lambda Url5xxCount, dimension FunctionName): the broker's
      // fail-closed 503s, upstream_* 502/503/504 and Lambda's own errors and timeouts.
      alarm('Broker5xxAlarm', this.brokerFunction.metric('Url5xxCount', { statistic: 'Sum', period }), config.api5xxAlarmThreshold, 'The broker function URL answered 5xx (broker failed closed, upstream failing, or function errors)');
    }
    for (const [name, fn] of Object.entries(this.functions)) {
      const id = functionId(name);
      alarm(`${id}ErrorsAlarm`, fn.metricErrors({ statistic: 'Sum', period }), 1, `${id} raised an unhandled error`);
      alarm(`${id}ThrottlesAlarm`, fn.metricThrottles({ statistic: 'Sum', period }), 1, `${id} was throttled`);
    }
    if (this.publishEventsFunction) {
      // How far behind the stream the publisher is (age of the last record of each batch): events are late by this much.
      alarm(
        'PublisherIteratorAgeAlarm',
        this.publishEventsFunction.metric('IteratorAge', { statistic: 'Maximum', period }),
        PUBLISHER_ITERATOR_AGE_ALARM.toMilliseconds(),
        `The event publisher is more than ${PUBLISHER_ITERATOR_AGE_ALARM.toHumanString()} behind the table stream: revocation and grant events are late`,
      );
    }
    if (this.publisherDlq) {
      alarm('PublisherDlqAlarm', this.publisherDlq.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period }), 1, 'Stream records the publisher gave up on: events were not published');
    }
  }
}

interface ResolvedProps {
  readonly lambdasDir: string;
  readonly tableEncryption: dynamodb.TableEncryption;
  readonly removalPolicy: RemovalPolicy;
  readonly signingKeyAlias: string;
  readonly publishedKeyIds: readonly string[];
  readonly stsRoleArns: readonly string[];
  readonly eventArchiveRetention: Duration;
  readonly rotationPeriod: Duration;
  readonly maxCredentialTtl: Duration;
  readonly jwksCoolDown: Duration;
  readonly policyCacheTtl: Duration;
  readonly issuer?: string;
  readonly throttleRateLimit: number;
  readonly throttleBurstLimit: number;
  readonly logRetention: logs.RetentionDays;
  readonly alarmEmail?: string;
  readonly denialsAlarmThreshold: number;
  readonly issuerErrorsAlarmThreshold: number;
  readonly api5xxAlarmThreshold: number;
  readonly upstreamSecretPrefix: string;
  readonly upstreamSecretsKeyArn?: string;
  readonly brokerTimeout: Duration;
  readonly brokerReservedConcurrency?: number;
}

/** Defaults applied and every prop checked before anything is created: a bad value fails the synth with its name. */
function resolveProps(id: string, props: LanyardIssuerProps, stackName: string): ResolvedProps {
  const fail = (message: string): never => {
    throw new Error(`LanyardIssuer ${id}: ${message}`);
  };
  const derived = (name: string, make: (stack: string) => string): string =>
    Token.isUnresolved(stackName) ? fail(`${name} cannot be derived from a stack name that is a token: set it`) : make(stackName);
  if (STACK_STREAM_VIEW_TYPE !== dynamodb.StreamViewType.NEW_AND_OLD_IMAGES) {
    fail(`the table stream must carry NEW_AND_OLD_IMAGES for the event publisher, table.ts says ${STREAM_VIEW_TYPE}`);
  }
  const lambdasDir = props.lambdasDir === undefined ? join(PROJECT_ROOT, 'lambdas') : isAbsolute(props.lambdasDir) ? props.lambdasDir : join(PROJECT_ROOT, props.lambdasDir);
  const signingKeyAlias = props.signingKeyAlias ?? derived('signingKeyAlias', defaultSigningKeyAlias);
  if (!KMS_ALIAS.test(signingKeyAlias) || signingKeyAlias.startsWith('alias/aws/')) {
    fail(`signingKeyAlias must look like alias/<name> and not be in alias/aws/, got ${JSON.stringify(signingKeyAlias)}`);
  }
  const stsRoleArns = props.stsRoleArns ?? [];
  for (const arn of stsRoleArns) if (!ROLE_ARN.test(arn)) fail(`stsRoleArns must be IAM role ARNs (arn:aws:iam::<account>:role/<path>), got ${JSON.stringify(arn)}`);
  const publishedKeyIds = props.publishedKeyIds ?? [];
  for (const key of publishedKeyIds) if (key.trim() === '' || key.includes(',')) fail(`publishedKeyIds must be non-empty key ids without commas, got ${JSON.stringify(key)}`);

  const seconds = (name: string, value: Duration) => (value.isUnresolved() ? fail(`${name} must be a concrete duration, not a token`) : value.toSeconds());
  const rotationPeriod = props.rotationPeriod ?? Duration.days(30);
  const maxCredentialTtl = props.maxCredentialTtl ?? Duration.hours(12);
  const jwksCoolDown = props.jwksCoolDown ?? Duration.minutes(15);
  const policyCacheTtl = props.policyCacheTtl ?? Duration.seconds(1);
  const eventArchiveRetention = props.eventArchiveRetention ?? Duration.days(90);
  if (seconds('maxCredentialTtl', maxCredentialTtl) < 30) fail('maxCredentialTtl must be at least 30 seconds (the shortest credential, docs/domain.md#credentials)');
  if (seconds('jwksCoolDown', jwksCoolDown) < JWKS_MAX_AGE_SECONDS) {
    fail(`jwksCoolDown must be at least ${JWKS_MAX_AGE_SECONDS} s, the JWKS max-age: a verifier must see a staged key before it signs`);
  }
  const rotationSeconds = seconds('rotationPeriod', rotationPeriod);
  if (rotationSeconds % 60 !== 0) fail('rotationPeriod must be a whole number of minutes (EventBridge Scheduler rate)');
  const minimum = maxCredentialTtl.toSeconds() + jwksCoolDown.toSeconds();
  if (rotationSeconds <= minimum) {
    fail(
      `rotationPeriod (${rotationPeriod.toHumanString()}) must be longer than maxCredentialTtl + jwksCoolDown ` +
        `(${maxCredentialTtl.toHumanString()} + ${jwksCoolDown.toHumanString()}): a key must be staged, sign, and stay published until its last token expires before the next rotation`,
    );
  }
  if (seconds('policyCacheTtl', policyCacheTtl) > 300) fail('policyCacheTtl must be at most 5 minutes: a demotion takes effect at once (docs/domain.md)');
  if (seconds('eventArchiveRetention', eventArchiveRetention) % 86_400 !== 0) fail('eventArchiveRetention must be a whole number of days');

  const positive = (name: string, value: number | undefined, fallback: number) => {
    const resolved = value ?? fallback;
    if (!Number.isFinite(resolved) || resolved <= 0) fail(`${name} must be a positive number, got ${resolved}`);
    return resolved;
  };
  const throttleRateLimit = positive('throttleRateLimit', props.throttleRateLimit, 100);
  const throttleBurstLimit = positive('throttleBurstLimit', props.throttleBurstLimit, 200);
  if (!Number.isInteger(throttleBurstLimit)) fail('throttleBurstLimit must be an integer');
  if (props.alarmEmail !== undefined && !Token.isUnresolved(props.alarmEmail) && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(props.alarmEmail)) {
    fail(`alarmEmail must be an e-mail address, got ${JSON.stringify(props.alarmEmail)}`);
  }
  if (props.issuer !== undefined && !Token.isUnresolved(props.issuer) && !/^https:\/\/[^\s/]+(\/[^\s]*)?$/.test(props.issuer)) {
    fail(`issuer must be an https URL, got ${JSON.stringify(props.issuer)}`);
  }
  const upstreamSecretPrefix = props.upstreamSecretPrefix ?? derived('upstreamSecretPrefix', defaultUpstreamSecretPrefix);
  // An empty or open-ended prefix would let the broker read every secret of the account.
  if (!SECRET_PREFIX.test(upstreamSecretPrefix) || upstreamSecretPrefix.length > 256) {
    fail(`upstreamSecretPrefix must be a Secrets Manager name prefix ending in / (letters, digits, /_+=.@-), got ${JSON.stringify(upstreamSecretPrefix)}`);
  }
  if (props.upstreamSecretsKeyArn !== undefined && !Token.isUnresolved(props.upstreamSecretsKeyArn) && !KMS_KEY_ARN.test(props.upstreamSecretsKeyArn)) {
    fail(`upstreamSecretsKeyArn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), got ${JSON.stringify(props.upstreamSecretsKeyArn)}`);
  }
  const brokerTimeout = props.brokerTimeout ?? Duration.minutes(5);
  const brokerTimeoutSeconds = seconds('brokerTimeout', brokerTimeout);
  if (brokerTimeoutSeconds < 10 || brokerTimeoutSeconds > 900) fail(`brokerTimeout must be between 10 seconds and 15 minutes, got ${brokerTimeout.toHumanString()}`);
  const brokerReservedConcurrency = props.brokerReservedConcurrency ?? DEFAULT_BROKER_RESERVED_CONCURRENCY;
  if (brokerReservedConcurrency !== false && (!Number.isInteger(brokerReservedConcurrency) || brokerReservedConcurrency < 1)) {
    fail(`brokerReservedConcurrency must be a positive integer or false, got ${String(brokerReservedConcurrency)}`);
  }
  for (const file of Object.values(REQUIRED_FUNCTIONS)) {
    if (!existsSync(join(lambdasDir, file))) fail(`handler file ${join(lambdasDir, file)} is missing`);
  }
  return {
    lambdasDir,
    tableEncryption: props.tableEncryption ?? dynamodb.TableEncryption.AWS_MANAGED,
    removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    signingKeyAlias,
    publishedKeyIds,
    stsRoleArns,
    eventArchiveRetention,
    rotationPeriod,
    maxCredentialTtl,
    jwksCoolDown,
    policyCacheTtl,
    ...(props.issuer !== undefined && { issuer: props.issuer }),
    throttleRateLimit,
    throttleBurstLimit,
    logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    ...(props.alarmEmail !== undefined && { alarmEmail: props.alarmEmail }),
    denialsAlarmThreshold: positive('denialsAlarmThreshold', props.denialsAlarmThreshold, 50),
    issuerErrorsAlarmThreshold: positive('issuerErrorsAlarmThreshold', props.issuerErrorsAlarmThreshold, 1),
    api5xxAlarmThreshold: positive('api5xxAlarmThreshold', props.api5xxAlarmThreshold, 5),
    upstreamSecretPrefix,
    ...(props.upstreamSecretsKeyArn !== undefined && { upstreamSecretsKeyArn: props.upstreamSecretsKeyArn }),
    brokerTimeout,
    ...(brokerReservedConcurrency !== false && { brokerReservedConcurrency }),
  };
}

/** Which optional functions to wire: the explicit choice, else whether the file exists. */
function wiredFunctions(lambdasDir: string, choice: Partial<Record<OptionalFunctionName, boolean>>): Record<OptionalFunctionName, boolean> {
  const result = {} as Record<OptionalFunctionName, boolean>;
  for (const [name, file] of Object.entries(OPTIONAL_FUNCTIONS) as [OptionalFunctionName, string][]) {
    const exists = existsSync(join(lambdasDir, file));
    const wanted = choice[name];
    if (wanted === true && !exists) throw new Error(`LanyardIssuer: functions.${name} is on but ${join(lambdasDir, file)} does not exist`);
    result[name] = wanted ?? exists;
  }
  return result;
}

function functionId(name: string): string {
  return `${name[0]?.toUpperCase() ?? ''}${name.slice(1)}Function`;
}

/** A cdk-nag acknowledgment; the reason is required and shown in reviews of the template. */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * What every Lanyard function's role holds and IAM cannot narrow: the basic execution role
 * (its own log group is created explicitly; the managed policy is how Lambda is granted
 * CloudWatch Logs) and the X-Ray write actions, which have no resource-level permissions.
 */
function acknowledgeFunctionBaseline(fn: LanyardFunction, starReason: string): void {
  const role = fn.role;
  if (role === undefined) return;
  acknowledge(
    role,
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    'AWSLambdaBasicExecutionRole grants only logs:CreateLogGroup/CreateLogStream/PutLogEvents; the function writes to its own retained log group',
  );
  const policy = role.node.tryFindChild('DefaultPolicy');
  if (policy) {
    acknowledge(policy, 'AwsSolutions-IAM5[Resource::*]', starReason);
  }
}

/**
 * Acknowledges one wildcard resource of a function's policy, by the exact finding id cdk-nag
 * reports (`AwsSolutions-IAM5[Resource::<the ARN, tokens flattened>]`), so any other wildcard
 * added later still fails the synth.
 */
function acknowledgeWildcard(fn: LanyardFunction, resource: string, reason: string): void {
  const policy = fn.role?.node.tryFindChild('DefaultPolicy');
  if (policy === undefined) throw new Error(`LanyardIssuer: ${fn.node.path} has no default policy to acknowledge ${resource} on`);
  acknowledge(policy, `AwsSolutions-IAM5[Resource::${flattenReference(Stack.of(fn).resolve(resource))}]`, reason);
}

/** The rendering cdk-nag uses for finding ids: `{Ref: X}` → `<X>`, `{Fn::GetAtt: [X, Y]}` → `<X.Y>`, joins concatenated. */
export function flattenReference(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) {
    const node = value as Record<string, unknown>;
    const join = node['Fn::Join'] as [string, unknown[]] | undefined;
    if (join) return join[1].map(flattenReference).join(join[0]);
    const getAtt = node['Fn::GetAtt'] as [string, string] | undefined;
    if (getAtt) return `<${getAtt[0]}.${getAtt[1]}>`;
    if ('Ref' in node) return `<${flattenReference(node['Ref'])}>`;
  }
  return JSON.stringify(value);
}
