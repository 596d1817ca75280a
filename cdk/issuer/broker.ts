/**
 * The credential broker (issue 6): no route, because API Gateway HTTP APIs buffer answers and
 * hand Lambda a decoded path. A function URL streams (RESPONSE_STREAM) and keeps rawPath as
 * sent, so the broker refuses `%2F` and `..` instead of resolving them. Auth NONE: the agent's
 * Lanyard JWT is the authentication, verified in the function with the issuer's public keys;
 * IAM would need SigV4 from agents.
 */
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { LanyardFunction } from '../lanyard-function.ts';
import type { MakeFunction } from './functions.ts';
import { secretsEnvironment } from './grants.ts';
import type { IssuerGrants } from './grants.ts';
import { OPTIONAL_FUNCTIONS } from './props.ts';
import type { ResolvedProps } from './props.ts';

export function createBroker(make: MakeFunction, grants: IssuerGrants, config: ResolvedProps): { fn: LanyardFunction; url: lambda.FunctionUrl } {
  const fn = make(
    'broker',
    OPTIONAL_FUNCTIONS.broker,
    'ANY /v1/proxy/{provider}/{path+}: the credential broker (function URL, response streaming)',
    // No STS: the broker never mints; it verifies and forwards.
    { ...secretsEnvironment(config), LANYARD_STS: 'off' },
    { timeout: config.brokerTimeout, ...(config.brokerReservedConcurrency !== undefined && { reservedConcurrentExecutions: config.brokerReservedConcurrency }) },
  );
  grants.readTable(fn);
  // UpdateItem: the quota counters (one conditional update per call); BatchWriteItem: the per-call audit records.
  grants.writeTable(fn, ['dynamodb:UpdateItem', 'dynamodb:BatchWriteItem']);
  // Verifies tokens with the published public keys (as the JWKS function); never signs.
  grants.readPublicKeys(fn);
  grants.readSecrets(fn);
  const url = fn.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE, invokeMode: lambda.InvokeMode.RESPONSE_STREAM });
  return { fn, url };
}
