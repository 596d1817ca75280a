/**
 * The CDK app (`cdk.json`: `node cdk/app.ts`): one Lanyard stack configured from context
 * (cdk/context.ts), checked by cdk-nag's AwsSolutions pack. cdk-nag 3 is a policy-validation
 * plugin, not an aspect: an unacknowledged finding fails `cdk synth` and `cdk deploy`.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { configFromContext } from './context.ts';
import { LanyardStack } from './lanyard-stack.ts';

export function createApp(app: App = new App()): { app: App; stack: LanyardStack } {
  const config = configFromContext(app.node);
  const stack = new LanyardStack(app, config.stackName, {
    issuer: config.issuer,
    // Environment-agnostic unless the CLI's profile provides one: synth needs no account.
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
  return { app, stack };
}

if (import.meta.main) {
  createApp().app.synth();
}
