/**
 * The deployable app as `cdk synth` builds it from the real lambdas/ and the context defaults:
 * one synth for the whole file (bundling runs esbuild on every handler).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../cdk/app.ts';
import { CONTEXT_DEFAULTS } from '../../cdk/context.ts';
import { OPTIONAL_FUNCTIONS, SIGNING_KEY_TAG } from '../../cdk/lanyard-issuer.ts';
import { PROJECT_ROOT } from '../../cdk/lanyard-function.ts';
import type { LanyardStack } from '../../cdk/lanyard-stack.ts';
import { INDEXES, TTL_ATTRIBUTE } from '../../shared/adapters/dynamodb/table.ts';
import { acknowledgments, actionsOf, functionProps, grantsOf, statementsOf } from './template-helpers.ts';

const KEY_FAMILY = 'arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*';
const BROKER = 'ANY /v1/proxy/{provider}/{path+}';
const UPSTREAM_SECRETS = 'arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:lanyard/Lanyard/upstream/*';
const hasHandler = (file: string) => readdirSync(join(PROJECT_ROOT, 'lambdas')).includes(file);
const run = promisify(execFile);
/**
 * Bundling every handler with esbuild takes about 12 s alone, and the synth child process about
 * 15 s; a loaded machine takes many times that. These bound a hang, not speed.
 */
const BUNDLING_MS = 600_000;
const SYNTH_MS = 600_000;

