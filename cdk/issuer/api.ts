/**
 * The HTTP API: an explicit `$default` stage (so it carries throttling and access logs) and
 * `route`, which adds one route to a function with the authorization its contract says.
 */
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { LanyardFunction } from '../lanyard-function.ts';
import { acknowledge } from './nag.ts';
import type { ResolvedProps } from './props.ts';

/** `iam`: SigV4 at the gateway; `public`: JWKS and metadata; `refresh-token`: the function checks an instance's refresh token. */
export type RouteAuth = 'iam' | 'public' | 'refresh-token';

export interface IssuerApi {
  readonly httpApi: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;
  readonly accessLogs: logs.LogGroup;
  /** Base URL of the API, without a trailing slash. */
  readonly apiUrl: string;
  readonly jwksUrl: string;
  route(path: string, method: apigwv2.HttpMethod, fn: LanyardFunction, auth: RouteAuth): void;
}

/** The fields of one access-log line (the denials alarm filters on `routeKey` and `status`). */
const ACCESS_LOG_FIELDS = {
  requestId: '$context.requestId',
  requestTime: '$context.requestTimeEpoch',
  routeKey: '$context.routeKey',
  status: '$context.status',
  integrationStatus: '$context.integrationStatus',
  caller: '$context.identity.userArn',
  sourceIp: '$context.identity.sourceIp',
  latencyMs: '$context.responseLatency',
  error: '$context.error.message',
  integrationError: '$context.integrationErrorMessage',
};

export function createApi(scope: Construct, config: ResolvedProps): IssuerApi {
  const httpApi = new apigwv2.HttpApi(scope, 'HttpApi', {
    description: 'Lanyard: just-in-time credentials for agent fleets',
    createDefaultStage: false,
  });
  const accessLogs = new logs.LogGroup(scope, 'AccessLogs', { retention: config.logRetention, removalPolicy: config.removalPolicy });
  const stage = new apigwv2.HttpStage(scope, 'DefaultStage', {
    httpApi,
    stageName: '$default',
    autoDeploy: true,
    throttle: { rateLimit: config.throttleRateLimit, burstLimit: config.throttleBurstLimit },
    accessLogSettings: {
      destination: new apigwv2.LogGroupLogDestination(accessLogs),
      format: AccessLogFormat.custom(JSON.stringify(ACCESS_LOG_FIELDS)),
    },
  });
  // `apiEndpoint` is known before the routes exist, so functions can take it as their
  // issuer without a cycle (only routes and integrations depend on the functions).
  const apiUrl = httpApi.apiEndpoint;
  const iamAuthorizer = new HttpIamAuthorizer();
  const route = (path: string, method: apigwv2.HttpMethod, fn: LanyardFunction, auth: RouteAuth): void => {
    const [created] = httpApi.addRoutes({
      path,
      methods: [method],
      integration: new HttpLambdaIntegration(`${fn.node.id}Integration`, fn),
      ...(auth === 'iam' && { authorizer: iamAuthorizer }),
    });
    if (auth === 'public' && created) {
      acknowledge(created, 'AwsSolutions-APIG4', `${method} ${path} is public by contract (docs/http.md): verifiers and OAuth tooling fetch it unauthenticated; it serves only public data`);
    }
    if (auth === 'refresh-token' && created) {
      acknowledge(created, 'AwsSolutions-APIG4', `${method} ${path} authenticates in the function: it accepts only an agent instance's single-use refresh token (lr_…), which the IAM authorizer cannot check; anything else is 401`);
    }
  };
  return { httpApi, stage, accessLogs, apiUrl, jwksUrl: `${apiUrl}/.well-known/jwks.json`, route };
}
