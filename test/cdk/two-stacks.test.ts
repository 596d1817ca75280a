/**
 * A dev and a prod stack in one app (one account and region): no name is shared, and no grant of
 * one reaches the other's keys or secrets. And the tool-role trust and the broker's cap, which
 * the same stacks show. Stand-in handlers (fixtures/lambdas), so the synth bundles in milliseconds.
 */
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BROKER_RESERVED_CONCURRENCY, SIGNING_KEY_TAG } from '../../cdk/lanyard-issuer.ts';
import { LanyardStack } from '../../cdk/lanyard-stack.ts';
import { functionProps, grantsOf, statementsOf, type Statement } from './template-helpers.ts';

const FIXTURES = 'test/cdk/fixtures/lambdas';
const ENV = { account: '123456789012', region: 'eu-west-1' };
const BROKER = 'ANY /v1/proxy/{provider}/{path+}';

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

/** Every string literal anywhere in a value (a template, a statement). */
function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (typeof value === 'object' && value !== null) return Object.values(value).flatMap(strings);
  return [];
}

/** The names an issuer claims in the account: alias, family tag value, secret prefix (from the environment of its functions). */
function claimedNames(template: Template): Set<string> {
  const names = new Set<string>();
  for (const alias of Object.values(template.findResources('AWS::KMS::Alias') as Resources)) names.add(String(alias.Properties?.['AliasName']));
  for (const fn of Object.values(template.findResources('AWS::Lambda::Function') as Resources)) {
    const env = (fn.Properties?.['Environment'] as { Variables: Record<string, unknown> }).Variables;
    for (const name of ['LANYARD_SIGNING_KEY', 'LANYARD_SECRET_PREFIX']) if (typeof env[name] === 'string') names.add(env[name]);
  }
  return names;
}

/** A role's ARN in the test account, named by its logical id (what a synthesized `Fn::GetAtt` stands for). */
function roleArn(logicalId: string): string {
  return `arn:aws:iam::${ENV.account}:role/${logicalId}`;
}

const PSEUDO_PARAMETERS: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::AccountId': ENV.account, 'AWS::Region': ENV.region };

/**
 * The value with the intrinsics a policy holds resolved, so a policy evaluator can read it:
 * `Fn::GetAtt [id, Arn]` as {@link roleArn}, the pseudo parameters, and `Fn::Join`.
 */
function resolveRoleArns(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolveRoleArns);
  if (typeof value !== 'object' || value === null) return value;
  const object = value as Record<string, unknown>;
  const getAtt = object['Fn::GetAtt'];
  if (Array.isArray(getAtt) && getAtt[1] === 'Arn') return roleArn(String(getAtt[0]));
  const ref = object['Ref'];
  if (typeof ref === 'string' && PSEUDO_PARAMETERS[ref] !== undefined) return PSEUDO_PARAMETERS[ref];
  const join = object['Fn::Join'] as [string, unknown[]] | undefined;
  if (join !== undefined) return join[1].map(resolveRoleArns).join(join[0]);
  return Object.fromEntries(Object.entries(object).map(([key, inner]) => [key, resolveRoleArns(inner)]));
}

function actionList(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

function allStatements(template: Template): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy') as Resources).flatMap((p) => (p.Properties?.['PolicyDocument'] as { Statement: Statement[] }).Statement);
}

