/**
 * Reading a synthesized template the way a reviewer reads IAM: the statements of the role of
 * one function (found by its description), flattened to action × resource.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import { Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { flattenReference } from '../../cdk/lanyard-issuer.ts';

export interface Statement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

/** The logical id of the function whose description starts with `prefix`. */
export function functionId(template: Template, prefix: string): string {
  const functions = template.findResources('AWS::Lambda::Function') as Resources;
  const found = Object.entries(functions).filter(([, r]) => {
    const description = r.Properties?.['Description'];
    return typeof description === 'string' && description.startsWith(prefix);
  });
  if (found.length !== 1) throw new Error(`expected one function described "${prefix}…", found ${found.length}`);
  return found[0]![0];
}

export function functionProps(template: Template, prefix: string): Record<string, unknown> {
  const functions = template.findResources('AWS::Lambda::Function') as Resources;
  return functions[functionId(template, prefix)]!.Properties!;
}

/** Every Allow statement attached to the function's execution role. */
export function statementsOf(template: Template, prefix: string): Statement[] {
  const role = (functionProps(template, prefix)['Role'] as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
  const policies = template.findResources('AWS::IAM::Policy') as Resources;
  return Object.values(policies)
    .filter((p) => (p.Properties?.['Roles'] as { Ref: string }[]).some((r) => r.Ref === role))
    .flatMap((p) => (p.Properties?.['PolicyDocument'] as { Statement: Statement[] }).Statement)
    .filter((s) => s.Effect === 'Allow');
}

export function actionsOf(statements: readonly Statement[]): string[] {
  return [...new Set(statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])))].sort();
}

/** Statements granting `action`, with their resources flattened (`<Table.Arn>/index/*`). */
export function grantsOf(statements: readonly Statement[], action: string): { resources: string[]; condition?: Statement['Condition'] }[] {
  return statements
    .filter((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]).includes(action))
    .map((s) => ({
      resources: (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).map(flattenReference),
      ...(s.Condition !== undefined && { condition: s.Condition }),
    }));
}

/** Every cdk-nag acknowledgment in the tree: rule id → reason. */
export function acknowledgments(root: IConstruct): { path: string; id: string; reason: string }[] {
  return root.node
    .findAll()
    .flatMap((c) =>
      c.node.metadata
        .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ path: c.node.path, id, reason }))),
    );
}
