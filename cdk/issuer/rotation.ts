/**
 * The rotation schedule: EventBridge Scheduler invokes the rotate-signing-key function every
 * `rotationPeriod`, with its own role, assumable by Scheduler for this account only.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import type { Construct } from 'constructs';
import type { LanyardFunction } from '../lanyard-function.ts';
import { acknowledge, flattenReference } from './nag.ts';
import type { ResolvedProps } from './props.ts';
import { SIGNING_KEY_TAG } from './signing-key.ts';
import type { SigningKeyFamily } from './signing-key.ts';

/** What the rotation function reads besides the runtime's environment (lambdas/rotate-signing-key.ts). */
export function rotationEnvironment(config: ResolvedProps, family: SigningKeyFamily, eventBusName: string): Record<string, string> {
  return {
    LANYARD_EVENT_BUS: eventBusName,
    LANYARD_SIGNING_KEY_TAG: SIGNING_KEY_TAG,
    LANYARD_MAX_CREDENTIAL_TTL_SECONDS: String(config.maxCredentialTtl.toSeconds()),
    LANYARD_KEY_COOL_DOWN_SECONDS: String(config.jwksCoolDown.toSeconds()),
    // The key CloudFormation created and owns: withdrawn after its last token, never deleted.
    LANYARD_RETAINED_KEY_IDS: family.key.keyId,
  };
}

export function createRotationSchedule(scope: Construct, fn: LanyardFunction, config: ResolvedProps): scheduler.Schedule {
  const stack = Stack.of(scope);
  const schedulerRole = new iam.Role(scope, 'RotationScheduleRole', {
    assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }),
    description: 'EventBridge Scheduler: invoke the Lanyard signing-key rotation function',
  });
  const schedule = new scheduler.Schedule(scope, 'RotationSchedule', {
    description: `Rotate ${config.signingKeyAlias} every ${config.rotationPeriod.toHumanString()}`,
    schedule: scheduler.ScheduleExpression.rate(config.rotationPeriod),
    target: new schedulerTargets.LambdaInvoke(fn, {
      role: schedulerRole,
      input: scheduler.ScheduleTargetInput.fromObject({ command: 'rotate', alias: config.signingKeyAlias }),
      retryAttempts: 3,
      maxEventAge: Duration.hours(1),
    }),
  });
  const invokePolicy = schedulerRole.node.tryFindChild('DefaultPolicy');
  if (invokePolicy) {
    const versions = `${fn.functionArn}:*`;
    acknowledge(
      invokePolicy,
      `AwsSolutions-IAM5[Resource::${flattenReference(stack.resolve(versions))}]`,
      'CDK grants lambda:InvokeFunction on the rotation function and its versions/aliases (arn:*); no other function is reachable',
    );
  }
  return schedule;
}