describe('Construct: LanyardIssuer', () => {
  // Three synths for the whole file, in one app as `cdk synth` builds several stacks.
  let dev: Template;
  let prod: Template;
  let tools: Template;
  let toolsStack: LanyardStack;

  beforeAll(() => {
    const app = new App();
    const devStack = new LanyardStack(app, 'LanyardDev', { env: ENV, issuer: { lambdasDir: FIXTURES } });
    const prodStack = new LanyardStack(app, 'LanyardProd', { env: ENV, issuer: { lambdasDir: FIXTURES, brokerReservedConcurrency: false } });
    toolsStack = new LanyardStack(app, 'Tools', { env: ENV, issuer: { lambdasDir: FIXTURES, brokerReservedConcurrency: 20 } });
    const tickets = new iam.Role(toolsStack, 'TicketsTool', { assumedBy: new iam.AccountRootPrincipal(), description: 'tickets tool role' });
    toolsStack.issuer.trustToolRole(tickets);
    dev = Template.fromStack(devStack);
    prod = Template.fromStack(prodStack);
    tools = Template.fromStack(toolsStack);
  }, 300_000);

  describe('Two stacks in one account and region', () => {
    it('derives the alias and the secret prefix from the stack name', () => {
      expect([...claimedNames(dev)].sort()).toEqual(['alias/lanyard/LanyardDev/signing', 'lanyard/LanyardDev/upstream/']);
      expect([...claimedNames(prod)].sort()).toEqual(['alias/lanyard/LanyardProd/signing', 'lanyard/LanyardProd/upstream/']);
      dev.hasResourceProperties('AWS::KMS::Key', { Tags: [{ Key: SIGNING_KEY_TAG, Value: 'alias/lanyard/LanyardDev/signing' }] });
    });

    it('shares no name between the two', () => {
      const devNames = claimedNames(dev);
      expect([...claimedNames(prod)].filter((name) => devNames.has(name))).toEqual([]);
    });

    it.each([
      ['dev', () => dev, () => prod],
      ['prod', () => prod, () => dev],
    ])('gives no %s grant a resource or a condition naming the other stack', (_name, own, other) => {
      // Prepare: the other stack's names.
      const foreign = [...claimedNames(other())].map((name) => name.replace(/^alias\//, ''));

      // Assess: no string of any statement (resources, conditions) names them: not as an alias ARN, a tag value or a secret ARN.
      const reaching = allStatements(own()).flatMap((statement) => strings([statement.Resource, statement.Condition ?? {}]).filter((value) => foreign.some((name) => value.includes(name))));
      expect(reaching).toEqual([]);
      // And the grants that matter, spelled out: secrets under the own prefix only, keys of the own family only.
      const ownNames = [...claimedNames(own())];
      const ownPrefix = ownNames.find((name) => !name.startsWith('alias/'));
      const ownAlias = ownNames.find((name) => name.startsWith('alias/'));
      expect(grantsOf(statementsOf(own(), BROKER), 'secretsmanager:GetSecretValue')).toEqual([
        { resources: [`arn:<AWS::Partition>:secretsmanager:eu-west-1:123456789012:secret:${ownPrefix}*`] },
      ]);
      expect(grantsOf(statementsOf(own(), 'POST /v1/credentials'), 'kms:Sign').map((g) => g.condition)).toEqual([{ StringEquals: { [`aws:ResourceTag/${SIGNING_KEY_TAG}`]: ownAlias } }]);
    });
  });

  describe('Method: trustToolRole', () => {
    const roleOf = (prefix: string) => (functionProps(tools, prefix)['Role'] as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];

    it('writes a trust for both minter roles with AssumeRole, TagSession and SetSourceIdentity', () => {
      // Prepare
      const [tool] = Object.values(tools.findResources('AWS::IAM::Role', { Properties: { Description: 'tickets tool role' } }) as Resources);

      // Assess
      const trust = (tool!.Properties!['AssumeRolePolicyDocument'] as { Statement: (Statement & { Sid?: string })[] }).Statement;
      expect(trust.filter((s) => s.Sid?.startsWith('TrustLanyard'))).toEqual([
        {
          Sid: 'TrustLanyard0',
          Effect: 'Allow',
          Action: ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'],
          Principal: { AWS: [{ 'Fn::GetAtt': [roleOf('POST /v1/credentials'), 'Arn'] }, { 'Fn::GetAtt': [roleOf('POST /v1/spawn'), 'Arn'] }] },
        },
      ]);
    });

    it('lets both minters assume the role and the admin function write its revocation policy, and turns STS on', () => {
      // Prepare
      const toolArn = expect.stringMatching(/^<TicketsTool[A-Za-z0-9]*\.Arn>$/) as unknown;

      // Assess
      for (const prefix of ['POST /v1/credentials', 'POST /v1/spawn']) {
        expect(grantsOf(statementsOf(tools, prefix), 'sts:SetSourceIdentity'), prefix).toEqual([{ resources: [toolArn] }]);
        expect(functionProps(tools, prefix)['Environment']).toMatchObject({ Variables: { LANYARD_STS: 'on' } });
      }
      expect(grantsOf(statementsOf(tools, 'Admin commands'), 'iam:PutRolePolicy')).toEqual([{ resources: [toolArn] }]);
      // The revoker counts the role's other inline policies against IAM's quota, and only the admin function revokes.
      expect(grantsOf(statementsOf(tools, 'Admin commands'), 'iam:ListRolePolicies')).toEqual([{ resources: [toolArn] }]);
      expect(functionProps(tools, 'Admin commands')['Environment']).toMatchObject({ Variables: { LANYARD_STS_REVOKE: 'on' } });
      expect(functionProps(tools, BROKER)['Environment']).toMatchObject({ Variables: { LANYARD_STS: 'off' } });
      // Without a trusted role (and no stsRoleArns), STS stays off.
      expect(functionProps(dev, 'POST /v1/credentials')['Environment']).toMatchObject({ Variables: { LANYARD_STS: 'off' } });
    });

    it.each(['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'])('writes a trust that IAM evaluates to allow %s for both minters and no other function', async (action) => {
      // Prepare: the synthesized trust and the functions' own statements, with each role's logical id as its name.
      const [tool] = Object.entries(tools.findResources('AWS::IAM::Role', { Properties: { Description: 'tickets tool role' } }) as Resources);
      const toolArn = roleArn(tool![0]);
      const trust = resolveRoleArns(tool![1].Properties!['AssumeRolePolicyDocument']);
      const decide = async (prefix: string) => {
        const own = statementsOf(tools, prefix).filter((statement) => actionList(statement).some((a) => a.startsWith('sts:')));
        const result = await runSimulation(
          {
            request: {
              principal: `arn:aws:sts::${ENV.account}:assumed-role/${roleOf(prefix)}/lanyard`,
              action,
              resource: { resource: toolArn, accountId: ENV.account },
              contextVariables: { 'aws:TagKeys': ['lanyard:identity', 'lanyard:lane'], 'sts:SourceIdentity': 'support-triage+prod' },
            },
            identityPolicies: [{ name: 'own', policy: resolveRoleArns({ Version: '2012-10-17', Statement: own.length > 0 ? own : [{ Effect: 'Deny', Action: 'none:none', Resource: '*' }] }) }],
            resourcePolicy: trust,
            serviceControlPolicies: [],
            resourceControlPolicies: [],
          },
          {},
        );
        if (result.resultType === 'error') throw new Error(`the simulation refused its input: ${JSON.stringify(result.errors)}`);
        return result.overallResult;
      };

      // Act + Assess
      expect(await decide('POST /v1/credentials')).toBe('Allowed');
      expect(await decide('POST /v1/spawn')).toBe('Allowed');
      expect(await decide('Admin commands')).not.toBe('Allowed');
    });

    it('outputs the role of each function that mints, issue and spawn', () => {
      tools.hasOutput('IssueFunctionRoleArn', { Value: { 'Fn::GetAtt': [roleOf('POST /v1/credentials'), 'Arn'] } });
      tools.hasOutput('SpawnFunctionRoleArn', { Value: { 'Fn::GetAtt': [roleOf('POST /v1/spawn'), 'Arn'] } });
      expect(toolsStack.issuer.minterRoles).toHaveLength(2);
    });
  });

  describe('Broker concurrency', () => {
    it('reserves DEFAULT_BROKER_RESERVED_CONCURRENCY for the broker by default, the given cap, or none with false', () => {
      expect(DEFAULT_BROKER_RESERVED_CONCURRENCY).toBe(100);
      expect(functionProps(dev, BROKER)['ReservedConcurrentExecutions']).toBe(100);
      expect(functionProps(tools, BROKER)['ReservedConcurrentExecutions']).toBe(20);
      expect(functionProps(prod, BROKER)['ReservedConcurrentExecutions']).toBeUndefined();
    });

    it('reserves nothing for the issuer functions', () => {
      expect(functionProps(dev, 'POST /v1/credentials')['ReservedConcurrentExecutions']).toBeUndefined();
    });
  });
});
