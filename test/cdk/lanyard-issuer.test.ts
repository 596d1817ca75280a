/**
 * The construct with every handler present (stand-ins under fixtures/lambdas), STS on and a
 * customer-managed table key: the wiring and grants of the functions that other engineers are
 * still writing. One synth for the whole file; the stand-ins bundle in milliseconds.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { INSTANCE_CREDENTIALS_PATH, LanyardIssuer, SIGNING_KEY_TAG } from '../../cdk/lanyard-issuer.ts';
import { PUBLISHED_RECORD_FILTERS } from '../../lambdas/publish-events.ts';
import type { LanyardIssuerProps } from '../../cdk/lanyard-issuer.ts';
import { acknowledgments, actionsOf, functionId, functionProps, grantsOf, statementsOf } from './template-helpers.ts';

const FIXTURES = 'test/cdk/fixtures/lambdas';
const TOOL_ROLES = ['arn:aws:iam::123456789012:role/tickets-tool', 'arn:aws:iam::123456789012:role/lanyard-tools/*'];
const KEY_FAMILY = 'arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*';
const OWN_KEYS = { StringEquals: { [`aws:ResourceTag/${SIGNING_KEY_TAG}`]: 'alias/lanyard/Test/signing' } };
const BROKER = 'ANY /v1/proxy/{provider}/{path+}';
const UPSTREAM_SECRETS = 'arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:lanyard/Test/upstream/*';
const SECRETS_KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const VIA_SECRETS_MANAGER = { StringEquals: { 'kms:ViaService': { 'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]] } } };

function newStack(): Stack {
  return new Stack(new App(), 'Test');
}

describe('Construct: LanyardIssuer', () => {
  let stack: Stack;
  let template: Template;

  beforeAll(() => {
    stack = newStack();
    new LanyardIssuer(stack, 'Issuer', {
      lambdasDir: FIXTURES,
      stsRoleArns: TOOL_ROLES,
      tableEncryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      eventArchiveRetention: Duration.days(30),
      rotationPeriod: Duration.days(14),
      alarmEmail: 'oncall@example.com',
    });
    template = Template.fromStack(stack);
  });

  describe('Optional functions', () => {
    it('routes revocations, introspection and spawn behind the IAM authorizer', () => {
      for (const routeKey of ['GET /v1/revocations', 'POST /v1/introspect', 'POST /v1/spawn', 'POST /v1/credentials']) {
        template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: routeKey, AuthorizationType: 'AWS_IAM' });
      }
      // The broker is the tenth function, with a function URL instead of a route.
      template.resourceCountIs('AWS::ApiGatewayV2::Route', 7);
      template.resourceCountIs('AWS::Lambda::Function', 10);
    });

    it('routes POST /v1/instance/credentials to the issue function with no gateway authorizer, for refresh tokens', () => {
      // Prepare
      const routes = template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: `POST ${INSTANCE_CREDENTIALS_PATH}` } });
      const integrations = template.findResources('AWS::ApiGatewayV2::Integration');
      const issueFunction = functionId(template, 'POST /v1/credentials');
      const targetOf = (routeKey: string): string => {
        const [route] = Object.values(template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: routeKey } }));
        const integrationId = (route!['Properties']['Target'] as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1].map((part) => (part as { Ref?: string }).Ref).find((ref) => ref !== undefined);
        return (integrations[integrationId!]!['Properties']['IntegrationUri'] as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      };

      // Assess
      expect(Object.values(routes)).toHaveLength(1);
      const properties = Object.values(routes)[0]!['Properties'] as Record<string, unknown>;
      expect(properties['AuthorizationType']).toBe('NONE');
      expect(properties['AuthorizerId']).toBeUndefined();
      expect(targetOf(`POST ${INSTANCE_CREDENTIALS_PATH}`)).toBe(issueFunction);
      expect(targetOf('POST /v1/credentials')).toBe(issueFunction);
      // API Gateway may invoke the function from this route (its own permission, scoped to the route).
      template.hasResourceProperties('AWS::Lambda::Permission', {
        FunctionName: { 'Fn::GetAtt': [issueFunction, 'Arn'] },
        SourceArn: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([`/*/*${INSTANCE_CREDENTIALS_PATH}`])] }),
      });
      // Refusals on it count as denials, like those of the IAM routes.
      template.hasResourceProperties('AWS::Logs::MetricFilter', { FilterPattern: Match.stringLikeRegexp(`POST ${INSTANCE_CREDENTIALS_PATH}`) });
    });

    it('feeds the publisher from the table stream in batches of 100, bisecting, reporting item failures, with an SQS DLQ', () => {
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        BatchSize: 100,
        BisectBatchOnFunctionError: true,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        MaximumRetryAttempts: 10,
        ParallelizationFactor: 1,
        StartingPosition: 'TRIM_HORIZON',
        EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IssuerTable'), 'StreamArn'] },
        DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IssuerPublisherDlq'), 'Arn'] } } },
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateNumberOfMessagesVisible', Threshold: 1 });
    });

    it('invokes the publisher only for the stream records that can become events (Lambda event filtering)', () => {
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        FilterCriteria: { Filters: PUBLISHED_RECORD_FILTERS.map((pattern) => ({ Pattern: JSON.stringify(pattern) })) },
      });
    });

    it('alarms when the publisher falls five minutes behind the stream (IteratorAge)', () => {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'IteratorAge',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionId(template, 'DynamoDB Streams to EventBridge') } }],
        Statistic: 'Maximum',
        Threshold: 300_000,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
    });

    it('invokes the rotation function on the configured rate with EventBridge Scheduler', () => {
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpression: 'rate(14 days)',
        State: 'ENABLED',
        Target: Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IssuerRotateSigningKeyFunction'), 'Arn'] } }),
      });
      const env = (functionProps(template, 'Signing-key rotation')['Environment'] as { Variables: Record<string, unknown> }).Variables;
      expect(env).toMatchObject({ LANYARD_SIGNING_KEY_TAG: SIGNING_KEY_TAG, LANYARD_MAX_CREDENTIAL_TTL_SECONDS: '43200', LANYARD_KEY_COOL_DOWN_SECONDS: '900' });
      // The key CloudFormation created: rotation withdraws it, never deletes it.
      expect(env['LANYARD_RETAINED_KEY_IDS']).toEqual({ Ref: expect.stringMatching(/^IssuerSigningKey[A-Z0-9]/) as unknown });
      expect(env['LANYARD_EVENT_BUS']).toEqual({ Ref: expect.stringMatching(/^IssuerEventBus/) as unknown });
    });

    it('keeps the archive for the configured days and encrypts the table with its own key', () => {
      template.hasResourceProperties('AWS::Events::Archive', { RetentionDays: 30 });
      template.hasResourceProperties('AWS::DynamoDB::Table', { SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: Match.anyValue() } });
      template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
    });
  });

  describe('IAM', () => {
    it('turns STS on and lets the issue and spawn functions assume only the listed tool roles', () => {
      for (const prefix of ['POST /v1/credentials', 'POST /v1/spawn']) {
        const statements = statementsOf(template, prefix);
        expect(grantsOf(statements, 'sts:AssumeRole')).toEqual([{ resources: TOOL_ROLES }]);
        expect(actionsOf(statements)).toEqual(expect.arrayContaining(['sts:TagSession', 'sts:SetSourceIdentity', 'kms:Sign']));
      }
      expect(functionProps(template, 'POST /v1/credentials')['Environment']).toMatchObject({ Variables: { LANYARD_STS: 'on' } });
      expect(actionsOf(statementsOf(template, 'GET /.well-known/jwks.json')).some((a) => a.startsWith('sts:'))).toBe(false);
    });

    it('lets no function but rotation list the account’s keys: the signers read the registry item', () => {
      for (const prefix of ['POST /v1/credentials', 'POST /v1/spawn', 'GET /.well-known/jwks.json', 'POST /v1/introspect', BROKER, 'GET /v1/revocations']) {
        const actions = actionsOf(statementsOf(template, prefix));
        expect(actions, prefix).not.toContain('kms:ListKeys');
        expect(actions, prefix).not.toContain('kms:ListResourceTags');
      }
      // The JWKS function reads the table for the registry item only, and writes nothing.
      const jwks = statementsOf(template, 'GET /.well-known/jwks.json');
      expect(grantsOf(jwks, 'dynamodb:GetItem')).toEqual([
        { resources: [expect.stringMatching(/^<IssuerTable[A-Za-z0-9]*\.Arn>$/) as unknown], condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['SIGNING_KEYS'] } } },
      ]);
      expect(actionsOf(jwks).filter((a) => a.startsWith('dynamodb:'))).toEqual(['dynamodb:GetItem']);
    });

    it('lets the admin function write only the revocation policy of the listed tool roles, and count their inline policies (STS session revocation)', () => {
      const statements = statementsOf(template, 'Admin commands');
      expect(grantsOf(statements, 'iam:PutRolePolicy')).toEqual([{ resources: TOOL_ROLES }]);
      expect(grantsOf(statements, 'iam:GetRolePolicy')).toEqual([{ resources: TOOL_ROLES }]);
      expect(grantsOf(statements, 'iam:ListRolePolicies')).toEqual([{ resources: TOOL_ROLES }]);
      // Only the admin function revokes STS sessions: the issue function cannot write tool roles.
      expect(functionProps(template, 'Admin commands')['Environment']).toMatchObject({ Variables: { LANYARD_STS: 'on', LANYARD_STS_REVOKE: 'on' } });
      expect((functionProps(template, 'POST /v1/credentials')['Environment'] as { Variables: Record<string, string> }).Variables).not.toHaveProperty('LANYARD_STS_REVOKE');
      expect(actionsOf(statementsOf(template, 'POST /v1/credentials')).some((a) => a.startsWith('iam:'))).toBe(false);
    });

    it('lets revocations read the table and nothing else', () => {
      const actions = actionsOf(statementsOf(template, 'GET /v1/revocations')).filter((a) => !a.startsWith('xray:'));
      expect(actions).toEqual(['dynamodb:GetItem', 'dynamodb:Query', 'kms:Decrypt', 'kms:DescribeKey']);
    });

    it('lets introspection read the table and public keys, never sign', () => {
      const actions = actionsOf(statementsOf(template, 'POST /v1/introspect'));
      expect(actions).toEqual(expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:Query', 'kms:GetPublicKey']));
      expect(actions).not.toContain('kms:Sign');
      expect(actions).not.toContain('dynamodb:PutItem');
    });

    it('lets the publisher read the stream and put events on the Lanyard bus only', () => {
      const statements = statementsOf(template, 'DynamoDB Streams to EventBridge');
      expect(grantsOf(statements, 'events:PutEvents')).toEqual([{ resources: [expect.stringMatching(/^<IssuerEventBus.*\.Arn>$/) as unknown] }]);
      expect(actionsOf(statements)).toEqual(expect.arrayContaining(['dynamodb:GetRecords', 'dynamodb:GetShardIterator', 'sqs:SendMessage']));
      expect(actionsOf(statements)).not.toContain('dynamodb:PutItem');
      expect(actionsOf(statements).some((a) => a.startsWith('kms:Sign'))).toBe(false);
    });

    it('lets rotation manage only keys of its family, create keys only into it, and move only its alias', () => {
      const statements = statementsOf(template, 'Signing-key rotation');
      // The table's own key (DescribeKey for the decision-record writes) is not a signing key.
      const signingKeyGrants = (action: string) => grantsOf(statements, action).filter((g) => !g.resources.every((r) => r.startsWith('<IssuerTableKey')));
      for (const action of ['kms:ScheduleKeyDeletion', 'kms:UntagResource', 'kms:GetPublicKey', 'kms:DescribeKey']) {
        expect(signingKeyGrants(action), action).toEqual([{ resources: [KEY_FAMILY], condition: OWN_KEYS }]);
      }
      // Finding the family: every key is listed and its tags read (a foreign key's tags included).
      expect(grantsOf(statements, 'kms:ListKeys')).toEqual([{ resources: ['*'] }]);
      expect(grantsOf(statements, 'kms:ListResourceTags')).toEqual([{ resources: [KEY_FAMILY] }]);
      expect(grantsOf(statements, 'kms:CreateKey')).toEqual([
        {
          resources: ['*'],
          condition: {
            StringEquals: { [`aws:RequestTag/${SIGNING_KEY_TAG}`]: 'alias/lanyard/Test/signing', 'kms:KeySpec': 'ECC_NIST_P256', 'kms:KeyUsage': 'SIGN_VERIFY' },
            'ForAllValues:StringLike': { 'aws:TagKeys': ['lanyard:*'] },
          },
        },
      ]);
      expect(grantsOf(statements, 'kms:UpdateAlias').flatMap((g) => g.resources)).toEqual([
        KEY_FAMILY,
        'arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:alias/lanyard/Test/signing',
      ]);
      expect(actionsOf(statements)).toContain('events:PutEvents');
      expect(actionsOf(statements)).not.toContain('kms:Sign');
    });

    it('lets rotation write its key_rotated decision records and read the registry item, and nothing else of DynamoDB', () => {
      // Prepare
      const statements = statementsOf(template, 'Signing-key rotation');

      // Assess
      const dynamo = actionsOf(statements).filter((a) => a.startsWith('dynamodb:'));
      expect(dynamo).toEqual(['dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:PutItem']);
      const table = [expect.stringMatching(/^<IssuerTable[A-Za-z0-9]*\.Arn>$/) as unknown];
      expect(grantsOf(statements, 'dynamodb:PutItem')).toEqual([{ resources: table }]);
      expect(grantsOf(statements, 'dynamodb:GetItem')).toEqual([{ resources: table, condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['SIGNING_KEYS'] } } }]);
      expect(grantsOf(statements, 'dynamodb:BatchWriteItem')).toEqual([{ resources: table }]);
      // The table is encrypted with its own key here: the writes need it, and only it.
      expect(grantsOf(statements, 'kms:GenerateDataKey')).toEqual([{ resources: [expect.stringMatching(/^<IssuerTableKey[A-Za-z0-9]*\.Arn>$/) as unknown] }]);
      const env = (functionProps(template, 'Signing-key rotation')['Environment'] as { Variables: Record<string, unknown> }).Variables;
      expect(env['LANYARD_TABLE']).toEqual({ Ref: expect.stringMatching(/^IssuerTable/) as unknown });
    });

    it('gives the scheduler permission to invoke the rotation function only', () => {
      const roles = template.findResources('AWS::IAM::Policy', {
        Properties: { PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 'lambda:InvokeFunction' })]) } },
      });
      expect(Object.keys(roles)).toHaveLength(1);
    });
  });

  describe('Broker', () => {
    it('serves the broker on a function URL with auth NONE and response streaming, and on no API route', () => {
      // Prepare
      const broker = functionId(template, BROKER);

      // Assess
      template.resourceCountIs('AWS::Lambda::Url', 1);
      template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE', InvokeMode: 'RESPONSE_STREAM', TargetFunctionArn: { 'Fn::GetAtt': [broker, 'Arn'] } });
      // Anyone may invoke it, but only through its function URL.
      template.hasResourceProperties('AWS::Lambda::Permission', { Action: 'lambda:InvokeFunctionUrl', FunctionName: { 'Fn::GetAtt': [broker, 'Arn'] }, FunctionUrlAuthType: 'NONE', Principal: '*' });
      const invokes = Object.values(template.findResources('AWS::Lambda::Permission', { Properties: { FunctionName: { 'Fn::GetAtt': [broker, 'Arn'] }, Action: 'lambda:InvokeFunction' } }));
      expect(invokes.map((p) => p['Properties']['InvokedViaFunctionUrl'])).toEqual([true]);
      const routes = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((r) => String(r['Properties']['RouteKey']));
      expect(routes.some((r) => r.includes('/v1/proxy'))).toBe(false);
    });

    it('gives the broker five minutes, the runtime environment, the secret prefix and no STS', () => {
      const props = functionProps(template, BROKER);
      expect(props['Timeout']).toBe(300);
      const env = (props['Environment'] as { Variables: Record<string, unknown> }).Variables;
      expect(env).toMatchObject({ LANYARD_SIGNING_KEY: 'alias/lanyard/Test/signing', LANYARD_POLICY_TTL_MS: '1000', LANYARD_SECRET_PREFIX: 'lanyard/Test/upstream/', LANYARD_STS: 'off' });
      expect(env['LANYARD_TABLE']).toEqual({ Ref: expect.stringMatching(/^IssuerTable/) as unknown });
      expect(env['LANYARD_ISSUER']).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^IssuerHttpApi/) as unknown, 'ApiEndpoint'] });
      expect(env['LANYARD_SECRETS_KMS_KEY']).toBeUndefined();
    });

    it('lets the broker read upstream secrets under the prefix only, and never write one', () => {
      const statements = statementsOf(template, BROKER);
      expect(grantsOf(statements, 'secretsmanager:GetSecretValue')).toEqual([{ resources: [UPSTREAM_SECRETS] }]);
      const secrets = actionsOf(statements).filter((a) => a.startsWith('secretsmanager:'));
      expect(secrets).toEqual(['secretsmanager:GetSecretValue']);
      expect(secrets).not.toContain('secretsmanager:PutSecretValue');
    });

    it('lets the broker verify with the public keys, count quotas and write audit records, never sign', () => {
      const statements = statementsOf(template, BROKER);
      const actions = actionsOf(statements);
      expect(actions.filter((a) => a.startsWith('dynamodb:'))).toEqual(['dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem']);
      expect(grantsOf(statements, 'kms:GetPublicKey')).toEqual([{ resources: [KEY_FAMILY], condition: OWN_KEYS }]);
      expect(actions).not.toContain('kms:ListKeys');
      expect(actions).not.toContain('kms:Sign');
      expect(actions.some((a) => a.startsWith('sts:'))).toBe(false);
      expect(actions.some((a) => a.startsWith('iam:'))).toBe(false);
    });

    it('lets the admin function create and put upstream secrets under the prefix only, and never read one back', () => {
      const statements = statementsOf(template, 'Admin commands');
      for (const action of ['secretsmanager:CreateSecret', 'secretsmanager:PutSecretValue', 'secretsmanager:TagResource', 'secretsmanager:DescribeSecret']) {
        expect(grantsOf(statements, action), action).toEqual([{ resources: [UPSTREAM_SECRETS] }]);
      }
      expect(actionsOf(statements)).not.toContain('secretsmanager:GetSecretValue');
      const env = (functionProps(template, 'Admin commands')['Environment'] as { Variables: Record<string, unknown> }).Variables;
      expect(env['LANYARD_SECRET_PREFIX']).toBe('lanyard/Test/upstream/');
    });

    it('counts KMS throttling from the runtime’s marked log lines of every routed function, and alarms on the first', () => {
      // Prepare
      const throttleFilters = Object.values(template.findResources('AWS::Logs::MetricFilter', { Properties: { FilterPattern: '{ $.kmsThrottled IS TRUE }' } }));

      // Assess: one per routed function (issue, jwks, metadata, admin, revocations, introspect, spawn, broker).
      expect(throttleFilters).toHaveLength(8);
      for (const filter of throttleFilters) expect(filter['Properties']['MetricTransformations']).toEqual([{ MetricNamespace: 'Lanyard', MetricName: 'KmsThrottles', MetricValue: '1' }]);
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { Namespace: 'Lanyard', MetricName: 'KmsThrottles', Threshold: 1, Statistic: 'Sum' });
    });

    it('counts 429 answers on the credential routes as denials, like 401 and 403', () => {
      template.hasResourceProperties('AWS::Logs::MetricFilter', {
        MetricTransformations: [Match.objectLike({ MetricName: 'Denials' })],
        FilterPattern: Match.stringLikeRegexp('\\$\\.status = "401".*\\$\\.status = "403".*\\$\\.status = "429"'),
      });
    });

    it('counts the broker in the issuer errors, and alarms on its function URL 5xx', () => {
      // Prepare
      const broker = functionId(template, BROKER);
      const brokerLogs = (functionProps(template, BROKER)['LoggingConfig'] as { LogGroup: { Ref: string } }).LogGroup.Ref;

      // Assess
      template.hasResourceProperties('AWS::Logs::MetricFilter', { LogGroupName: { Ref: brokerLogs }, FilterPattern: '{ $.level = "ERROR" }' });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'Url5xxCount',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: broker } }],
        Statistic: 'Sum',
        Threshold: 5,
      });
    });
  });

  describe('Broker with a customer key for the secrets and a custom prefix', () => {
    let keyed: Template;

    beforeAll(() => {
      const scope = newStack();
      new LanyardIssuer(scope, 'Issuer', {
        lambdasDir: FIXTURES,
        upstreamSecretPrefix: 'teams/payments/',
        upstreamSecretsKeyArn: SECRETS_KEY,
        brokerTimeout: Duration.minutes(2),
        brokerReservedConcurrency: 20,
      });
      keyed = Template.fromStack(scope);
    });

    it('scopes both roles to the custom prefix and hands the key to the vault', () => {
      const prefixed = 'arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:teams/payments/*';
      expect(grantsOf(statementsOf(keyed, BROKER), 'secretsmanager:GetSecretValue')).toEqual([{ resources: [prefixed] }]);
      expect(grantsOf(statementsOf(keyed, 'Admin commands'), 'secretsmanager:PutSecretValue')).toEqual([{ resources: [prefixed] }]);
      for (const prefix of [BROKER, 'Admin commands']) {
        const env = (functionProps(keyed, prefix)['Environment'] as { Variables: Record<string, unknown> }).Variables;
        expect(env, prefix).toMatchObject({ LANYARD_SECRET_PREFIX: 'teams/payments/', LANYARD_SECRETS_KMS_KEY: SECRETS_KEY });
      }
      expect(functionProps(keyed, BROKER)).toMatchObject({ Timeout: 120, ReservedConcurrentExecutions: 20 });
    });

    it('lets the broker decrypt and the admin function generate data keys with it, through Secrets Manager only', () => {
      expect(grantsOf(statementsOf(keyed, BROKER), 'kms:Decrypt')).toEqual([{ resources: [SECRETS_KEY], condition: VIA_SECRETS_MANAGER }]);
      expect(actionsOf(statementsOf(keyed, BROKER))).not.toContain('kms:GenerateDataKey');
      const admin = statementsOf(keyed, 'Admin commands');
      expect(grantsOf(admin, 'kms:GenerateDataKey')).toEqual([{ resources: [SECRETS_KEY], condition: VIA_SECRETS_MANAGER }]);
      expect(grantsOf(admin, 'kms:Decrypt')).toEqual([{ resources: [SECRETS_KEY], condition: VIA_SECRETS_MANAGER }]);
      expect(actionsOf(admin)).not.toContain('kms:Encrypt');
    });
  });

  describe('cdk-nag', () => {
    it('reports no unacknowledged AwsSolutions finding with every function wired', () => {
      const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(stack);
      expect(report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    });

    it('gives every acknowledgment a reason of at least ten characters', () => {
      for (const ack of acknowledgments(stack)) expect(ack.reason.trim().length, `${ack.path} ${ack.id}`).toBeGreaterThanOrEqual(10);
    });

    it('acknowledges the secret prefix wildcard exactly, on the broker and the admin function only', () => {
      const acks = acknowledgments(stack).filter((a) => a.id.endsWith(`AwsSolutions-IAM5[Resource::${UPSTREAM_SECRETS}]`));
      expect(acks.map((a) => a.path).sort()).toEqual(['Test/Issuer/AdminFunction/ServiceRole/DefaultPolicy', 'Test/Issuer/BrokerFunction/ServiceRole/DefaultPolicy']);
      for (const ack of acks) expect(ack.reason).toContain('lanyard/Test/upstream/<provider>');
    });
  });

  describe('Method: constructor', () => {
    const cases: [string, LanyardIssuerProps, RegExp][] = [
      ['a rotation period within max TTL + cool-down', { rotationPeriod: Duration.hours(12) }, /rotationPeriod \(12 hours\) must be longer than maxCredentialTtl \+ jwksCoolDown/],
      ['a cool-down shorter than the JWKS max-age', { jwksCoolDown: Duration.minutes(2) }, /jwksCoolDown must be at least 300 s/],
      ['a tool role that is not a role ARN', { stsRoleArns: ['arn:aws:iam::123456789012:user/bob'] }, /stsRoleArns must be IAM role ARNs/],
      ['an alias outside alias/', { signingKeyAlias: 'lanyard-signing' }, /signingKeyAlias must look like alias\/<name>/],
      ['an AWS-reserved alias', { signingKeyAlias: 'alias/aws/lanyard' }, /not be in alias\/aws\//],
      ['a zero throttle', { throttleRateLimit: 0 }, /throttleRateLimit must be a positive number/],
      ['an issuer that is not https', { issuer: 'http://issuer.example.com' }, /issuer must be an https URL/],
      ['a missing required handler', { lambdasDir: 'test/cdk' }, /handler file .*issue-credential\.ts is missing/],
      ['an optional function turned on without its file', { functions: { spawn: true }, lambdasDir: 'test/cdk/fixtures/required-only' }, /functions\.spawn is on but .*spawn\.ts does not exist/],
      ['the broker turned on without its file', { functions: { broker: true }, lambdasDir: 'test/cdk/fixtures/required-only' }, /functions\.broker is on but .*broker\.ts does not exist/],
      ['an empty secret prefix (every secret of the account)', { upstreamSecretPrefix: '' }, /upstreamSecretPrefix must be a Secrets Manager name prefix ending in \//],
      ['a secret prefix that is not a whole path segment', { upstreamSecretPrefix: 'lanyard' }, /upstreamSecretPrefix must be a Secrets Manager name prefix ending in \//],
      ['a secret prefix with a wildcard', { upstreamSecretPrefix: 'lanyard/*/' }, /upstreamSecretPrefix must be/],
      ['a secrets key given as an alias', { upstreamSecretsKeyArn: 'alias/lanyard-secrets' }, /upstreamSecretsKeyArn must be a KMS key ARN/],
      ['a broker timeout over 15 minutes', { brokerTimeout: Duration.minutes(20) }, /brokerTimeout must be between 10 seconds and 15 minutes/],
      ['a zero reserved concurrency for the broker', { brokerReservedConcurrency: 0 }, /brokerReservedConcurrency must be a positive integer/],
    ];
    it.each(cases)('refuses %s before creating anything', (_name, props, message) => {
      const scope = newStack();
      expect(() => new LanyardIssuer(scope, 'Issuer', props)).toThrow(message);
      expect(scope.node.findAll().filter((c) => c !== scope)).toHaveLength(0);
    });
  });
});
