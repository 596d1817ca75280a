/**
 * The one way Lanyard builds a Lambda function: Node 24 on arm64, X-Ray active, an ESM bundle
 * built by the locally installed esbuild (never Docker), its own log group with a retention,
 * and the Powertools environment. Grants are not made here: each function receives exactly
 * the permissions `LanyardIssuer` gives it.
 *
 * Modelled on the `NodejsFunction` subclass of aws-powertools/powertools-lambda-typescript
 * (`examples/app/cdk`).
 *
 * @example
 * ```ts
 * const jwks = new LanyardFunction(this, 'Jwks', {
 *   entry: 'lambdas/jwks.ts',
 *   description: 'GET /.well-known/jwks.json',
 *   environment: { LANYARD_SIGNING_KEY: 'alias/lanyard-signing' },
 * });
 * ```
 */
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { LANYARD_ESBUILD_OPTIONS as ESBUILD, lanyardEsbuildArgs } from './bundling-options.ts';

/** The repository root: bundling resolves entries, `package-lock.json` and `tsconfig.json` from here. */
export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * `nodejs24.x`. The installed aws-cdk-lib knows it; the fallback keeps this file working
 * with an older aws-cdk-lib that predates the constant.
 */
export const LANYARD_RUNTIME: lambda.Runtime =
  (lambda.Runtime as { NODEJS_24_X?: lambda.Runtime }).NODEJS_24_X ?? new lambda.Runtime('nodejs24.x', lambda.RuntimeFamily.NODEJS);

export interface LanyardFunctionProps {
  /** Path of the handler file (it exports `handler`), absolute or relative to the repository root. */
  readonly entry: string;
  /** Shown in the console; say what the function serves. */
  readonly description: string;
  /**
   * Extra environment variables. Powertools' variables and `NODE_OPTIONS` are set here and
   * win over these.
   * @default - none
   */
  readonly environment?: Record<string, string>;
  /** @default 512 */
  readonly memorySize?: number;
  /** @default Duration.seconds(10) */
  readonly timeout?: Duration;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the log group when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** `POWERTOOLS_SERVICE_NAME`. @default 'lanyard' */
  readonly serviceName?: string;
  /** `POWERTOOLS_METRICS_NAMESPACE`. @default 'Lanyard' */
  readonly metricsNamespace?: string;
  /** `POWERTOOLS_LOG_LEVEL`. @default 'INFO' */
  readonly logLevel?: string;
  /**
   * Reserved concurrency: caps what one function can take from the account's pool.
   * @default - none (shares the account's unreserved concurrency)
   */
  readonly reservedConcurrentExecutions?: number;
}

/** `fn.logGroup` is the function's own log group (created here, with a retention): metric filters attach to it. */
export class LanyardFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: LanyardFunctionProps) {
    const memorySize = props.memorySize ?? 512;
    const timeout = props.timeout ?? Duration.seconds(10);
    if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10_240) {
      throw new Error(`LanyardFunction ${id}: memorySize must be an integer between 128 and 10240 MB, got ${memorySize}`);
    }
    if (!timeout.isUnresolved() && (timeout.toSeconds() < 1 || timeout.toSeconds() > 900)) {
      throw new Error(`LanyardFunction ${id}: timeout must be between 1 and 900 seconds, got ${timeout.toSeconds()}`);
    }
    // The log group is created before the function (a scope-level sibling, not a child), so the
    // retention applies from the first invocation instead of a never-expiring implicit group.
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
    super(scope, id, {
      entry: props.entry,
      handler: 'handler',
      description: props.description,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: `${PROJECT_ROOT}package-lock.json`,
      runtime: LANYARD_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      memorySize,
      timeout,
      logGroup,
      ...(props.reservedConcurrentExecutions !== undefined && { reservedConcurrentExecutions: props.reservedConcurrentExecutions }),
      environment: {
        ...props.environment,
        POWERTOOLS_SERVICE_NAME: props.serviceName ?? 'lanyard',
        POWERTOOLS_METRICS_NAMESPACE: props.metricsNamespace ?? 'Lanyard',
        POWERTOOLS_LOG_LEVEL: props.logLevel ?? 'INFO',
        // Stack traces in the logs point at the TypeScript sources, not the minified bundle.
        NODE_OPTIONS: '--enable-source-maps',
      },
      // Every option comes from cdk/bundling-options.ts, which the bench bundles with too.
      bundling: {
        format: OutputFormat.ESM,
        mainFields: [...ESBUILD.mainFields],
        banner: ESBUILD.banner.js,
        target: ESBUILD.target,
        minify: ESBUILD.minify,
        sourceMap: ESBUILD.sourcemap,
        sourcesContent: ESBUILD.sourcesContent,
        // The SDK v3 clients are bundled (not taken from the runtime). See docs/deploy.md.
        bundleAwsSDK: true,
        externalModules: [...ESBUILD.external],
        // esbuild is a devDependency: bundling never starts Docker.
        forceDockerBundling: false,
        tsconfig: `${PROJECT_ROOT}tsconfig.json`,
        // The conditions (`@lanyard/source,module`) and the Lambda-only aliases.
        esbuildArgs: lanyardEsbuildArgs(),
      },
    });
  }
}
