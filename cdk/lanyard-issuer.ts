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
import { Stack } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { INSTANCE_CREDENTIALS_PATH } from '../lambdas/issue-credential.ts';
import type { LanyardFunction } from './lanyard-function.ts';
import { createAlarms, createAlarmTopic } from './issuer/alarms.ts';
import { createApi } from './issuer/api.ts';
import { createBroker } from './issuer/broker.ts';
import { createEventBus } from './issuer/events.ts';
import { functionMaker, lazyOnOff, runtimeEnvironment } from './issuer/functions.ts';
import type { MakeFunction } from './issuer/functions.ts';
import { DYNAMODB_WRITE, IssuerGrants, secretsEnvironment, STS_ASSUME, STS_REVOKE } from './issuer/grants.ts';
import { acknowledgeFunctionBaseline } from './issuer/nag.ts';
import { createPublisherDlq, wirePublisher } from './issuer/publisher.ts';
import { OPTIONAL_FUNCTIONS, REQUIRED_FUNCTIONS, resolveProps, wiredFunctions } from './issuer/props.ts';
import type { LanyardIssuerProps, OptionalFunctionName, ResolvedProps } from './issuer/props.ts';
import { createRotationSchedule, rotationEnvironment } from './issuer/rotation.ts';
import { createSigningKey } from './issuer/signing-key.ts';
import type { SigningKeyFamily } from './issuer/signing-key.ts';
import { createTable } from './issuer/table.ts';

// The construct's public surface, wherever each part now lives (cdk/issuer/).
export { PUBLISHER_ITERATOR_AGE_ALARM } from './issuer/alarms.ts';
export { EVENT_SOURCE } from './issuer/events.ts';
export { acknowledge, flattenReference } from './issuer/nag.ts';
export { DEFAULT_BROKER_RESERVED_CONCURRENCY, defaultSigningKeyAlias, defaultUpstreamSecretPrefix, OPTIONAL_FUNCTIONS, REQUIRED_FUNCTIONS } from './issuer/props.ts';
export type { LanyardIssuerProps, OptionalFunctionName } from './issuer/props.ts';
export { SIGNING_KEY_TAG } from './issuer/signing-key.ts';
export { STACK_STREAM_VIEW_TYPE } from './issuer/table.ts';

/** The route agent instances refresh on (no gateway authorizer; the function accepts only a refresh token). */
export { INSTANCE_CREDENTIALS_PATH };

/** What the constructor hands the steps that wire functions. */
interface Wiring {
  readonly config: ResolvedProps;
  readonly present: Record<OptionalFunctionName, boolean>;
  readonly make: MakeFunction;
  readonly grants: IssuerGrants;
  readonly family: SigningKeyFamily;
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
    this.functions = {};

    this.table = createTable(this, config, props.tableName);
    const family = createSigningKey(this, config);
    this.signingKey = family.key;
    this.signingKeyAlias = family.alias;
    const bus = createEventBus(this, config, props.eventBusName);
    this.eventBus = bus.bus;
    this.eventArchive = bus.archive;
    const api = createApi(this, config);
    this.httpApi = api.httpApi;
    this.accessLogs = api.accessLogs;
    this.stage = api.stage;
    this.apiUrl = api.apiUrl;
    this.jwksUrl = api.jwksUrl;

    const runtimeEnv = runtimeEnvironment(this.table, config, this.apiUrl, () => this.stsOn(config));
    const wiring: Wiring = { config, present, make: functionMaker(this, config, runtimeEnv, this.functions), grants: new IssuerGrants(this.table, family, config), family };
    const { make, grants } = wiring;

