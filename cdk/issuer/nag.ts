/**
 * cdk-nag acknowledgments: each one names the exact finding it accepts and says why, so a new
 * finding (another wildcard, another managed policy) still fails the synth.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import type { LanyardFunction } from '../lanyard-function.ts';

/** A cdk-nag acknowledgment; the reason is required and shown in reviews of the template. */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * What every Lanyard function's role holds and IAM cannot narrow: the basic execution role
 * (its own log group is created explicitly; the managed policy is how Lambda is granted
 * CloudWatch Logs) and the X-Ray write actions, which have no resource-level permissions.
 */
export function acknowledgeFunctionBaseline(fn: LanyardFunction, starReason: string): void {
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
export function acknowledgeWildcard(fn: LanyardFunction, resource: string, reason: string): void {
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