describe('Construct: LanyardIssuer', () => {
  let stack: LanyardStack;
  let template: Template;

  beforeAll(() => {
    // Prepare: the app exactly as cdk.json runs it, context defaults only.
    ({ stack } = createApp(new App()));
    template = Template.fromStack(stack);
  }, BUNDLING_MS);

  describe('Resources', () => {
    it('creates the single table with on-demand billing, PITR, TTL, a stream with old images and SSE, retained', () => {
      template.hasResource('AWS::DynamoDB::Table', {
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
        Properties: Match.objectLike({
          BillingMode: 'PAY_PER_REQUEST',
          KeySchema: [
            { AttributeName: 'PK', KeyType: 'HASH' },
            { AttributeName: 'SK', KeyType: 'RANGE' },
          ],
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
          StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
          SSESpecification: { SSEEnabled: true },
          DeletionProtectionEnabled: true,
          GlobalSecondaryIndexes: Object.values(INDEXES).map((index) =>
            Match.objectLike({
              IndexName: index.indexName,
              KeySchema: [
                { AttributeName: index.partitionKey, KeyType: 'HASH' },
                { AttributeName: index.sortKey, KeyType: 'RANGE' },
              ],
              Projection: { ProjectionType: 'ALL' },
            }),
          ),
        }),
      });
    });

    it('creates a P-256 SIGN_VERIFY signing key, tagged into its family, behind alias/lanyard/Lanyard/signing', () => {
      template.hasResource('AWS::KMS::Key', {
        DeletionPolicy: 'Retain',
        Properties: Match.objectLike({
          KeySpec: 'ECC_NIST_P256',
          KeyUsage: 'SIGN_VERIFY',
          PendingWindowInDays: 30,
          Tags: Match.arrayWith([{ Key: SIGNING_KEY_TAG, Value: 'alias/lanyard/Lanyard/signing' }]),
        }),
      });
      template.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/lanyard/Lanyard/signing' });
    });

    it('creates the custom event bus and an archive of lanyard events kept 90 days', () => {
      template.resourceCountIs('AWS::Events::EventBus', 1);
      template.hasResourceProperties('AWS::Events::Archive', {
        RetentionDays: 90,
        EventPattern: { source: ['lanyard'] },
      });
    });

    it('routes POST /v1/credentials behind the IAM authorizer and the well-known documents without one', () => {
      template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: 'POST /v1/credentials', AuthorizationType: 'AWS_IAM' });
      template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: 'GET /.well-known/jwks.json', AuthorizationType: 'NONE' });
      template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: 'GET /.well-known/oauth-authorization-server', AuthorizationType: 'NONE' });
      template.hasResourceProperties('AWS::ApiGatewayV2::Integration', { IntegrationType: 'AWS_PROXY', PayloadFormatVersion: '2.0' });
    });

    it('throttles the $default stage and writes JSON access logs', () => {
      template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
        StageName: '$default',
        AutoDeploy: true,
        DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
        AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('"status":"\\$context.status"') },
      });
    });

    it('runs every function on nodejs24.x, arm64, with X-Ray, 512 MB, 10 s (the broker 5 min) and an ESM bundle', () => {
      const functions = Object.values(template.findResources('AWS::Lambda::Function'));
      expect(functions.length).toBeGreaterThanOrEqual(4);
      for (const fn of functions) {
        const broker = String(fn['Properties']['Description']).startsWith(BROKER);
        expect(fn['Properties']).toMatchObject({
          Runtime: 'nodejs24.x',
          Architectures: ['arm64'],
          TracingConfig: { Mode: 'Active' },
          MemorySize: 512,
          // The broker waits on upstream calls (each provider's timeoutMs, one deadline for the whole exchange).
          Timeout: broker ? 300 : 10,
          Handler: 'index.handler',
          LoggingConfig: { LogGroup: { Ref: expect.stringMatching(/Logs/) as unknown } },
        });
      }
    });

    it('gives each function the runtime environment and Powertools variables', () => {
      const env = (functionProps(template, 'POST /v1/credentials')['Environment'] as { Variables: Record<string, unknown> }).Variables;
      expect(env).toMatchObject({
        LANYARD_TABLE: { Ref: expect.stringMatching(/^IssuerTable/) as unknown },
        LANYARD_SIGNING_KEY: 'alias/lanyard/Lanyard/signing',
        LANYARD_PUBLISHED_KEYS: '',
        LANYARD_POLICY_TTL_MS: '1000',
        LANYARD_STS: 'off',
        POWERTOOLS_SERVICE_NAME: 'lanyard',
        POWERTOOLS_METRICS_NAMESPACE: 'Lanyard',
        NODE_OPTIONS: '--enable-source-maps',
      });
      // The issuer is the API endpoint, resolved at deploy time (no cycle: routes depend on functions, not the API).
      expect(env['LANYARD_ISSUER']).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^IssuerHttpApi/) as unknown, 'ApiEndpoint'] });
    });

    it('keeps function and access logs for a month', () => {
      const groups = Object.values(template.findResources('AWS::Logs::LogGroup'));
      expect(groups.length).toBeGreaterThanOrEqual(5);
      for (const group of groups) expect(group['Properties']).toMatchObject({ RetentionInDays: 30 });
    });

    it('wires an optional function only when its handler file exists', () => {
      const described = Object.values(template.findResources('AWS::Lambda::Function')).map((fn) => String(fn['Properties']['Description']));
      const routes = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((r) => String(r['Properties']['RouteKey']));
      const has = (file: string) => readdirSync(join(PROJECT_ROOT, 'lambdas')).includes(file);
      expect(described.some((d) => d.startsWith('GET /v1/revocations'))).toBe(has(OPTIONAL_FUNCTIONS.revocations));
      expect(routes.includes('POST /v1/spawn')).toBe(has(OPTIONAL_FUNCTIONS.spawn));
      expect(template.findResources('AWS::Scheduler::Schedule')).toSatisfy((s: object) => Object.keys(s).length === (has(OPTIONAL_FUNCTIONS.rotateSigningKey) ? 1 : 0));
      expect(Object.keys(template.findResources('AWS::Lambda::Url'))).toHaveLength(has(OPTIONAL_FUNCTIONS.broker) ? 1 : 0);
    });

    it.runIf(hasHandler(OPTIONAL_FUNCTIONS.broker))('serves lambdas/broker.ts on a public, response-streaming function URL', () => {
      template.hasResourceProperties('AWS::Lambda::Url', {
        AuthType: 'NONE',
        InvokeMode: 'RESPONSE_STREAM',
        TargetFunctionArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IssuerBrokerFunction'), 'Arn'] },
      });
      const env = (functionProps(template, BROKER)['Environment'] as { Variables: Record<string, unknown> }).Variables;
      expect(env).toMatchObject({ LANYARD_SECRET_PREFIX: 'lanyard/Lanyard/upstream/', LANYARD_SIGNING_KEY: 'alias/lanyard/Lanyard/signing', LANYARD_STS: 'off' });
    });
  });

  describe('IAM', () => {
    it('lets the issue function sign only with keys of its family, read and record decisions, and spend refresh tokens', () => {
      const statements = statementsOf(template, 'POST /v1/credentials');
      expect(grantsOf(statements, 'kms:Sign')).toEqual([
        { resources: [KEY_FAMILY], condition: { StringEquals: { [`aws:ResourceTag/${SIGNING_KEY_TAG}`]: 'alias/lanyard/Lanyard/signing' } } },
      ]);
      expect(actionsOf(statements).filter((a) => a.startsWith('dynamodb:'))).toEqual([
        'dynamodb:BatchWriteItem',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
      ]);
      expect(grantsOf(statements, 'dynamodb:PutItem')[0]?.resources).toEqual(['<IssuerTable30DE0CDD.Arn>']);
      expect(grantsOf(statements, 'dynamodb:UpdateItem')[0]?.resources).toEqual(['<IssuerTable30DE0CDD.Arn>']);
      expect(actionsOf(statements).some((a) => a.startsWith('sts:'))).toBe(false);
    });

    it('lets the JWKS function read public keys and the signing-key registry item, never sign or list keys', () => {
      const actions = actionsOf(statementsOf(template, 'GET /.well-known/jwks.json'));
      expect(actions).toEqual(expect.arrayContaining(['kms:GetPublicKey', 'kms:DescribeKey']));
      expect(actions).not.toContain('kms:Sign');
      expect(actions).not.toContain('kms:ListKeys');
      expect(actions.filter((a) => a.startsWith('dynamodb:'))).toEqual(['dynamodb:GetItem']);
    });

    it('gives the metadata function no AWS access beyond tracing', () => {
      expect(actionsOf(statementsOf(template, 'GET /.well-known/oauth-authorization-server'))).toEqual(['xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
    });

    it.runIf(hasHandler(OPTIONAL_FUNCTIONS.broker))('lets the broker read upstream secrets under the prefix and verify with public keys, never sign or write a secret', () => {
      const statements = statementsOf(template, BROKER);
      const actions = actionsOf(statements);
      expect(grantsOf(statements, 'secretsmanager:GetSecretValue')).toEqual([{ resources: [UPSTREAM_SECRETS] }]);
      expect(actions.filter((a) => a.startsWith('secretsmanager:'))).toEqual(['secretsmanager:GetSecretValue']);
      expect(actions).not.toContain('kms:Sign');
      expect(actions).not.toContain('secretsmanager:PutSecretValue');
      expect(actions.filter((a) => a.startsWith('dynamodb:'))).toEqual(['dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem']);
      // The secrets are under the AWS-managed key by default: no KMS right on them.
      expect(actions).not.toContain('kms:Decrypt');
    });

    it('lets the admin function put upstream secrets under the prefix only', () => {
      const statements = statementsOf(template, 'Admin commands');
      expect(grantsOf(statements, 'secretsmanager:PutSecretValue')).toEqual([{ resources: [UPSTREAM_SECRETS] }]);
      expect(grantsOf(statements, 'secretsmanager:CreateSecret')).toEqual([{ resources: [UPSTREAM_SECRETS] }]);
      expect(actionsOf(statements)).not.toContain('secretsmanager:GetSecretValue');
    });

    it('lets the admin function read and write the table, and nothing in KMS', () => {
      const actions = actionsOf(statementsOf(template, 'Admin commands'));
      expect(actions.filter((a) => a.startsWith('dynamodb:'))).toEqual([
        'dynamodb:BatchWriteItem',
        'dynamodb:DeleteItem',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
      ]);
      expect(actions.some((a) => a.startsWith('kms:'))).toBe(false);
    });

    it('grants no wildcard action and no Scan to any function', () => {
      const policies = Object.values(template.findResources('AWS::IAM::Policy'));
      const actions = policies.flatMap((p) => (p['Properties']['PolicyDocument'] as { Statement: { Action: string | string[] }[] }).Statement.flatMap((s) => s.Action));
      expect(actions.filter((a) => a.includes('*'))).toEqual([]);
      expect(actions).not.toContain('dynamodb:Scan');
    });
  });

  describe('Alarms', () => {
    it('counts denials from the access log and issuer errors from the function logs, in namespace Lanyard', () => {
      template.hasResourceProperties('AWS::Logs::MetricFilter', {
        FilterPattern: Match.stringLikeRegexp('POST /v1/credentials.*403'),
        MetricTransformations: [Match.objectLike({ MetricNamespace: 'Lanyard', MetricName: 'Denials' })],
      });
      template.hasResourceProperties('AWS::Logs::MetricFilter', {
        FilterPattern: '{ $.level = "ERROR" }',
        MetricTransformations: [Match.objectLike({ MetricNamespace: 'Lanyard', MetricName: 'IssuerErrors' })],
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Denials', Namespace: 'Lanyard', Threshold: 50 });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'IssuerErrors', Namespace: 'Lanyard', Threshold: 1 });
    });

    it('alarms on API 5xx and on every function error and throttle, to the alarm topic', () => {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: '5xx', Namespace: 'AWS/ApiGateway' });
      const fnCount = Object.keys(template.findResources('AWS::Lambda::Function')).length;
      const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
      expect(alarms.filter((a) => a['Properties']['MetricName'] === 'Errors')).toHaveLength(fnCount);
      expect(alarms.filter((a) => a['Properties']['MetricName'] === 'Throttles')).toHaveLength(fnCount);
      for (const alarm of alarms) expect(alarm['Properties']['AlarmActions']).toEqual([{ Ref: expect.stringMatching(/^IssuerAlarmTopic/) as unknown }]);
    });
  });

  describe('Outputs', () => {
    it.each(['ApiUrl', 'JwksUrl', 'AdminFunctionName', 'EventBusName', 'TableName', 'SigningKeyAlias'])('exports %s', (name) => {
      template.hasOutput(name, { Value: Match.anyValue() });
    });

    it.runIf(hasHandler(OPTIONAL_FUNCTIONS.broker))('exports BrokerUrl, the function URL of the broker', () => {
      template.hasOutput('BrokerUrl', { Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IssuerBrokerFunctionFunctionUrl'), 'FunctionUrl'] } });
    });
  });

  describe('cdk-nag', () => {
    it('reports no unacknowledged AwsSolutions finding', () => {
      const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(stack);
      expect(report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    });

    it('gives every acknowledgment a reason of at least ten characters', () => {
      const acks = acknowledgments(stack);
      expect(acks.length).toBeGreaterThan(0);
      for (const ack of acks) expect(ack.reason.trim().length, `${ack.path} ${ack.id}`).toBeGreaterThanOrEqual(10);
    });
  });

  describe('App', () => {
    it('keeps cdk.json context in step with the defaults the app applies', () => {
      const cdkJson = JSON.parse(readFileSync(join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { app: string; context: Record<string, unknown> };
      expect(cdkJson.app).toBe('node --conditions=@lanyard/source cdk/app.ts');
      for (const [key, value] of Object.entries(CONTEXT_DEFAULTS)) expect(cdkJson.context[key], key).toEqual(value);
    });

    it('synthesizes offline as the CDK CLI runs it: one stack template, validation passed', async () => {
      // The CLI runs cdk.json's "app" with CDK_OUTDIR and CDK_CONTEXT_JSON and then reads the
      // manifest. The installed CLI (aws-cdk 3.0.0) reads cloud-assembly schema 43 only, and
      // aws-cdk-lib 2.276 writes 55, so `npx cdk synth` stops after this step (docs/deploy.md);
      // the test runs the same step itself.
      const outdir = mkdtempSync(join(tmpdir(), 'lanyard-synth-'));
      try {
        const cdkJson = JSON.parse(readFileSync(join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> };
        // Asynchronously, so the test worker keeps answering the runner while the child works.
        const result = await run(process.execPath, ['--conditions=@lanyard/source', 'cdk/app.ts'], {
          cwd: PROJECT_ROOT,
          env: { ...process.env, CDK_OUTDIR: outdir, CDK_CONTEXT_JSON: JSON.stringify(cdkJson.context) },
          encoding: 'utf8',
          maxBuffer: 64 * 1024 * 1024,
          timeout: SYNTH_MS,
        }).then(
          () => ({ status: 0, stderr: '' }),
          (error: Error & { code?: number | string; signal?: string; stderr?: string }) => ({ status: error.code ?? error.signal, stderr: error.stderr || error.message }),
        );
        expect(result.status, result.stderr).toBe(0);
        const templates = readdirSync(outdir).filter((f) => f.endsWith('.template.json'));
        expect(templates).toEqual(['Lanyard.template.json']);
        const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as { pluginReports: { summary?: { status: string } }[] };
        expect(report.pluginReports.every((r) => r.summary?.status !== 'failure')).toBe(true);
      } finally {
        rmSync(outdir, { recursive: true, force: true });
      }
    }, SYNTH_MS + 60_000);
  });
});