    // POST /v1/credentials: reads policy, writes decision records, signs, may assume tool roles.
    this.issueFunction = make('issueCredential', REQUIRED_FUNCTIONS.issueCredential, 'POST /v1/credentials: issue a credential for one lane');
    grants.readTable(this.issueFunction);
    // UpdateItem: an instance's refresh spends its token in one conditional update, and a reused
    // token revokes the instance (issuance block and revocation feed are conditional updates).
    grants.writeTable(this.issueFunction, ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:BatchWriteItem']);
    grants.sign(this.issueFunction);
    grants.assumeToolRoles(this.issueFunction);
    api.route('/v1/credentials', apigwv2.HttpMethod.POST, this.issueFunction, 'iam');
    // Agent instances refresh with their refresh token (`Authorization: Bearer lr_…`), which the
    // IAM authorizer would refuse before the function runs: a route without a gateway authorizer,
    // where the function accepts only a refresh token. It shares the stage throttling.
    api.route(INSTANCE_CREDENTIALS_PATH, apigwv2.HttpMethod.POST, this.issueFunction, 'refresh-token');

    this.jwksFunction = make('jwks', REQUIRED_FUNCTIONS.jwks, 'GET /.well-known/jwks.json: published signing keys');
    grants.readPublicKeys(this.jwksFunction);
    grants.readKeyRegistry(this.jwksFunction);
    api.route('/.well-known/jwks.json', apigwv2.HttpMethod.GET, this.jwksFunction, 'public');

    this.metadataFunction = make('metadata', REQUIRED_FUNCTIONS.metadata, 'GET /.well-known/oauth-authorization-server: RFC 8414 metadata');
    api.route('/.well-known/oauth-authorization-server', apigwv2.HttpMethod.GET, this.metadataFunction, 'public');

    // The admin function has no route: IAM on lambda:InvokeFunction decides who may run commands.
    // Only the admin function writes tool-role policies, so only it revokes STS sessions (LANYARD_STS_REVOKE).
    this.adminFunction = make('admin', REQUIRED_FUNCTIONS.admin, 'Admin commands (revoke, reinstate, apply policy); invoked directly', {
      ...secretsEnvironment(config),
      LANYARD_STS_REVOKE: lazyOnOff(() => this.stsOn(config)),
    });
    grants.readTable(this.adminFunction);
    grants.writeTable(this.adminFunction, DYNAMODB_WRITE);
    // `upstream.secret.set` writes the broker's upstream secrets; nothing reads them back (write-only by contract).
    grants.writeSecrets(this.adminFunction);
    grants.revokeStsSessions(this.adminFunction);

    if (present.revocations) {
      this.revocationsFunction = make('revocations', OPTIONAL_FUNCTIONS.revocations, 'GET /v1/revocations: the revocation feed');
      grants.readTable(this.revocationsFunction);
      api.route('/v1/revocations', apigwv2.HttpMethod.GET, this.revocationsFunction, 'iam');
    }
    if (present.introspect) {
      this.introspectFunction = make('introspect', OPTIONAL_FUNCTIONS.introspect, 'POST /v1/introspect: RFC 7662 token introspection');
      grants.readTable(this.introspectFunction);
      grants.readPublicKeys(this.introspectFunction);
      api.route('/v1/introspect', apigwv2.HttpMethod.POST, this.introspectFunction, 'iam');
    }
    if (present.spawn) {
      // Spawning mints the instance's first credentials: the same signing and STS rights as issuing.
      this.spawnFunction = make('spawn', OPTIONAL_FUNCTIONS.spawn, 'POST /v1/spawn: start an agent instance with its credentials');
      grants.readTable(this.spawnFunction);
      grants.writeTable(this.spawnFunction, DYNAMODB_WRITE);
      grants.sign(this.spawnFunction);
      grants.assumeToolRoles(this.spawnFunction);
      api.route('/v1/spawn', apigwv2.HttpMethod.POST, this.spawnFunction, 'iam');
    }
    if (present.publishEvents) {
      this.publisherDlq = createPublisherDlq(this);
      this.publishEventsFunction = make('publishEvents', OPTIONAL_FUNCTIONS.publishEvents, 'DynamoDB Streams to EventBridge: events from committed state', {
        LANYARD_EVENT_BUS: this.eventBus.eventBusName,
      });
      wirePublisher(this.publishEventsFunction, this.table, this.eventBus, this.publisherDlq);
    }
    if (present.rotateSigningKey) {
      const rotation = this.wireRotation(wiring);
      this.rotateSigningKeyFunction = rotation.fn;
      this.rotationSchedule = rotation.schedule;
    }
    if (present.broker) {
      const broker = createBroker(make, grants, config);
      this.brokerFunction = broker.fn;
      this.brokerFunctionUrl = broker.url;
      this.brokerUrl = broker.url.url;
    }

    this.alarmTopic = createAlarmTopic(this, config);
    this.alarms = createAlarms(
      this,
      this.alarmTopic,
      {
        accessLogs: this.accessLogs,
        httpApi: this.httpApi,
        routed: [this.issueFunction, this.jwksFunction, this.metadataFunction, this.revocationsFunction, this.introspectFunction, this.spawnFunction, this.adminFunction, this.brokerFunction],
        functions: this.functions,
        brokerFunction: this.brokerFunction,
        publishEventsFunction: this.publishEventsFunction,
        publisherDlq: this.publisherDlq,
      },
      config,
    );

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
    this.adminFunction.addToRolePolicy(new iam.PolicyStatement({ actions: STS_REVOKE, resources: [role.roleArn] }));
    this.trustedToolRoles.push(role);
  }

  /** STS is on when tool roles are listed or given to `trustToolRole` (read at synthesis, so later calls count). */
  private stsOn(config: ResolvedProps): boolean {
    return config.stsRoleArns.length > 0 || this.trustedToolRoles.length > 0;
  }

  /** The rotation function: its KMS rights over the family, its audit records and registry item, its events, its schedule. */
  private wireRotation({ config, make, grants, family }: Wiring): { fn: LanyardFunction; schedule: scheduler.Schedule } {
    const fn = make('rotateSigningKey', OPTIONAL_FUNCTIONS.rotateSigningKey, 'Signing-key rotation: stage, activate, retire (EventBridge Scheduler)', rotationEnvironment(config, family, this.eventBus.eventBusName));
    grants.rotateSigningKeys(fn);
    // Its `key_rotated` decision records (docs/domain.md#audit): written through putDecisions, never read;
    // and the signing-key registry item, read and rewritten every run.
    grants.writeTable(fn, ['dynamodb:PutItem', 'dynamodb:BatchWriteItem']);
    grants.readKeyRegistry(fn);
    this.eventBus.grantPutEventsTo(fn);
    return { fn, schedule: createRotationSchedule(this, fn, config) };
  }
}
