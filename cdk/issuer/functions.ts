/**
 * How the issuer makes its functions: every one a `LanyardFunction` with the AWS composition
 * root's environment, the issuer's log retention and removal policy, and an id derived from its
 * handler name (`issueCredential` → `IssueCredentialFunction`), which the logical ids keep.
 */
import { join } from 'node:path';
import { Lazy } from 'aws-cdk-lib';
import type { Duration } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';
import { LanyardFunction } from '../lanyard-function.ts';
import type { ResolvedProps } from './props.ts';

export interface FunctionSizing {
  readonly timeout?: Duration;
  readonly reservedConcurrentExecutions?: number;
}

export type MakeFunction = (name: string, file: string, description: string, env?: Record<string, string>, sizing?: FunctionSizing) => LanyardFunction;

export function functionId(name: string): string {
  return `${name[0]?.toUpperCase() ?? ''}${name.slice(1)}Function`;
}

/** `on` or `off`, decided at synthesis: `trustToolRole` may turn STS on after the functions exist. */
export function lazyOnOff(isOn: () => boolean): string {
  return Lazy.string({ produce: () => (isOn() ? 'on' : 'off') });
}

/**
 * Environment of every handler built on the AWS composition root (shared/bootstrap/aws/core-services.ts, runtime.ts):
 * it reads all of these at cold start, whatever the function then uses.
 */
export function runtimeEnvironment(table: dynamodb.Table, config: ResolvedProps, apiUrl: string, stsOn: () => boolean): Record<string, string> {
  return {
    LANYARD_TABLE: table.tableName,
    LANYARD_SIGNING_KEY: config.signingKeyAlias,
    LANYARD_PUBLISHED_KEYS: config.publishedKeyIds.join(','),
    LANYARD_ISSUER: config.issuer ?? apiUrl,
    LANYARD_POLICY_TTL_MS: String(config.policyCacheTtl.toMilliseconds()),
    LANYARD_STS: lazyOnOff(stsOn),
  };
}

/** A maker of functions under `scope`, each recorded in `functions` by its handler name. */
export function functionMaker(scope: Construct, config: ResolvedProps, runtimeEnv: Record<string, string>, functions: Record<string, LanyardFunction>): MakeFunction {
  return (name, file, description, env = {}, sizing = {}) => {
    const fn = new LanyardFunction(scope, functionId(name), {
      entry: join(config.lambdasDir, file),
      description,
      environment: { ...runtimeEnv, ...env },
      logRetention: config.logRetention,
      logRemovalPolicy: config.removalPolicy,
      ...(sizing.timeout !== undefined && { timeout: sizing.timeout }),
      ...(sizing.reservedConcurrentExecutions !== undefined && { reservedConcurrentExecutions: sizing.reservedConcurrentExecutions }),
    });
    functions[name] = fn;
    return fn;
  };
}
