/**
 * The deployable stack: one `LanyardIssuer` and the outputs a platform engineer needs
 * (docs/architecture.md). Outputs are declared here, not in the construct, so their names are stable:
 * `ApiUrl`, `JwksUrl`, `AdminFunctionName`, `EventBusName`, `TableName`, `SigningKeyAlias`,
 * `IssueFunctionRoleArn`, and `SpawnFunctionRoleArn` and `BrokerUrl` when those functions are deployed.
 */
import { CfnOutput, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { LanyardIssuer } from './lanyard-issuer.ts';
import type { LanyardIssuerProps } from './lanyard-issuer.ts';

export interface LanyardStackProps extends StackProps {
  /** @default - LanyardIssuer's defaults */
  readonly issuer?: LanyardIssuerProps;
}

export class LanyardStack extends Stack {
  readonly issuer: LanyardIssuer;

  constructor(scope: Construct, id: string, props: LanyardStackProps = {}) {
    super(scope, id, { description: 'Lanyard: just-in-time credentials for AI agent fleets', ...props });
    this.issuer = new LanyardIssuer(this, 'Issuer', props.issuer);
    const issuer = this.issuer;

    new CfnOutput(this, 'ApiUrl', { value: issuer.apiUrl, description: 'Base URL of the Lanyard API (POST /v1/credentials, SigV4)' });
    new CfnOutput(this, 'JwksUrl', { value: issuer.jwksUrl, description: 'Public JWKS for verifiers' });
    new CfnOutput(this, 'AdminFunctionName', { value: issuer.adminFunction.functionName, description: 'Invoke with one admin command as the event (lanyard admin …)' });
    new CfnOutput(this, 'EventBusName', { value: issuer.eventBus.eventBusName, description: 'Custom bus of the lanyard events' });
    new CfnOutput(this, 'TableName', { value: issuer.table.tableName, description: 'The single Lanyard table' });
    new CfnOutput(this, 'SigningKeyAlias', { value: issuer.signingKeyAlias.aliasName, description: 'Alias of the active signing key' });
    // Both functions that mint credentials assume tool roles: a tool role trusts both.
    new CfnOutput(this, 'IssueFunctionRoleArn', {
      value: issuer.issueFunction.role?.roleArn ?? '',
      description: 'Trust this role (sts:AssumeRole, sts:TagSession, sts:SetSourceIdentity) in the tool roles Lanyard assumes for sts credentials',
    });
    if (issuer.spawnFunction?.role !== undefined) {
      new CfnOutput(this, 'SpawnFunctionRoleArn', {
        value: issuer.spawnFunction.role.roleArn,
        description: 'Trust this role too (sts:AssumeRole, sts:TagSession, sts:SetSourceIdentity): POST /v1/spawn mints the first credentials of an instance',
      });
    }
    if (issuer.brokerUrl !== undefined) {
      new CfnOutput(this, 'BrokerUrl', {
        value: issuer.brokerUrl,
        description: 'Credential broker function URL (ends with /): call <BrokerUrl>v1/proxy/<provider>/<path> with Authorization: Bearer <Lanyard JWT>',
      });
    }
    new CfnOutput(this, 'AlarmTopicArn', { value: issuer.alarmTopic.topicArn, description: 'Subscribe on-call to this topic' });
  }
}
